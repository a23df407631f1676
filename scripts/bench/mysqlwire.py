"""A lean asyncio MySQL client for login storms: connect → TLS → login → query → quit, nothing more.

Off-the-shelf clients cost more CPU per connection than the server under test (a new TLS context per
connection, tens of milliseconds under OpenSSL 3), so the benchmark drives servers with this one. It speaks
just enough of the protocol for that:

- the greeting (HandshakeV10), SSLRequest and the TLS upgrade, HandshakeResponse41;
- auth plugins: caching_sha2_password (fast path and full auth over TLS), mysql_native_password,
  mysql_clear_password (TLS only) and authentication_openid_connect_client (the token packet);
- AuthSwitchRequest / AuthMoreData; COM_QUERY with text result sets (EOF or DEPRECATE_EOF); COM_QUIT.

Every read has a deadline; every failure raises WireError.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import struct
from dataclasses import dataclass

# Capability flags (client/server).
CLIENT_LONG_PASSWORD = 1
CLIENT_PROTOCOL_41 = 1 << 9
CLIENT_SSL = 1 << 11
CLIENT_TRANSACTIONS = 1 << 13
CLIENT_SECURE_CONNECTION = 1 << 15
CLIENT_MULTI_RESULTS = 1 << 17
CLIENT_PLUGIN_AUTH = 1 << 19
CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21
CLIENT_DEPRECATE_EOF = 1 << 24

WANTED_CAPABILITIES = (
    CLIENT_LONG_PASSWORD
    | CLIENT_PROTOCOL_41
    | CLIENT_SSL
    | CLIENT_TRANSACTIONS
    | CLIENT_SECURE_CONNECTION
    | CLIENT_MULTI_RESULTS
    | CLIENT_PLUGIN_AUTH
    | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    | CLIENT_DEPRECATE_EOF
)

PLUGIN_CACHING_SHA2 = "caching_sha2_password"
PLUGIN_NATIVE = "mysql_native_password"
PLUGIN_CLEAR = "mysql_clear_password"
PLUGIN_OIDC_CLIENT = "authentication_openid_connect_client"

UTF8MB4_GENERAL_CI = 45
MAX_PACKET = 1 << 24
COM_QUIT = b"\x01"
COM_QUERY = b"\x03"


class WireError(Exception):
    """Any protocol, transport or server-side failure of one connection."""


class ServerError(WireError):
    """The server answered ERR."""

    def __init__(self, code: int, sqlstate: str, message: str) -> None:
        super().__init__(f"ERR {code} ({sqlstate}): {message}")
        self.code = code
        self.sqlstate = sqlstate
        self.message = message


@dataclass(frozen=True)
class Password:
    value: str


@dataclass(frozen=True)
class Token:
    value: str


Credential = Password | Token


@dataclass(frozen=True)
class Greeting:
    server_version: str
    connection_id: int
    capabilities: int
    nonce: bytes
    plugin: str


def client_tls_context() -> ssl.SSLContext:
    """One context per process: no certificate checks (self-signed test certs), TLS 1.3 only, ECDHE over P-256
    (the server certificate is ECDSA P-256, so the handshake matches the crypto floor), no session tickets, so
    every connection is a full handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.options |= ssl.OP_NO_TICKET
    context.set_ecdh_curve("prime256v1")
    return context


# -- password scrambles ---------------------------------------------------------------------------------------


def scramble_caching_sha2(password: str, nonce: bytes) -> bytes:
    """SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) ‖ nonce); empty for no password."""
    if not password:
        return b""
    stage1 = hashlib.sha256(password.encode()).digest()
    stage2 = hashlib.sha256(stage1).digest()
    mask = hashlib.sha256(stage2 + nonce).digest()
    return bytes(a ^ b for a, b in zip(stage1, mask, strict=True))


def scramble_native(password: str, nonce: bytes) -> bytes:
    """SHA1(pw) XOR SHA1(nonce ‖ SHA1(SHA1(pw))); empty for no password."""
    if not password:
        return b""
    stage1 = hashlib.sha1(password.encode()).digest()
    stage2 = hashlib.sha1(stage1).digest()
    mask = hashlib.sha1(nonce + stage2).digest()
    return bytes(a ^ b for a, b in zip(stage1, mask, strict=True))


# -- encoding helpers -----------------------------------------------------------------------------------------


def lenenc_int(value: int) -> bytes:
    if value < 251:
        return bytes((value,))
    if value < 1 << 16:
        return b"\xfc" + value.to_bytes(2, "little")
    if value < 1 << 24:
        return b"\xfd" + value.to_bytes(3, "little")
    return b"\xfe" + value.to_bytes(8, "little")


def read_lenenc_int(data: bytes, pos: int) -> tuple[int, int]:
    first = data[pos]
    if first < 251:
        return first, pos + 1
    size = {0xFC: 2, 0xFD: 3, 0xFE: 8}.get(first)
    if size is None:
        raise WireError(f"bad length-encoded integer prefix {first:#x}")
    return int.from_bytes(data[pos + 1 : pos + 1 + size], "little"), pos + 1 + size


