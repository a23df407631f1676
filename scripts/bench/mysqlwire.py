"""A lean asyncio MySQL client for login storms: connect → TLS → login → query → quit, nothing more.

Off-the-shelf clients cost more CPU per connection than the server under test (a new TLS context per
connection, tens of milliseconds under OpenSSL 3), so the benchmark drives servers with this one. It speaks
just enough of the protocol for that:

- the greeting (HandshakeV10), SSLRequest and the TLS upgrade, HandshakeResponse41;
- auth plugins: caching_sha2_password (fast path and full auth over TLS), mysql_native_password,
  mysql_clear_password (TLS only) and authentication_openid_connect_client (the token packet);
- AuthSwitchRequest / AuthMoreData; COM_QUERY with text result sets (EOF or DEPRECATE_EOF); COM_QUIT.

It writes what libmysqlclient writes, in the same separate writes: the SSLRequest, then the ClientHello (back to
back, without waiting for an answer, so a server must cope with both arriving in one read); the TLS Finished,
then the HandshakeResponse41. Each step (login, query, quit) has a deadline; every failure raises WireError.
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
    """One context per process: no certificate checks (self-signed test certs), TLS 1.3 only, no session tickets,
    so every connection is a full handshake. The groups are OpenSSL's defaults, as real MySQL clients on OpenSSL 3
    (libmysqlclient, Connector/Python, PyMySQL) offer them: the ClientHello carries an X25519 key share."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.options |= ssl.OP_NO_TICKET
    return context


# -- password scrambles ---------------------------------------------------------------------------------------


def scramble_caching_sha2(password: str, nonce: bytes) -> bytes:
    """SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) ‖ nonce); empty for no password."""
    if not password:
        return b""
    stage1 = hashlib.sha256(password.encode()).digest()
    stage2 = hashlib.sha256(stage1).digest()
    mask = hashlib.sha256(stage2 + nonce).digest()
    return _xor(stage1, mask)


def scramble_native(password: str, nonce: bytes) -> bytes:
    """SHA1(pw) XOR SHA1(nonce ‖ SHA1(SHA1(pw))); empty for no password."""
    if not password:
        return b""
    stage1 = hashlib.sha1(password.encode()).digest()
    stage2 = hashlib.sha1(stage1).digest()
    mask = hashlib.sha1(nonce + stage2).digest()
    return _xor(stage1, mask)


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "little") ^ int.from_bytes(b, "little")).to_bytes(len(a), "little")


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


