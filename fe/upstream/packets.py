"""The packets of the client side of the handshake: parsing the upstream's greeting, building the SSLRequest,
HandshakeResponse41 and COM_CHANGE_USER, and reading OK packets (payloads only; framing is the protocol's)."""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from fe.mysql.codec import Cursor, MalformedPacket, lenenc_bytes
from fe.mysql.constants import Capability, Command

MARIADB_VERSION_PREFIX = "5.5.5-"
DEFAULT_MAX_PACKET = 1 << 30
# MariaDB's attributes beyond performance_schema_session_connect_attrs_size are cut; MySQL caps the block at 64 KiB.
MAX_ATTRIBUTES_BYTES = 65535


@dataclass(frozen=True, slots=True)
class Greeting:
    """The upstream's HandshakeV10."""

    server_version: str  # as sent, e.g. "5.5.5-10.11.19-MariaDB-0+deb12u1"
    connection_id: int
    nonce: bytes  # the 20-byte scramble
    capabilities: int  # the standard 32 bits
    mariadb_capabilities: int  # MariaDB's extended capabilities (the reserved bytes), 0 from MySQL
    charset: int
    status: int
    auth_plugin: str

    @property
    def version(self) -> str:
        """The version without MariaDB's `5.5.5-` prefix for old replication clients."""
        if self.server_version.startswith(MARIADB_VERSION_PREFIX):
            return self.server_version[len(MARIADB_VERSION_PREFIX) :]
        return self.server_version

    @property
    def is_mariadb(self) -> bool:
        return "MariaDB" in self.server_version


@dataclass(frozen=True, slots=True)
class OkPacket:
    affected_rows: int
    last_insert_id: int
    status: int
    warnings: int


def parse_greeting(payload: bytes) -> Greeting:
    """A HandshakeV10 payload; raises MalformedPacket for anything else (an ERR is the caller's to check first)."""
    cur = Cursor(payload)
    version = cur.int1()
    if version != 10:
        raise MalformedPacket(f"unsupported handshake protocol version {version}")
    server_version = cur.nul_bytes().decode("utf-8", "replace")
    connection_id = cur.int4()
    nonce = cur.take(8)
    cur.take(1)
    capabilities = cur.int2()
    charset = status = nonce_length = mariadb_caps = 0
    plugin = ""
    if not cur.at_end():
        charset = cur.int1()
        status = cur.int2()
        capabilities |= cur.int2() << 16
        nonce_length = cur.int1()
        cur.take(6)
        reserved = cur.int4()
        if not capabilities & Capability.LONG_PASSWORD:  # MariaDB clears CLIENT_MYSQL and uses these bytes
            mariadb_caps = reserved
        if capabilities & Capability.SECURE_CONNECTION:
            # At least 13 bytes, the last a NUL; the scramble is 20 bytes in all.
            part2 = cur.take(max(13, nonce_length - 8))
            nonce += part2[:-1] if part2.endswith(b"\x00") else part2
        if capabilities & Capability.PLUGIN_AUTH and not cur.at_end():
            # Some servers omit the final NUL (MySQL bug #59453): the plugin name then runs to the end.
            rest = cur.rest()
            plugin = rest.split(b"\x00", 1)[0].decode("ascii", "replace")
    if not capabilities & Capability.PROTOCOL_41:
        raise MalformedPacket("the upstream does not speak protocol 4.1")
    return Greeting(server_version, connection_id, nonce, capabilities, mariadb_caps, charset, status, plugin)


def parse_ok(payload: bytes) -> OkPacket:
    """An OK packet (`00`, or `FE` ending a result set under DEPRECATE_EOF), or a 5-byte EOF packet."""
    cur = Cursor(payload)
    header = cur.int1()
    if header not in (0x00, 0xFE):
        raise MalformedPacket(f"not an OK packet (0x{header:02x})")
    if header == 0xFE and len(payload) < 7:
        warnings = cur.int2()
        return OkPacket(0, 0, cur.int2(), warnings)
    affected = cur.lenenc_int()
    insert_id = cur.lenenc_int()
    status = cur.int2()
    warnings = cur.int2() if cur.remaining >= 2 else 0
    return OkPacket(affected, insert_id, status, warnings)


def encode_attributes(attributes: Mapping[str, str]) -> bytes:
    """The connection-attributes block: its length, then each key and value length-encoded."""
    body = b"".join(lenenc_bytes(k.encode()) + lenenc_bytes(v.encode()) for k, v in attributes.items())
    if len(body) > MAX_ATTRIBUTES_BYTES:
        raise ValueError(f"connection attributes take {len(body)} bytes, more than {MAX_ATTRIBUTES_BYTES}")
    return lenenc_bytes(body)


def _fixed_head(capabilities: int, max_packet: int, charset: int) -> bytes:
    # 23 filler bytes; MariaDB would read its extended capabilities from the last 4, which fe leaves at 0.
    return struct.pack("<IIB", capabilities & 0xFFFFFFFF, max_packet, charset) + bytes(23)


def ssl_request(capabilities: int, max_packet: int, charset: int) -> bytes:
    return _fixed_head(capabilities | Capability.SSL, max_packet, charset)


def handshake_response(
    capabilities: int,
    max_packet: int,
    charset: int,
    user: str,
    auth_response: bytes,
    database: str,
    plugin: str,
    attributes: Mapping[str, str],
) -> bytes:
    """HandshakeResponse41 laid out as `capabilities` say (the caller's flags, SSL included when on TLS)."""
    parts = [_fixed_head(capabilities, max_packet, charset), user.encode() + b"\x00"]
    if capabilities & Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA:
        parts.append(lenenc_bytes(auth_response))
    else:
        if len(auth_response) > 255:
            raise ValueError("an auth response over 255 bytes needs PLUGIN_AUTH_LENENC_CLIENT_DATA")
        parts.append(bytes((len(auth_response),)) + auth_response)
    if capabilities & Capability.CONNECT_WITH_DB:
        parts.append(database.encode() + b"\x00")
    elif database:
        raise ValueError("a database needs CONNECT_WITH_DB")
    parts.append(plugin.encode() + b"\x00")
    if capabilities & Capability.CONNECT_ATTRS:
        parts.append(encode_attributes(attributes))
    return b"".join(parts)


def change_user(
    capabilities: int,
    charset: int,
    user: str,
    auth_response: bytes,
    database: str,
    plugin: str,
    attributes: Mapping[str, str],
) -> bytes:
    """COM_CHANGE_USER: the auth response always has a one-byte length here, whatever the handshake agreed."""
    if len(auth_response) > 255:
        raise ValueError("a COM_CHANGE_USER auth response is at most 255 bytes")
    parts = [
        bytes((Command.CHANGE_USER,)),
        user.encode() + b"\x00",
        bytes((len(auth_response),)) + auth_response,
        database.encode() + b"\x00",
        struct.pack("<H", charset),
        plugin.encode() + b"\x00",
    ]
    if capabilities & Capability.CONNECT_ATTRS:
        parts.append(encode_attributes(attributes))
    return b"".join(parts)