def read_lenenc_bytes(data: bytes, pos: int) -> tuple[bytes | None, int]:
    if data[pos] == 0xFB:
        return None, pos + 1
    length, pos = read_lenenc_int(data, pos)
    return data[pos : pos + length], pos + length


def parse_greeting(payload: bytes) -> Greeting:
    if not payload:
        raise WireError("empty greeting")
    if payload[0] == 0xFF:
        raise parse_error(payload)
    if payload[0] != 10:
        raise WireError(f"unsupported protocol version {payload[0]}")
    end = payload.index(b"\x00", 1)
    version = payload[1:end].decode("utf-8", "replace")
    pos = end + 1
    connection_id = int.from_bytes(payload[pos : pos + 4], "little")
    nonce = payload[pos + 4 : pos + 12]
    pos += 13
    capabilities = int.from_bytes(payload[pos : pos + 2], "little")
    pos += 2
    plugin = ""
    if len(payload) > pos:
        pos += 3  # charset, status flags
        capabilities |= int.from_bytes(payload[pos : pos + 2], "little") << 16
        pos += 2
        auth_data_length = payload[pos]
        pos += 11  # length byte + 10 reserved bytes
        if capabilities & CLIENT_SECURE_CONNECTION:
            part2 = max(13, auth_data_length - 8)
            nonce += payload[pos : pos + part2].rstrip(b"\x00")
            pos += part2
        if capabilities & CLIENT_PLUGIN_AUTH:
            plugin = payload[pos:].split(b"\x00", 1)[0].decode("ascii", "replace")
    return Greeting(version, connection_id, capabilities, nonce, plugin)


def parse_error(payload: bytes) -> ServerError:
    code = int.from_bytes(payload[1:3], "little")
    if payload[3:4] == b"#":
        return ServerError(code, payload[4:9].decode("ascii", "replace"), payload[9:].decode("utf-8", "replace"))
    return ServerError(code, "HY000", payload[3:].decode("utf-8", "replace"))


def token_packet(token: str) -> bytes:
    """authentication_openid_connect_client's payload: [0x01][lenenc length][token]."""
    raw = token.encode("ascii")
    return b"\x01" + lenenc_int(len(raw)) + raw


# -- the connection -------------------------------------------------------------------------------------------


