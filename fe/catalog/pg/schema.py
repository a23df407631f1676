"""The PostgreSQL catalog's schema, as an ordered list of migrations mirroring fe/catalog/migrations.py one for one
(version N here holds what SQLite's version N holds), so that `fe catalog copy` can move a catalog across table by
table. `fe_schema_version` records the number applied; opening a catalog applies the missing ones.

Several nodes may start together: each migration runs in its own transaction under a transaction-level advisory
lock and re-reads the version once it holds it, so a migration runs exactly once. A new database gets every
migration and root in one transaction: a crash leaves nothing half-made.

Change tracking: every catalog table has a statement-level trigger that bumps the single row of
`fe_change_counter` and sends its new value on the `fe_catalog` channel (NOTIFY is delivered at commit, and only
if the transaction commits). Edits made by hand with psql are seen by the nodes like fe's own.

Never edit a released migration: add a new one at the end, together with SQLite's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from fe.catalog.account import BUILTIN_ROLES, ROOT_HOST, ROOT_ROLE, ROOT_USER, Credentials
from fe.catalog.errors import CatalogError

APPLICATION = "fe catalog"
CHANNEL = "fe_catalog"
# pg_advisory_xact_lock key for migrations and `fe catalog copy`: "feCT" followed by 1.
MIGRATION_LOCK = 0x6665435400000001
MIGRATION_LOCK_TIMEOUT = "60s"

Connection = psycopg.Connection[Any]
Migration = Callable[[Connection], None]


def watch_table(conn: Connection, table: str) -> None:
    """Make every change to `table` bump the change counter and notify the nodes."""
    conn.execute(
        sql.SQL(
            "CREATE TRIGGER fe_catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {} "
            "FOR EACH STATEMENT EXECUTE FUNCTION fe_catalog_changed()"
        ).format(sql.Identifier(table))
    )


def _v1_users_roles_grants(conn: Connection) -> None:
    conn.execute(
        """
        CREATE TABLE fe_change_counter (
            id      smallint PRIMARY KEY CHECK (id = 1),
            version bigint NOT NULL
        )
        """
    )
    conn.execute("INSERT INTO fe_change_counter (id, version) VALUES (1, 0)")
    conn.execute(
        """
        CREATE FUNCTION fe_catalog_changed() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
        DECLARE
            changed bigint;
        BEGIN
            UPDATE fe_change_counter SET version = version + 1 WHERE id = 1 RETURNING version INTO changed;
            PERFORM pg_notify('fe_catalog', changed::text);
            RETURN NULL;
        END
        $$
        """
    )
    conn.execute(
        # created_at: the text SQLite's strftime('%Y-%m-%dT%H:%M:%fZ', 'now') writes, so both backends agree.
        """
        CREATE TABLE users (
            name        text COLLATE "C" NOT NULL,
            host        text COLLATE "C" NOT NULL,
            plugin      text NOT NULL,
            auth_string text NOT NULL,
            created_at  text NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
            PRIMARY KEY (name, host)
        )
        """
    )
    conn.execute(
        """
        CREATE TABLE roles (
            name       text COLLATE "C" PRIMARY KEY,
            builtin    boolean NOT NULL DEFAULT false,
            created_at text NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
        )
        """
    )
    conn.execute(
        """
        CREATE TABLE role_grants (
            user_name text COLLATE "C" NOT NULL,
            user_host text COLLATE "C" NOT NULL,
            role      text COLLATE "C" NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
            PRIMARY KEY (user_name, user_host, role),
            FOREIGN KEY (user_name, user_host) REFERENCES users (name, host) ON DELETE CASCADE
        )
        """
    )
    conn.execute("CREATE INDEX role_grants_by_role ON role_grants (role)")
    for table in ("users", "roles", "role_grants"):
        watch_table(conn, table)
    with conn.cursor() as cursor:
        cursor.executemany("INSERT INTO roles (name, builtin) VALUES (%s, true)", [(role,) for role in BUILTIN_ROLES])


def _v2_plugin_display_and_default_roles(conn: Connection) -> None:
    conn.execute("ALTER TABLE users ADD COLUMN plugin_display text NOT NULL DEFAULT ''")
    conn.execute("UPDATE users SET plugin_display = upper(plugin) WHERE plugin_display = ''")
    conn.execute(
        """
        CREATE TABLE default_roles (
            user_name text COLLATE "C" NOT NULL,
            user_host text COLLATE "C" NOT NULL,
            role      text COLLATE "C" NOT NULL,
            position  integer NOT NULL,
            PRIMARY KEY (user_name, user_host, role),
            FOREIGN KEY (user_name, user_host, role)
                REFERENCES role_grants (user_name, user_host, role) ON DELETE CASCADE
        )
        """
    )
    watch_table(conn, "default_roles")


def _v3_role_inheritance(conn: Connection) -> None:
    """GRANT r TO ROLE r2: `role` holds `granted_role` (and everything that holds)."""
    conn.execute(
        """
        CREATE TABLE role_inheritance (
            role         text COLLATE "C" NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
            granted_role text COLLATE "C" NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
            PRIMARY KEY (role, granted_role)
        )
        """
    )
    conn.execute("CREATE INDEX role_inheritance_by_granted ON role_inheritance (granted_role)")
    watch_table(conn, "role_inheritance")


def _v4_integrations_group_providers_external_groups(conn: Connection) -> None:
    """Security integrations and group providers (their validated, normalised PROPERTIES as a JSON object), roles
    granted to external groups, and the frontend settings ADMIN SET FRONTEND CONFIG persists."""
    for table in ("security_integrations", "group_providers"):
        conn.execute(
            sql.SQL(
                """
                CREATE TABLE {} (
                    name       text COLLATE "C" PRIMARY KEY,
                    type       text NOT NULL,
                    properties text NOT NULL,
                    created_at text NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
                )
                """
            ).format(sql.Identifier(table))
        )
    conn.execute(
        """
        CREATE TABLE external_group_grants (
            group_name text COLLATE "C" NOT NULL,
            role       text COLLATE "C" NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
            PRIMARY KEY (group_name, role)
        )
        """
    )
    conn.execute("CREATE INDEX external_group_grants_by_role ON external_group_grants (role)")
    conn.execute(
        """
        CREATE TABLE frontend_config (
            key        text COLLATE "C" PRIMARY KEY,
            value      text NOT NULL,
            updated_at text NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
        )
        """
    )
    for table in ("security_integrations", "group_providers", "external_group_grants", "frontend_config"):
        watch_table(conn, table)


MIGRATIONS: tuple[Migration, ...] = (
    _v1_users_roles_grants,
    _v2_plugin_display_and_default_roles,
    _v3_role_inheritance,
    _v4_integrations_group_providers_external_groups,
)

SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: Connection) -> int:
    """The number of migrations applied; 0 for a database without an fe catalog. Raises CatalogError for a
    database that holds something else (tables named like the catalog's, but no version record)."""
    row = conn.execute(
        "SELECT to_regclass('fe_schema_version') IS NOT NULL, to_regclass('users') IS NOT NULL"
    ).fetchone()
    assert row is not None
    has_version, has_users = row
    if not has_version:
        if has_users:
            raise CatalogError("the database holds a 'users' table but no fe catalog: it is not an fe catalog")
        return 0
    row = conn.execute("SELECT application, version FROM fe_schema_version WHERE id = 1").fetchone()
    if row is None or row[0] != APPLICATION:
        raise CatalogError("the database's fe_schema_version does not name an fe catalog")
    return int(row[1])


def lock_for_migration(conn: Connection) -> None:
    """Inside a transaction: wait (at most MIGRATION_LOCK_TIMEOUT) until no other node migrates or copies."""
    conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(MIGRATION_LOCK_TIMEOUT)))
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))


