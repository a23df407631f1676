"""fe/catalog/security.py's reads and checks (the login snapshot; the checks that run inside a write transaction)
on a PostgreSQL connection, so both catalogs apply the very same rules and messages.

Those functions take an sqlite3 connection and write their SQL with `?` parameters, in SQL both engines read
alike. `QmarkConnection` gives them what they use of it — `execute(sql, params)` returning an iterable cursor
with fetchone() — over psycopg, turning each `?` into `%s`. It does not parse SQL: a `?` inside a string literal
would be taken for a parameter, so the SQL handed to it must not have one (security.py's does not).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, cast

import psycopg

Connection = psycopg.Connection[Any]


class QmarkConnection:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def execute(self, query: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        translated = query.replace("%", "%%").replace("?", "%s")
        return self._conn.execute(translated, tuple(params))


def as_sqlite(conn: Connection) -> sqlite3.Connection:
    """`conn` for fe/catalog/security.py's functions (see the module's docstring for what they may use)."""
    return cast(sqlite3.Connection, QmarkConnection(conn))
