"""Typed protocol messages: parsers for what clients send, builders for what the server sends (payloads only)."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from fe.mysql.codec import Cursor, MalformedPacket, lenenc_bytes, lenenc_int
from fe.mysql.constants import CHARSET_BINARY, CHARSET_UTF8MB4_0900, Capability, ColumnType

SSL_REQUEST_LENGTH = 32
_HELLO_HEAD = struct.Struct("<IIB")  # capabilities, max packet size, character set
# The greeting after the server version: connection id, nonce[:8], a 0 filler, capabilities' low half, character
# set, status, capabilities' high half, auth data length (21), 10 reserved zero bytes, nonce[8:] and its NUL.
_GREETING_FIXED = struct.Struct("<I8sxHBHHB10x12sx")
_OK_FIXED = struct.Struct("<BBBHH")  # header, affected rows and last insert id (each < 0xFB), status, warnings
MAX_ATTRIBUTES = 64
# Capability bits as plain ints for the parsers (in Python 3.11 each `Capability.X` costs a call of the enum
# metaclass's __getattr__ hook).
_PROTOCOL_41 = int(Capability.PROTOCOL_41)
_SSL = int(Capability.SSL)
_LENENC_CLIENT_DATA = int(Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA)
_SECURE_CONNECTION = int(Capability.SECURE_CONNECTION)
_CONNECT_WITH_DB = int(Capability.CONNECT_WITH_DB)
_PLUGIN_AUTH = int(Capability.PLUGIN_AUTH)
_CONNECT_ATTRS = int(Capability.CONNECT_ATTRS)
_LONGLONG = int(ColumnType.LONGLONG)


# Parsed client messages: plain slotted dataclasses, like the protocol's events (a frozen one pays an
# object.__setattr__ per field at every login); nothing changes them after parsing.
@dataclass(slots=True)
class SSLRequest:
    capabilities: int
    max_packet: int
    charset: int


@dataclass(slots=True)
class HandshakeResponse:
    capabilities: int
    max_packet: int
    charset: int
    user: str
    auth_response: bytes
    database: str
    plugin: str
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ChangeUser:
    user: str
    auth_response: bytes
    database: str
    charset: int
    plugin: str
    attributes: dict[str, str] = field(default_factory=dict)


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedPacket(f"{what} is not valid UTF-8") from None


def parse_client_hello(payload: bytes, server_capabilities: int) -> SSLRequest | HandshakeResponse:
    """The client's first packet: an SSLRequest (exactly 32 bytes with CLIENT_SSL) or a HandshakeResponse41."""
    if len(payload) < SSL_REQUEST_LENGTH:
        raise MalformedPacket(f"handshake response too short ({len(payload)} bytes)")
    client_caps, max_packet, charset = _HELLO_HEAD.unpack_from(payload)  # then 23 reserved bytes
    if not client_caps & _PROTOCOL_41:
        raise MalformedPacket("client does not speak protocol 4.1")
    if len(payload) == SSL_REQUEST_LENGTH and client_caps & _SSL:
        return SSLRequest(client_caps, max_packet, charset)
    cur = Cursor(payload, SSL_REQUEST_LENGTH)
    return _parse_handshake_body(cur, client_caps & server_capabilities, max_packet, charset)


def _parse_handshake_body(cur: Cursor, caps: int, max_packet: int, charset: int) -> HandshakeResponse:
    user = _text(cur.nul_bytes(), "user name")
    if caps & _LENENC_CLIENT_DATA:
        auth = cur.lenenc_bytes()
    elif caps & _SECURE_CONNECTION:
        auth = cur.take(cur.int1())
    else:
        auth = cur.nul_bytes()
    database = ""
    if caps & _CONNECT_WITH_DB and not cur.at_end():
        database = _text(cur.nul_bytes(), "database name")
    plugin = ""
    if caps & _PLUGIN_AUTH and not cur.at_end():
        plugin = _text(cur.nul_bytes(), "plugin name")
    attributes: dict[str, str] = {}
    if caps & _CONNECT_ATTRS and not cur.at_end():
        attributes = _parse_attributes(cur)
    return HandshakeResponse(caps, max_packet, charset, user, auth, database, plugin, attributes)


def _parse_attributes(cur: Cursor) -> dict[str, str]:
    block = Cursor(cur.lenenc_bytes())
    attributes: dict[str, str] = {}
    while not block.at_end():
        key = block.lenenc_bytes().decode("utf-8", "replace")
        value = block.lenenc_bytes().decode("utf-8", "replace")
        if len(attributes) < MAX_ATTRIBUTES:
            attributes[key] = value
    return attributes


