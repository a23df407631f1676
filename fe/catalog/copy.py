"""`fe catalog copy`: move an SQLite catalog into PostgreSQL, every table, in one PostgreSQL transaction.

The source is read from a consistent snapshot (SQLite's backup API into memory; the file is never written, and a
server may keep running on it). An older source is migrated in that copy first. The target must be empty: a
database without an fe catalog, or one holding only what a first start creates (root and the built-in roles).
Anything else is refused unless `force`, which replaces the target's contents (nodes running on it see the change
like any other). A source with a table this fe does not know how to copy is refused: nothing is ever dropped
silently.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from fe.catalog import migrations as sqlite_schema
from fe.catalog.account import BUILTIN_ROLES, ROOT_HOST, ROOT_USER
from fe.catalog.errors import CatalogError
from fe.catalog.pg import schema as pg_schema
from fe.catalog.pg.location import PostgresLocation


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    # SQLite value → PostgreSQL value, for the columns whose types differ.
    convert: dict[str, Callable[[Any], Any]] = field(default_factory=dict)


# Every catalog table, parents before children (foreign keys).
TABLES: tuple[Table, ...] = (
    Table("roles", ("name", "builtin", "created_at"), {"builtin": bool}),
    Table("users", ("name", "host", "plugin", "auth_string", "plugin_display", "created_at")),
    Table("role_grants", ("user_name", "user_host", "role")),
    Table("default_roles", ("user_name", "user_host", "role", "position")),
    Table("role_inheritance", ("role", "granted_role")),
    Table("security_integrations", ("name", "type", "properties", "created_at")),
    Table("group_providers", ("name", "type", "properties", "created_at")),
    Table("external_group_grants", ("group_name", "role")),
    Table("frontend_config", ("key", "value", "updated_at")),
)


class CopyRefused(CatalogError):
    """The copy was not made (nothing changed in the target); the message says why and what to do."""


def copy_catalog(source: Path, target: PostgresLocation, *, force: bool = False) -> dict[str, int]:
    """Copy the SQLite catalog at `source` into the PostgreSQL database `target`; returns the rows per table."""
    if pg_schema.SCHEMA_VERSION != sqlite_schema.SCHEMA_VERSION:
        raise CopyRefused(
            f"this fe's PostgreSQL schema (version {pg_schema.SCHEMA_VERSION}) does not match its SQLite schema "
            f"(version {sqlite_schema.SCHEMA_VERSION}): it cannot copy catalogs"
        )
    snapshot = _read_source(source)
    try:
        return _write_target(snapshot, target, force=force)
    finally:
        snapshot.close()


def _read_source(source: Path) -> sqlite3.Connection:
    if not source.is_file():
        raise CopyRefused(f"{source} does not exist or is not a file")
    snapshot = sqlite3.connect(":memory:", isolation_level=None)
    try:
        try:
            original = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
            try:
                original.backup(snapshot)
            finally:
                original.close()
            problems = [row[0] for row in snapshot.execute("PRAGMA quick_check")]
            application_id = snapshot.execute("PRAGMA application_id").fetchone()[0]
            version = sqlite_schema.schema_version(snapshot)
        except sqlite3.DatabaseError as exc:
            raise CopyRefused(f"{source} is unreadable or corrupt ({exc})") from None
        if problems != ["ok"]:
            raise CopyRefused(f"{source} is corrupt ({'; '.join(problems[:3])})")
        if application_id != sqlite_schema.APPLICATION_ID or version == 0:
            raise CopyRefused(f"{source} is not an fe user catalog")
        if version > sqlite_schema.SCHEMA_VERSION:
            raise CopyRefused(f"{source} has schema version {version}, newer than this fe understands; use a newer fe")
        snapshot.execute("PRAGMA foreign_keys = ON")
        sqlite_schema.migrate(snapshot)
        tables = {
            name
            for (name,) in snapshot.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not name.startswith("sqlite_")
        }
        unknown = tables - {table.name for table in TABLES}
        if unknown:
            raise CopyRefused(f"{source} has tables this fe cannot copy: {', '.join(sorted(unknown))}")
    except BaseException:
        snapshot.close()
        raise
    return snapshot


def _write_target(snapshot: sqlite3.Connection, target: PostgresLocation, *, force: bool) -> dict[str, int]:
    where = target.describe()
    counts: dict[str, int] = {}
    try:
        with psycopg.connect(**target.connect_kwargs(), autocommit=True) as conn, conn.transaction():
            pg_schema.lock_for_migration(conn)
            version = pg_schema.schema_version(conn)
            if version == 0:
                pg_schema.create_schema(conn)
            elif version != pg_schema.SCHEMA_VERSION:
                raise CopyRefused(
                    f"{where} holds an fe catalog of schema version {version}, this fe's is "
                    f"{pg_schema.SCHEMA_VERSION}: copy with the fe that matches it"
                )
            # Writers on running nodes wait for this transaction, as they wait for each other.
            conn.execute("SELECT version FROM fe_change_counter WHERE id = 1 FOR UPDATE")
            if version != 0:
                _require_empty(conn, where, force)
            # What a first start (or the schema's creation) put there gives way to the source's rows.
            for table in reversed(TABLES):
                conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table.name)))
            for table in TABLES:
                counts[table.name] = _copy_table(snapshot, conn, table)
            root = conn.execute("SELECT 1 FROM users WHERE name = %s AND host = %s", (ROOT_USER, ROOT_HOST)).fetchone()
            if root is None:
                raise CopyRefused("the source catalog has no root user: nothing was copied")
    except CatalogError as exc:
        if isinstance(exc, CopyRefused):
            raise
        raise CopyRefused(f"{where}: {exc}") from None
    except psycopg.Error as exc:
        lines = str(exc).strip().splitlines()
        reason = target.mask(lines[0] if lines else type(exc).__name__)
        raise CatalogError(f"copying into {where} failed, nothing was copied: {reason}") from None
    return counts


def _require_empty(conn: psycopg.Connection[Any], where: str, force: bool) -> None:
    row = conn.execute(
        """
        SELECT (SELECT count(*) FROM users WHERE NOT (name = %s AND host = %s)),
               (SELECT count(*) FROM roles WHERE NOT (name = ANY(%s))),
               (SELECT count(*) FROM role_inheritance),
               (SELECT count(*) FROM security_integrations) + (SELECT count(*) FROM group_providers)
                   + (SELECT count(*) FROM external_group_grants) + (SELECT count(*) FROM frontend_config)
        """,
        (ROOT_USER, ROOT_HOST, list(BUILTIN_ROLES)),
    ).fetchone()
    assert row is not None
    users, roles, inheritance, security = (int(value) for value in row)
    if (users or roles or inheritance or security) and not force:
        raise CopyRefused(
            f"{where} already holds a catalog ({users} user(s) besides root, {roles} role(s) besides the built-in "
            f"ones, {inheritance} role-to-role grant(s), {security} integration, group provider, external group "
            "or frontend setting row(s)); copy with --force to replace all of it"
        )


def _copy_table(snapshot: sqlite3.Connection, conn: psycopg.Connection[Any], table: Table) -> int:
    columns = ", ".join(f'"{column}"' for column in table.columns)
    rows = snapshot.execute(f'SELECT {columns} FROM "{table.name}"')
    converters = [table.convert.get(column) for column in table.columns]
    copy = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(sql.Identifier(column) for column in table.columns)
    )
    count = 0
    with conn.cursor() as cursor, cursor.copy(copy) as writer:
        for row in rows:
            writer.write_row(
                [value if convert is None else convert(value) for value, convert in zip(row, converters, strict=True)]
            )
            count += 1
    return count
