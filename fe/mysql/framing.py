"""Sans-IO packet framing: bytes in, whole (sequence id, payload) packets out.

The decoder says how many bytes it needs next (`bytes_needed`), so a caller that must not read past a packet
(the SSLRequest, right before the TLS ClientHello) can read exactly that much.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

from fe.mysql.codec import PacketTooLarge, decode_header
from fe.mysql.constants import MAX_PAYLOAD


class Packet(NamedTuple):
    seq: int  # sequence id of the (first) packet
    next_seq: int  # the sequence id the reply starts with
    payload: bytes


class PacketDecoder:
    __slots__ = ("_buffer", "_chunks", "_chunks_size", "_first_seq", "_packets", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buffer = bytearray()
        self._packets: deque[Packet] = deque()
        # A payload of exactly 0xFFFFFF bytes continues in the next packet; parts gather here.
        self._chunks: list[bytes] = []
        self._chunks_size = 0
        self._first_seq = 0

    def feed(self, data: bytes) -> None:
        """Add received bytes; raises PacketTooLarge as soon as a header announces too much."""
        self._buffer += data
        buffer = self._buffer
        while len(buffer) >= 4:
            length, seq = decode_header(bytes(buffer[:4]))
            total = self._chunks_size + length
            if total > self.limit:
                raise PacketTooLarge(total, self.limit)
            if len(buffer) < 4 + length:
                break
            payload = bytes(buffer[4 : 4 + length])
            del buffer[: 4 + length]
            if not self._chunks:
                self._first_seq = seq
            if length == MAX_PAYLOAD:
                self._chunks.append(payload)
                self._chunks_size += length
                continue
            if self._chunks:
                self._chunks.append(payload)
                payload = b"".join(self._chunks)
                self._chunks.clear()
                self._chunks_size = 0
            self._packets.append(Packet(self._first_seq, (seq + 1) & 0xFF, payload))

    def next_packet(self) -> Packet | None:
        return self._packets.popleft() if self._packets else None

    def bytes_needed(self) -> int:
        """How many more bytes complete the next header or payload (never more than that)."""
        if self._packets:
            return 0
        if len(self._buffer) < 4:
            return 4 - len(self._buffer)
        length, _ = decode_header(bytes(self._buffer[:4]))
        return 4 + length - len(self._buffer)

    def take_unparsed(self) -> bytes:
        """Bytes received after the last whole packet (e.g. a TLS ClientHello), handed over and forgotten."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest

    @property
    def buffered(self) -> int:
        return len(self._buffer) + self._chunks_size
