"""Reading what the upstream relay passed on, for assertions: raw bytes back into packets and text rows."""

from __future__ import annotations

from dataclasses import dataclass, field

from fe.mysql.codec import Cursor
from fe.mysql.constants import MAX_PAYLOAD, Capability
from fe.upstream.connection import UpstreamConnection
from fe.upstream.errors import ServerError
from fe.upstream.response import Outcome


@dataclass
class Collector:
    """A relay sink that keeps everything (for small responses) and counts the chunks."""

    data: bytearray = field(default_factory=bytearray)
    chunks: int = 0

    async def __call__(self, chunk: bytes) -> None:
        self.data += chunk
        self.chunks += 1

    def packets(self) -> list[tuple[int, bytes]]:
        return split_packets(bytes(self.data))


def split_packets(data: bytes) -> list[tuple[int, bytes]]:
    """(sequence id, payload) of each logical packet; continuation packets joined. Raises on trailing bytes."""
    packets: list[tuple[int, bytes]] = []
    pos = 0
    parts: list[bytes] = []
    first_seq = 0
    while pos < len(data):
        assert len(data) - pos >= 4, "a truncated header"
        length = int.from_bytes(data[pos : pos + 3], "little")
        seq = data[pos + 3]
        payload = data[pos + 4 : pos + 4 + length]
        assert len(payload) == length, "a truncated packet"
        if not parts:
            first_seq = seq
        parts.append(payload)
        pos += 4 + length
        if length < MAX_PAYLOAD:
            packets.append((first_seq, b"".join(parts)))
            parts = []
    assert not parts, "an unfinished continuation"
    return packets


def text_rows(packets: list[tuple[int, bytes]], deprecate_eof: bool) -> list[list[bytes | None]]:
    """The rows of the single text result set in `packets`."""
    payloads = [payload for _, payload in packets]
    columns = Cursor(payloads[0]).lenenc_int()
    start = 1 + columns + (0 if deprecate_eof else 1)
    rows: list[list[bytes | None]] = []
    for payload in payloads[start:-1]:
        cur = Cursor(payload)
        row: list[bytes | None] = []
        for _ in range(columns):
            if cur.data[cur.pos] == 0xFB:
                cur.take(1)
                row.append(None)
            else:
                row.append(cur.lenenc_bytes())
        rows.append(row)
    assert payloads[-1][0] == 0xFE, "the result set does not end with EOF/OK"
    return rows


def err_code(payload: bytes) -> int:
    assert payload[0] == 0xFF
    return int.from_bytes(payload[1:3], "little")


class QueryFailed(AssertionError):
    def __init__(self, error: ServerError) -> None:
        super().__init__(str(error))
        self.error = error


async def query(connection: UpstreamConnection, sql: str) -> list[list[bytes | None]]:
    """The rows of one statement run through the relay (none for an OK); raises QueryFailed on an ERR."""
    sink = Collector()
    result = await connection.relay(b"\x03" + sql.encode(), sink)
    if result.error is not None:
        raise QueryFailed(result.error)
    if result.outcome is Outcome.OK:
        return []
    return text_rows(sink.packets(), bool(connection.capabilities & Capability.DEPRECATE_EOF))


async def scalar(connection: UpstreamConnection, sql: str) -> bytes | None:
    rows = await query(connection, sql)
    assert len(rows) == 1 and len(rows[0]) == 1, rows
    return rows[0][0]
