"""Sans-IO packet framing: bytes in, whole (sequence id, payload) packets out.

Packets are cut out of the buffer only when asked for, one at a time: after the SSLRequest, the bytes that
follow in the same read are the TLS ClientHello and must be handed to TLS untouched (`take_unparsed`).
"""

from __future__ import annotations

from typing import NamedTuple

from fe.mysql.codec import PacketTooLarge, decode_header
from fe.mysql.constants import MAX_PAYLOAD


class SequenceMismatch(ValueError):
    """A continuation packet whose sequence id does not follow the one before it."""

    def __init__(self, seq: int, expected: int) -> None:
        super().__init__(f"continuation packet has sequence id {seq}, expected {expected}")
        self.seq = seq
        self.expected = expected


class Packet(NamedTuple):
    seq: int  # sequence id of the (first) packet
    next_seq: int  # the sequence id the reply starts with
    payload: bytes


class PacketDecoder:
    __slots__ = ("_buffer", "_chunks", "_chunks_size", "_first_seq", "_last_seq", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buffer = bytearray()
        # A payload of exactly 0xFFFFFF bytes continues in the next packet; parts gather here.
        self._chunks: list[bytes] = []
        self._chunks_size = 0
        self._first_seq = 0
        self._last_seq = 0

    def feed(self, data: bytes) -> None:
        """Add received bytes. Nothing is parsed here: bytes after a packet may belong to TLS, not to us."""
        self._buffer += data

    def next_packet(self) -> Packet | None:
        """The next whole packet, or None; raises PacketTooLarge as soon as a header announces too much, and
        SequenceMismatch when a continuation packet's sequence id does not follow its predecessor's."""
        buffer = self._buffer
        while len(buffer) >= 4:
            length, seq = decode_header(bytes(buffer[:4]))
            total = self._chunks_size + length
            if total > self.limit:
                raise PacketTooLarge(total, self.limit)
            if self._chunks and seq != (self._last_seq + 1) & 0xFF:
                raise SequenceMismatch(seq, (self._last_seq + 1) & 0xFF)
            if len(buffer) < 4 + length:
                return None
            payload = bytes(buffer[4 : 4 + length])
            del buffer[: 4 + length]
            if not self._chunks:
                self._first_seq = seq
            self._last_seq = seq
            if length == MAX_PAYLOAD:
                self._chunks.append(payload)
                self._chunks_size += length
                continue
            if self._chunks:
                self._chunks.append(payload)
                payload = b"".join(self._chunks)
                self._chunks.clear()
                self._chunks_size = 0
            return Packet(self._first_seq, (seq + 1) & 0xFF, payload)
        return None

    def take_unparsed(self) -> bytes:
        """Bytes received after the last whole packet (e.g. a TLS ClientHello), handed over and forgotten."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest

    @property
    def buffered(self) -> int:
        return len(self._buffer) + self._chunks_size