class Connection:
    """One client connection. Use `await Connection.open(...)`, then `query()` and `quit()`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float) -> None:
        self.reader = reader
        self.writer = writer
        self.timeout = timeout
        self.seq = 0
        self.capabilities = 0
        self.greeting: Greeting | None = None

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        user: str,
        credential: Credential,
        tls: ssl.SSLContext | None,
        timeout: float = 10.0,
    ) -> Connection:
        """Connect, upgrade to TLS (if `tls` is given) and log in; raises WireError on any failure."""
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (OSError, TimeoutError) as exc:
            raise WireError(f"connect failed: {exc!r}") from exc
        connection = cls(reader, writer, timeout)
        try:
            await asyncio.wait_for(connection._login(user, credential, tls), timeout)
        except BaseException as exc:
            connection.abort()
            if isinstance(exc, TimeoutError):
                raise WireError("login timed out") from exc
            if isinstance(exc, (OSError, ssl.SSLError, asyncio.IncompleteReadError)):
                raise WireError(f"login failed: {exc!r}") from exc
            raise
        return connection

    # packets

    async def read_packet(self) -> bytes:
        header = await self.reader.readexactly(4)
        length = header[0] | header[1] << 8 | header[2] << 16
        self.seq = (header[3] + 1) & 0xFF
        payload = await self.reader.readexactly(length)
        if length == 0xFFFFFF:
            payload += await self.read_packet()
        return payload

    def write_packet(self, payload: bytes) -> None:
        if len(payload) >= 0xFFFFFF:
            raise WireError("packet too large for this client")
        self.writer.write(struct.pack("<I", len(payload))[:3] + bytes((self.seq,)) + payload)
        self.seq = (self.seq + 1) & 0xFF

    # login

    async def _login(self, user: str, credential: Credential, tls: ssl.SSLContext | None) -> None:
        greeting = parse_greeting(await self.read_packet())
        self.greeting = greeting
        self.capabilities = WANTED_CAPABILITIES & greeting.capabilities
        if tls is not None:
            if not greeting.capabilities & CLIENT_SSL:
                raise WireError("server does not offer TLS")
            self.write_packet(struct.pack("<IIB23x", self.capabilities, MAX_PACKET, UTF8MB4_GENERAL_CI))
            await self.writer.start_tls(tls)
        else:
            self.capabilities &= ~CLIENT_SSL
        plugin = greeting.plugin or PLUGIN_NATIVE
        auth_response = self._auth_response(plugin, credential, greeting.nonce)
        self.write_packet(self._handshake_response(user, plugin, auth_response))
        await self._authenticate(plugin, credential, tls is not None)

    def _handshake_response(self, user: str, plugin: str, auth_response: bytes) -> bytes:
        head = struct.pack("<IIB23x", self.capabilities, MAX_PACKET, UTF8MB4_GENERAL_CI) + user.encode() + b"\x00"
        if self.capabilities & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
            auth = lenenc_int(len(auth_response)) + auth_response
        elif len(auth_response) < 256:
            auth = bytes((len(auth_response),)) + auth_response
        else:
            raise WireError("auth response too long without PLUGIN_AUTH_LENENC_CLIENT_DATA")
        tail = plugin.encode() + b"\x00" if self.capabilities & CLIENT_PLUGIN_AUTH else b""
        return head + auth + tail

    @staticmethod
    def _auth_response(plugin: str, credential: Credential, nonce: bytes) -> bytes:
        if plugin == PLUGIN_OIDC_CLIENT:
            if not isinstance(credential, Token):
                raise WireError("server asked for a token, but this login has a password")
            return token_packet(credential.value)
        if isinstance(credential, Token):
            return b""  # a token user: the server switches to the token plugin after reading the name
        if plugin == PLUGIN_CACHING_SHA2:
            return scramble_caching_sha2(credential.value, nonce)
        if plugin == PLUGIN_NATIVE:
            return scramble_native(credential.value, nonce)
        if plugin == PLUGIN_CLEAR:
            return credential.value.encode() + b"\x00"
        raise WireError(f"unsupported auth plugin {plugin!r}")

    async def _authenticate(self, plugin: str, credential: Credential, secure: bool) -> None:
        for _round in range(8):
            payload = await self.read_packet()
            kind = payload[0] if payload else -1
            if kind == 0x00:
                return
            if kind == 0xFF:
                raise parse_error(payload)
            if kind == 0xFE:  # AuthSwitchRequest
                name, _, data = payload[1:].partition(b"\x00")
                plugin = name.decode("ascii", "replace")
                if plugin == PLUGIN_CLEAR and not secure:
                    raise WireError("refusing to send a cleartext password without TLS")
                if plugin == PLUGIN_OIDC_CLIENT and not secure:
                    raise WireError("refusing to send a token without TLS")
                nonce = data[:-1] if data.endswith(b"\x00") else data
                self.write_packet(self._auth_response(plugin, credential, nonce))
                continue
            if kind == 0x01 and plugin == PLUGIN_CACHING_SHA2:  # AuthMoreData
                if payload[1:] == b"\x03":  # fast auth succeeded; OK follows
                    continue
                if payload[1:] == b"\x04":  # full auth: cleartext password, only over TLS
                    if not secure or not isinstance(credential, Password):
                        raise WireError("server asked for full authentication without TLS")
                    self.write_packet(credential.value.encode() + b"\x00")
                    continue
            raise WireError(f"unexpected packet during login: {payload[:16]!r}")
        raise WireError("too many authentication rounds")

    # commands

    async def query(self, sql: str) -> list[tuple[bytes | None, ...]]:
        """Run one statement; returns its rows (empty for statements without a result set)."""
        self.seq = 0
        self.write_packet(COM_QUERY + sql.encode())
        return await asyncio.wait_for(self._read_result(), self.timeout)

    async def _read_result(self) -> list[tuple[bytes | None, ...]]:
        payload = await self.read_packet()
        if payload[0] == 0x00:
            return []
        if payload[0] == 0xFF:
            raise parse_error(payload)
        column_count, _ = read_lenenc_int(payload, 0)
        for _column in range(column_count):
            await self.read_packet()
        if not self.capabilities & CLIENT_DEPRECATE_EOF:
            await self.read_packet()  # EOF after the column definitions
        rows: list[tuple[bytes | None, ...]] = []
        while True:
            payload = await self.read_packet()
            if payload[0] == 0xFE and len(payload) < 0xFFFFFF:
                return rows  # EOF, or the OK that ends the set under DEPRECATE_EOF
            if payload[0] == 0xFF:
                raise parse_error(payload)
            values: list[bytes | None] = []
            pos = 0
            for _column in range(column_count):
                value, pos = read_lenenc_bytes(payload, pos)
                values.append(value)
            rows.append(tuple(values))

    async def quit(self) -> None:
        """COM_QUIT, then close (the server closes its side first, so TIME_WAIT stays with the server)."""
        try:
            self.seq = 0
            self.write_packet(COM_QUIT)
            await self.writer.drain()
            await asyncio.wait_for(self.reader.read(1), self.timeout)  # the server's EOF
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), self.timeout)
        except (OSError, ssl.SSLError, TimeoutError):
            self.abort()

    def abort(self) -> None:
        transport = self.writer.transport
        if not transport.is_closing():
            transport.abort()
