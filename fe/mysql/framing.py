"""Sans-IO packet framing: bytes in, whole (sequence id, payload) packets out.

Packets are cut out of the buffer only when asked for, one at a time: after the SSLRequest, the bytes that
follow in the same read are the TLS ClientHello and must be handed to TLS untouched (`take_unparsed`).
"""

from __future__ import annotations

from typing import NamedTuple

from fe.mysql.codec import PacketTooLarge
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


_new_tuple = tuple.__new__


class PacketDecoder:
    __slots__ = ("_chunks", "_first_seq", "_last_seq", "buffer", "chunks_size", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # Received bytes not cut into packets yet (others may look: fewer than 4 means no packet is ready).
        self.buffer = bytearray()
        # A payload of exactly 0xFFFFFF bytes continues in the next packet; parts gather here.
        self._chunks: list[bytes] = []
        self.chunks_size = 0
        self._first_seq = 0
        self._last_seq = 0

    def feed(self, data: bytes) -> int:
        """Add received bytes; returns how many are buffered now (`buffered`). Nothing is parsed here: bytes after a
        packet may belong to TLS, not to us."""
        buffer = self.buffer
        buffer += data
        return len(buffer) + self.chunks_size

    def next_packet(self) -> Packet | None:
        """The next whole packet, or None; raises PacketTooLarge as soon as a header announces too much, and
        SequenceMismatch when a continuation packet's sequence id does not follow its predecessor's."""
        buffer = self.buffer
        while len(buffer) >= 4:
            length = buffer[0] | buffer[1] << 8 | buffer[2] << 16  # the header, read in place (codec.decode_header)
            seq = buffer[3]
            chunks = self._chunks
            if self.chunks_size + length > self.limit:
                raise PacketTooLarge(self.chunks_size + length, self.limit)
            if chunks and seq != (self._last_seq + 1) & 0xFF:
                raise SequenceMismatch(seq, (self._last_seq + 1) & 0xFF)
            end = 4 + length
            if len(buffer) < end:
                return None
            payload = bytes(buffer[4:end])
            del buffer[:end]
            if not chunks:
                self._first_seq = seq
            self._last_seq = seq
            if length == MAX_PAYLOAD:
                chunks.append(payload)
                self.chunks_size += length
                continue
            if chunks:
                chunks.append(payload)
                payload = b"".join(chunks)
                chunks.clear()
                self.chunks_size = 0
            # tuple.__new__ builds the same Packet as Packet(...), without namedtuple's Python-level __new__.
            return _new_tuple(Packet, (self._first_seq, (seq + 1) & 0xFF, payload))
        return None

    def take_unparsed(self) -> bytes:
        """Bytes received after the last whole packet (e.g. a TLS ClientHello), handed over and forgotten."""
        rest = bytes(self.buffer)
        self.buffer.clear()
        return rest

    @property
    def buffered(self) -> int:
        return len(self.buffer) + self.chunks_size