def parse_change_user(payload: bytes, caps: int) -> ChangeUser:
    cur = Cursor(payload)
    if cur.int1() != 0x11:
        raise MalformedPacket("not a COM_CHANGE_USER packet")
    user = _text(cur.nul_bytes(), "user name")
    auth = cur.take(cur.int1()) if caps & _SECURE_CONNECTION else cur.nul_bytes()
    database = _text(cur.nul_bytes(), "database name")
    charset = CHARSET_UTF8MB4_0900
    plugin = ""
    attributes: dict[str, str] = {}
    if cur.remaining >= 2:
        charset = cur.int2()
        if caps & _PLUGIN_AUTH and not cur.at_end():
            plugin = _text(cur.nul_bytes(), "plugin name")
        if caps & _CONNECT_ATTRS and not cur.at_end():
            attributes = _parse_attributes(cur)
    return ChangeUser(user, auth, database, charset, plugin, attributes)


def parse_token_packet(payload: bytes) -> bytes:
    """`[0x01][length-encoded JWT]`, as the OIDC client plugins send it; nothing may follow."""
    cur = Cursor(payload)
    if cur.int1() != 0x01:
        raise MalformedPacket("token packet must start with capability byte 0x01")
    token = cur.lenenc_bytes()
    if not cur.at_end():
        raise MalformedPacket("trailing bytes after the token")
    if not token:
        raise MalformedPacket("empty token")
    return token


# ---- what the server sends ----


def greeting(
    connection_id: int, nonce: bytes, capabilities: int, server_version: str, plugin: str, status: int
) -> bytes:
    if len(nonce) != 20:
        raise ValueError("the greeting nonce must be 20 bytes")
    fixed = _GREETING_FIXED.pack(
        connection_id & 0xFFFFFFFF, nonce[:8], capabilities & 0xFFFF, CHARSET_UTF8MB4_0900, status,
        (capabilities >> 16) & 0xFFFF, 21, nonce[8:],
    )  # fmt: skip
    return b"\x0a" + server_version.encode() + b"\x00" + fixed + plugin.encode() + b"\x00"


def ok(
    affected_rows: int = 0,
    last_insert_id: int = 0,
    status: int = 0,
    warnings: int = 0,
    info: str = "",
    header: int = 0x00,
) -> bytes:
    if affected_rows < 0xFB and last_insert_id < 0xFB:  # each a one-byte length-encoded integer
        body = _OK_FIXED.pack(header, affected_rows, last_insert_id, status, min(warnings, 0xFFFF))
    else:
        body = bytes((header,)) + lenenc_int(affected_rows) + lenenc_int(last_insert_id)
        body += struct.pack("<HH", status, min(warnings, 0xFFFF))
    return body + info.encode() if info else body


def err(code: int, sqlstate: str, message: str, protocol41: bool = True) -> bytes:
    head = b"\xff" + struct.pack("<H", code)
    if protocol41:
        head += b"#" + sqlstate.encode()[:5].ljust(5, b"0")
    return head + message.encode("utf-8", "replace")[:512]


def eof(status: int = 0, warnings: int = 0) -> bytes:
    return b"\xfe" + struct.pack("<HH", min(warnings, 0xFFFF), status)


def auth_switch(plugin: str, data: bytes) -> bytes:
    return b"\xfe" + plugin.encode() + b"\x00" + data


def auth_more_data(data: bytes) -> bytes:
    return b"\x01" + data


def column_definition(name: str, type_code: int = ColumnType.VAR_STRING, table: str = "") -> bytes:
    encoded = name.encode()
    numeric = type_code == _LONGLONG
    charset = CHARSET_BINARY if numeric else CHARSET_UTF8MB4_0900
    length = 21 if numeric else 1024
    flags = 0x0081 if numeric else 0x0000  # NOT_NULL | BINARY for numbers
    return b"".join(
        (
            lenenc_bytes(b"def"),
            lenenc_bytes(b""),
            lenenc_bytes(table.encode()),
            lenenc_bytes(table.encode()),
            lenenc_bytes(encoded),
            lenenc_bytes(encoded),
            b"\x0c",
            struct.pack("<HIBHB", charset, length, type_code, flags, 0),
            b"\x00\x00",
        )
    )


def text_row(values: Iterable[object]) -> bytes:
    parts = []
    for value in values:
        if value is None:
            parts.append(b"\xfb")
        elif isinstance(value, bytes):
            parts.append(lenenc_bytes(value))
        elif isinstance(value, bool):
            parts.append(b"\x011" if value else b"\x010")
        else:
            parts.append(lenenc_bytes(str(value).encode()))
    return b"".join(parts)


def result_set(
    columns: Sequence[tuple[str, int]],
    rows: Iterable[Iterable[object]],
    status: int,
    deprecate_eof: bool,
    warnings: int = 0,
) -> list[bytes]:
    """Every payload of a text result set, terminated as the client negotiated (EOF, or OK with 0xFE)."""
    payloads = [lenenc_int(len(columns))]
    payloads.extend(column_definition(name, type_code) for name, type_code in columns)
    if not deprecate_eof:
        payloads.append(eof(status, warnings))
    payloads.extend(text_row(row) for row in rows)
    if deprecate_eof:
        payloads.append(ok(status=status, warnings=warnings, header=0xFE))
    else:
        payloads.append(eof(status, warnings))
    return payloads
