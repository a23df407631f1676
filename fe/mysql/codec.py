"""Primitive encodings: fixed and length-encoded integers, strings, and the 4-byte packet header."""

from __future__ import annotations

import struct

from fe.mysql.constants import MAX_PAYLOAD

_HEADER = struct.Struct("<I")


class MalformedPacket(ValueError):
    """A payload that does not parse; the message says what was wrong."""


class PacketTooLarge(ValueError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"packet of {size} bytes exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class Cursor:
    """Reads a payload front to back; every read is bounds-checked and raises MalformedPacket when short."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def take(self, n: int) -> bytes:
        pos = self.pos
        end = pos + n
        if n < 0 or end > len(self.data):
            raise MalformedPacket(f"needed {n} bytes at offset {pos}, only {self.remaining} left")
        self.pos = end
        return self.data[pos:end]

    def int1(self) -> int:
        return self.take(1)[0]

    def int2(self) -> int:
        return int.from_bytes(self.take(2), "little")

    def int3(self) -> int:
        return int.from_bytes(self.take(3), "little")

    def int4(self) -> int:
        return int.from_bytes(self.take(4), "little")

    def lenenc_int(self) -> int:
        first = self.take(1)[0]
        if first < 0xFB:
            return first
        if first == 0xFC:
            return self.int2()
        if first == 0xFD:
            return self.int3()
        if first == 0xFE:
            return int.from_bytes(self.take(8), "little")
        raise MalformedPacket(f"invalid length-encoded integer prefix 0x{first:02x}")

    def lenenc_bytes(self) -> bytes:
        return self.take(self.lenenc_int())

    def nul_bytes(self) -> bytes:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise MalformedPacket(f"missing NUL terminator after offset {self.pos}")
        chunk = self.data[self.pos : end]
        self.pos = end + 1
        return chunk

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk


def lenenc_int(value: int) -> bytes:
    if value < 0xFB:
        return bytes((value,))
    if value < 1 << 16:
        return b"\xfc" + value.to_bytes(2, "little")
    if value < 1 << 24:
        return b"\xfd" + value.to_bytes(3, "little")
    return b"\xfe" + value.to_bytes(8, "little")


def lenenc_bytes(value: bytes) -> bytes:
    return lenenc_int(len(value)) + value


def decode_header(header: bytes) -> tuple[int, int]:
    """(payload length, sequence id) of a 4-byte packet header."""
    if len(header) != 4:
        raise MalformedPacket("packet header must be 4 bytes")
    return header[0] | header[1] << 8 | header[2] << 16, header[3]


def frame(payload: bytes, seq: int) -> tuple[bytes, int]:
    """The wire bytes for one logical payload (split at 16 MiB - 1) and the next sequence id."""
    if len(payload) < MAX_PAYLOAD:  # the header: 3 bytes of length, then the sequence id
        return _HEADER.pack(len(payload) | (seq & 0xFF) << 24) + payload, (seq + 1) & 0xFF
    parts = []
    offset = 0
    while True:
        chunk = payload[offset : offset + MAX_PAYLOAD]
        parts.append(len(chunk).to_bytes(3, "little") + bytes((seq & 0xFF,)) + chunk)
        seq = (seq + 1) & 0xFF
        offset += len(chunk)
        if len(chunk) < MAX_PAYLOAD:
            return b"".join(parts), seq
