"""The catalog schema, as an ordered list of migrations. The file's `PRAGMA user_version` is the number of
migrations applied; opening a catalog applies the missing ones, each in its own transaction.

Never edit a released migration: add a new one at the end.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from fe.catalog.account import BUILTIN_ROLES

# Written to the file header so that a SQLite file that is not an fe catalog is recognised as such.
APPLICATION_ID = 0x66654354  # "feCT"

Migration = Callable[[sqlite3.Connection], None]


def _v1_users_roles_grants(conn: sqlite3.Connection) -> None:
    conn.execute(
        """
        CREATE TABLE users (
            name        TEXT NOT NULL,
            host        TEXT NOT NULL,
            plugin      TEXT NOT NULL,
            auth_string TEXT NOT NULL,
            created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            PRIMARY KEY (name, host)
        ) WITHOUT ROWID
        """
    )
    conn.execute(
        """
        CREATE TABLE roles (
            name       TEXT PRIMARY KEY,
            builtin    INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        ) WITHOUT ROWID
        """
    )
    conn.execute(
        """
        CREATE TABLE role_grants (
            user_name TEXT NOT NULL,
            user_host TEXT NOT NULL,
            role      TEXT NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
            PRIMARY KEY (user_name, user_host, role),
            FOREIGN KEY (user_name, user_host) REFERENCES users (name, host) ON DELETE CASCADE
        ) WITHOUT ROWID
        """
    )
    conn.execute("CREATE INDEX role_grants_by_role ON role_grants (role)")
    conn.executemany("INSERT INTO roles (name, builtin) VALUES (?, 1)", [(role,) for role in BUILTIN_ROLES])


def _v2_plugin_display_and_default_roles(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE users ADD COLUMN plugin_display TEXT NOT NULL DEFAULT ''")
    conn.execute("UPDATE users SET plugin_display = upper(plugin) WHERE plugin_display = ''")
    conn.execute(
        """
        CREATE TABLE default_roles (
            user_name TEXT NOT NULL,
            user_host TEXT NOT NULL,
            role      TEXT NOT NULL,
            position  INTEGER NOT NULL,
            PRIMARY KEY (user_name, user_host, role),
            FOREIGN KEY (user_name, user_host, role)
                REFERENCES role_grants (user_name, user_host, role) ON DELETE CASCADE
        ) WITHOUT ROWID
        """
    )


def _v3_role_inheritance(conn: sqlite3.Connection) -> None:
    """GRANT r TO ROLE r2: `role` holds `granted_role` (and everything that holds)."""
    conn.execute(
        """
        CREATE TABLE role_inheritance (
            role         TEXT NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
            granted_role TEXT NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
            PRIMARY KEY (role, granted_role)
        ) WITHOUT ROWID
        """
    )
    conn.execute("CREATE INDEX role_inheritance_by_granted ON role_inheritance (granted_role)")


def _v4_integrations_group_providers_external_groups(conn: sqlite3.Connection) -> None:
    """Security integrations and group providers (their validated, normalised PROPERTIES as a JSON object), roles
    granted to external groups, and the frontend settings ADMIN SET FRONTEND CONFIG persists."""
    for table in ("security_integrations", "group_providers"):
        conn.execute(
            f"""
            CREATE TABLE {table} (
                name       TEXT PRIMARY KEY,
                type       TEXT NOT NULL,
                properties TEXT NOT NULL,
                created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
            ) WITHOUT ROWID
            """
        )
    conn.execute(
        """
        CREATE TABLE external_group_grants (
            group_name TEXT NOT NULL,
            role       TEXT NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
            PRIMARY KEY (group_name, role)
        ) WITHOUT ROWID
        """
    )
    conn.execute("CREATE INDEX external_group_grants_by_role ON external_group_grants (role)")
    conn.execute(
        """
        CREATE TABLE frontend_config (
            key        TEXT PRIMARY KEY,
            value      TEXT NOT NULL,
            updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        ) WITHOUT ROWID
        """
    )


MIGRATIONS: tuple[Migration, ...] = (
    _v1_users_roles_grants,
    _v2_plugin_display_and_default_roles,
    _v3_role_inheritance,
    _v4_integrations_group_providers_external_groups,
)

SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Apply the migrations the file lacks, up to `target`; returns the version reached.

    Safe against several processes opening the same file at once: each step re-reads the version inside a
    write transaction, so a migration runs exactly once.
    """
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = schema_version(conn)
            if version >= target:
                conn.execute("COMMIT")
                return version
            MIGRATIONS[version](conn)
            if version == 0:
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
