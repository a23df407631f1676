"""A long-lived PyMySQL session for the account tests: each statement's column names, rows and warning count,
or the server's error as (errno, message)."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

import pymysql

from tests.support.server import FeProcess


@dataclass
class Reply:
    """What one statement returned: column names (empty for an OK packet), rows, and the OK's warning count."""

    columns: list[str]
    rows: list[tuple]
    warnings: int


class SqlError(AssertionError):
    """A statement expected to succeed got an ERR packet."""


class Session:
    """One PyMySQL connection over TLS; `run` expects success, `error` expects an ERR and returns it."""

    def __init__(self, server: FeProcess, user: str, password: str = "", *, tls: bool = True, **extra: object) -> None:
        ssl_args: dict[str, object] = (
            {"ssl": {"check_hostname": False, "verify_mode": 0}} if tls else {"ssl_disabled": True}
        )
        self.connection = pymysql.connect(
            host=server.host,
            port=server.port,
            user=user,
            password=password,
            connect_timeout=10,
            read_timeout=30,
            **ssl_args,
            **extra,
        )  # type: ignore[arg-type]

    def run(self, sql: str) -> Reply:
        with self.connection.cursor() as cursor:
            try:
                cursor.execute(sql)
            except pymysql.err.MySQLError as exc:
                raise SqlError(f"{sql!r} failed: {exc.args}") from exc
            columns = [column[0] for column in cursor.description] if cursor.description else []
            rows = list(cursor.fetchall())
            result = self.connection._result
            warnings = result.warning_count if result is not None else 0
            return Reply(columns, rows, warnings)

    def rows(self, sql: str) -> list[tuple]:
        return self.run(sql).rows

    def error(self, sql: str) -> tuple[int, str]:
        with self.connection.cursor() as cursor:
            try:
                cursor.execute(sql)
            except pymysql.err.MySQLError as exc:
                return int(exc.args[0]), str(exc.args[1])
        raise AssertionError(f"{sql!r} succeeded; expected an error")

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