class Connection(asyncio.Protocol):
    """One client connection. Use `await Connection.open(...)`, then `query()` and `quit()`.

    A plain asyncio Protocol: TLS runs over memory BIOs here rather than in asyncio's SSL transport, replies are
    framed from what data_received delivered, and each operation (login, query, quit) has one timer that fails the
    waiting read, so no task or wait_for is made per packet.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.timeout = timeout
        self.seq = 0
        self.capabilities = 0
        self.greeting: Greeting | None = None
        self.transport: asyncio.Transport | None = None
        self._loop = loop
        self._data = b""  # received plaintext; bytes before _pos are parsed already
        self._pos = 0
        self._waiter: asyncio.Future[None] | None = None
        self._failure: WireError | None = None
        self._eof = False  # no more data will come (TLS close_notify or TCP EOF)
        self._peer_closed = False  # TCP EOF or connection lost
        self._timer: asyncio.TimerHandle | None = None
        self._connecting: asyncio.Task[object] | None = None
        self._connect_timed_out = False
        self._tls: ssl.SSLObject | None = None
        self._tls_in = ssl.MemoryBIO()
        self._tls_out = ssl.MemoryBIO()
        self._handshaking = False

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
        loop = asyncio.get_running_loop()
        connection = cls(loop, timeout)
        connection._arm("login")
        task = asyncio.current_task()
        try:
            connection._connecting = task
            try:
                await loop.create_connection(lambda: connection, host, port)
            except OSError as exc:
                raise WireError(f"connect failed: {exc!r}") from exc
            finally:
                connection._connecting = None
            await connection._login(user, credential, tls)
        except asyncio.CancelledError:
            connection.abort()
            if connection._connect_timed_out and task is not None and task.uncancel() == 0:
                raise WireError("connect timed out") from None
            raise
        except BaseException:
            connection.abort()
            raise
        finally:
            connection._disarm()
        return connection

    # asyncio.Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # No isinstance check: uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._tls is None:
            self._append(data)
        else:
            self._tls_in.write(data)
            self._pump_tls()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = self._peer_closed = True
        self._wake()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = self._peer_closed = True
        if exc is not None and self._failure is None:
            self._failure = WireError(f"connection lost: {exc!r}")
        self._wake()

    # reading

    def _append(self, data: bytes) -> None:
        if self._pos >= len(self._data):
            self._data = data
        else:
            self._data = self._data[self._pos :] + data
        self._pos = 0

    def _next_packet(self) -> bytes | None:
        data, pos = self._data, self._pos
        if len(data) - pos < 4:
            return None
        end = pos + 4 + (data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16)
        if len(data) < end:
            return None
        self.seq = (data[pos + 3] + 1) & 0xFF
        self._pos = end
        return data[pos + 4 : end]

    async def _read_packet(self) -> bytes:
        payload = self._next_packet()
        while payload is None:
            await self._wait()
            payload = self._next_packet()
        if len(payload) == 0xFFFFFF:
            payload += await self._read_packet()
        return payload

    async def _wait(self) -> None:
        """Until data_received, EOF, a failure or the timer; raises once the connection has failed or ended."""
        if self._failure is not None:
            raise self._failure
        if self._eof:
            raise WireError("the server closed the connection")
        waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, failure: WireError) -> None:
        if self._failure is None:
            self._failure = failure
        if self.transport is not None:
            self.transport.abort()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(failure)

    # deadlines

    def _arm(self, what: str) -> None:
        self._disarm()
        self._timer = self._loop.call_later(self.timeout, self._expire, what)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self, what: str) -> None:
        self._timer = None
        if self._connecting is not None:
            self._connect_timed_out = True
            self._connecting.cancel()
        self._fail(WireError(f"{what} timed out"))

    # TLS

    def _start_tls(self, context: ssl.SSLContext, first_packet: bytes) -> None:
        """Begin the handshake: `first_packet` (the SSLRequest), then the ClientHello, as two writes."""
        self._tls = context.wrap_bio(self._tls_in, self._tls_out)
        self._handshaking = True
        self._data, self._pos = b"", 0
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLError, OSError) as exc:
            raise WireError(f"TLS handshake failed: {exc!r}") from exc
        self._write_raw(first_packet)
        self._write_raw(self._tls_out.read())

    def _pump_tls(self) -> None:
        tls = self._tls
        assert tls is not None
        if self._handshaking:
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                self._flush_tls()  # normally nothing; a second ClientHello after a HelloRetryRequest
                return
            except (ssl.SSLError, OSError) as exc:
                self._fail(WireError(f"TLS handshake failed: {exc!r}"))
                return
            self._handshaking = False
            self._flush_tls()  # the client's Finished, on its own as libmysqlclient's SSL_connect() sends it
        chunks = []
        while True:
            try:
                chunk = tls.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self._eof = True
                break
            except (ssl.SSLError, OSError) as exc:
                self._fail(WireError(f"TLS error: {exc!r}"))
                return
            if not chunk:
                self._eof = True
                break
            chunks.append(chunk)
            if not self._tls_in.pending and not tls.pending():
                break  # spare the SSLWantReadError another read would raise
        if chunks:
            self._append(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _flush_tls(self) -> None:
        transport = self.transport
        if self._tls_out.pending and transport is not None and not transport.is_closing():
            transport.write(self._tls_out.read())

    # writing

    def _write_raw(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise self._failure or WireError("the connection is closed")
        transport.write(data)

    def _frame(self, payload: bytes) -> bytes:
        if len(payload) >= 0xFFFFFF:
            raise WireError("packet too large for this client")
        packet = struct.pack("<I", len(payload) | self.seq << 24) + payload
        self.seq = (self.seq + 1) & 0xFF
        return packet

    def _send(self, payload: bytes) -> None:
        """Frame one packet and write it (with anything TLS still has to send) in one transport.write."""
        packet = self._frame(payload)
        if self._tls is None:
            self._write_raw(packet)
            return
        try:
            self._tls.write(packet)
        except (ssl.SSLError, OSError) as exc:
            raise WireError(f"TLS error: {exc!r}") from exc
        self._write_raw(self._tls_out.read())

    # login

    async def _login(self, user: str, credential: Credential, tls: ssl.SSLContext | None) -> None:
        greeting = parse_greeting(await self._read_packet())
        self.greeting = greeting
        self.capabilities = WANTED_CAPABILITIES & greeting.capabilities
        if tls is not None:
            if not greeting.capabilities & CLIENT_SSL:
                raise WireError("server does not offer TLS")
            self._start_tls(tls, self._frame(struct.pack("<IIB23x", self.capabilities, MAX_PACKET, UTF8MB4_GENERAL_CI)))
            while self._handshaking:
                await self._wait()
        else:
            self.capabilities &= ~CLIENT_SSL
        secure = tls is not None
        plugin = greeting.plugin or PLUGIN_NATIVE
        auth_response = self._auth_response(plugin, credential, greeting.nonce, secure)
        self._send(self._handshake_response(user, plugin, auth_response))
        await self._authenticate(plugin, credential, secure)

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
    def _auth_response(plugin: str, credential: Credential, nonce: bytes, secure: bool) -> bytes:
        if plugin == PLUGIN_OIDC_CLIENT:
            if not isinstance(credential, Token):
                raise WireError("server asked for a token, but this login has a password")
            if not secure:
                raise WireError("refusing to send a token without TLS")
            return token_packet(credential.value)
        if isinstance(credential, Token):
            return b""  # a token user: the server switches to the token plugin after reading the name
        if plugin == PLUGIN_CACHING_SHA2:
            return scramble_caching_sha2(credential.value, nonce)
        if plugin == PLUGIN_NATIVE:
            return scramble_native(credential.value, nonce)
        if plugin == PLUGIN_CLEAR:
            if not secure:
                raise WireError("refusing to send a cleartext password without TLS")
            return credential.value.encode() + b"\x00"
        raise WireError(f"unsupported auth plugin {plugin!r}")

    async def _authenticate(self, plugin: str, credential: Credential, secure: bool) -> None:
        for _round in range(8):
            payload = await self._read_packet()
            kind = payload[0] if payload else -1
            if kind == 0x00:
                return
            if kind == 0xFF:
                raise parse_error(payload)
            if kind == 0xFE:  # AuthSwitchRequest
                name, _, data = payload[1:].partition(b"\x00")
                plugin = name.decode("ascii", "replace")
                nonce = data[:-1] if data.endswith(b"\x00") else data
                self._send(self._auth_response(plugin, credential, nonce, secure))
                continue
            if kind == 0x01 and plugin == PLUGIN_CACHING_SHA2:  # AuthMoreData
                if payload[1:] == b"\x03":  # fast auth succeeded; OK follows
                    continue
                if payload[1:] == b"\x04":  # full auth: cleartext password, only over TLS
                    if not secure or not isinstance(credential, Password):
                        raise WireError("server asked for full authentication without TLS")
                    self._send(credential.value.encode() + b"\x00")
                    continue
            raise WireError(f"unexpected packet during login: {payload[:16]!r}")
        raise WireError("too many authentication rounds")

    # commands

    async def query(self, sql: str) -> list[tuple[bytes | None, ...]]:
        """Run one statement; returns its rows (empty for statements without a result set)."""
        self.seq = 0
        self._send(COM_QUERY + sql.encode())
        self._arm("query")
        try:
            return await self._read_result()
        finally:
            self._disarm()

    async def _read_result(self) -> list[tuple[bytes | None, ...]]:
        payload = await self._read_packet()
        if payload[0] == 0x00:
            return []
        if payload[0] == 0xFF:
            raise parse_error(payload)
        column_count, _ = read_lenenc_int(payload, 0)
        for _column in range(column_count):
            await self._read_packet()
        if not self.capabilities & CLIENT_DEPRECATE_EOF:
            await self._read_packet()  # EOF after the column definitions
        rows: list[tuple[bytes | None, ...]] = []
        while True:
            payload = await self._read_packet()
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
        """COM_QUIT, wait for the server to close its side, then close ours: the server closes first, so TIME_WAIT
        stays with the server. No close_notify of our own (the server has gone by then). Never raises WireError:
        a connection that fails here is aborted."""
        try:
            self.seq = 0
            self._send(COM_QUIT)
            self._arm("quit")
            while not self._peer_closed:
                if self._failure is not None:
                    raise self._failure
                waiter = self._waiter = self._loop.create_future()
                try:
                    await waiter
                finally:
                    self._waiter = None
        except WireError:
            self.abort()
            return
        finally:
            self._disarm()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self._disarm()
        if self.transport is not None:
            self.transport.abort()
