"""What executing a statement produces, independent of the wire format: the server turns these into packets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    name: str
    # MySQL column type code: 0xFD VAR_STRING (default), 0x08 LONGLONG for integers.
    type_code: int = 0xFD


@dataclass(frozen=True)
class OkResult:
    affected_rows: int = 0
    last_insert_id: int = 0
    warnings: int = 0
    info: str = ""


@dataclass(frozen=True)
class ResultSet:
    columns: Sequence[Column]
    # Every value is str, int, bytes or None (NULL); the server sends them as text.
    rows: Sequence[Sequence[object]] = field(default_factory=list)


Result = OkResult | ResultSet


class SqlError(Exception):
    """A statement that failed with a MySQL error code, SQLSTATE and message; the session stays usable."""

    def __init__(self, code: int, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.sqlstate = sqlstate
        self.message = message


def syntax_error(near: str) -> SqlError:
    near = near.strip()
    if len(near) > 80:
        near = near[:80]
    return SqlError(
        1064,
        "42000",
        "You have an error in your SQL syntax; check the manual that corresponds to your fe server "
        f"version for the right syntax to use near '{near}'",
    )