def create_schema(conn: Connection, target: int = SCHEMA_VERSION) -> None:
    """Inside a transaction holding the migration lock, on a database without a catalog: the migrations up to
    `target` (all but in tests)."""
    conn.execute(
        """
        CREATE TABLE fe_schema_version (
            id          smallint PRIMARY KEY CHECK (id = 1),
            application text NOT NULL,
            version     integer NOT NULL
        )
        """
    )
    conn.execute("INSERT INTO fe_schema_version (id, application, version) VALUES (1, %s, 0)", (APPLICATION,))
    for migration in MIGRATIONS[:target]:
        migration(conn)
    _set_version(conn, target)


def migrate(conn: Connection, root: Callable[[], Credentials] | None = None) -> int:
    """Bring the database's catalog to SCHEMA_VERSION; returns the version it had. A database without one gets the
    whole schema and, when `root` is given, the root user with the credentials it makes (called only then: it
    may hash a password). `conn` is in autocommit mode.

    Raises CatalogError for a database from a newer fe or one that is not an fe catalog.
    """
    with conn.transaction():
        lock_for_migration(conn)
        found = schema_version(conn)
        _refuse_newer(found)
        if found == 0:
            create_schema(conn)
            if root is not None:
                insert_root(conn, root())
            return 0
    version = found
    while version < SCHEMA_VERSION:
        with conn.transaction():
            lock_for_migration(conn)
            version = schema_version(conn)
            _refuse_newer(version)
            if version < SCHEMA_VERSION:
                MIGRATIONS[version](conn)
                version += 1
                _set_version(conn, version)
    return found


def insert_root(conn: Connection, root: Credentials) -> None:
    conn.execute(
        "INSERT INTO users (name, host, plugin, auth_string, plugin_display) VALUES (%s, %s, %s, %s, %s)",
        (ROOT_USER, ROOT_HOST, root.plugin, root.auth_string, root.plugin_display),
    )
    conn.execute(
        "INSERT INTO role_grants (user_name, user_host, role) VALUES (%s, %s, %s)", (ROOT_USER, ROOT_HOST, ROOT_ROLE)
    )
    conn.execute(
        "INSERT INTO default_roles (user_name, user_host, role, position) VALUES (%s, %s, %s, 0)",
        (ROOT_USER, ROOT_HOST, ROOT_ROLE),
    )


def _set_version(conn: Connection, version: int) -> None:
    conn.execute("UPDATE fe_schema_version SET version = %s WHERE id = 1", (version,))


def _refuse_newer(version: int) -> None:
    if version > SCHEMA_VERSION:
        raise CatalogError(
            f"the catalog has schema version {version}, newer than this fe understands ({SCHEMA_VERSION}); "
            "run a newer fe"
        )
