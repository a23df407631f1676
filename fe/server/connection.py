"""One client connection from greeting to close: handshake, optional TLS, login, then the command phase."""

from __future__ import annotations

import asyncio
import logging
import os
import time

from fe.mysql import messages
from fe.mysql.codec import MalformedPacket, PacketTooLarge
from fe.mysql.constants import (
    PLUGIN_CACHING_SHA2,
    SERVER_CAPABILITIES,
    Capability,
    ColumnType,
    Command,
    ServerStatus,
)
from fe.mysql.errors import ErrorCode
from fe.mysql.framing import Packet
from fe.server.context import ServerContext
from fe.server.login import CHANGE_USER_NO_PLUGIN, Exchange, LoginAccount, LoginFailed
from fe.server.stream import ConnectionClosed, PacketStream
from fe.sql.results import OkResult, ResultSet, SqlError
from fe.sql.session import Session

log = logging.getLogger("fe.connection")
login_log = logging.getLogger("fe.login")

# TLS is always offered: a certificate is configured or generated at first start.
ADVERTISED_CAPABILITIES = SERVER_CAPABILITIES | Capability.SSL
# How long a reply may wait for the client to read (MySQL's net_write_timeout); never longer than the idle timeout.
WRITE_TIMEOUT_SECONDS = 60.0
TOO_LARGE = (ErrorCode.NET_PACKET_TOO_LARGE, "08S01", "Got a packet bigger than 'max_allowed_packet' bytes")
_NONCE_ALPHABET = bytes(range(0x21, 0x7F))
_TO_NONCE_ALPHABET = bytes(_NONCE_ALPHABET[b % len(_NONCE_ALPHABET)] for b in range(256))


def make_nonce() -> bytes:
    """20 printable bytes: libmysqlclient NUL-terminates the scramble, so it must hold no zero byte."""
    return os.urandom(20).translate(_TO_NONCE_ALPHABET)


class Connection:
    """Drives one PacketStream; `server` is the ServerContext (settings, authenticator, executor, TLS)."""

    def __init__(self, server: ServerContext, stream: PacketStream, connection_id: int) -> None:
        self.server = server
        self.settings = server.settings
        self.stream = stream
        self.connection_id = connection_id
        self.capabilities = 0
        self.session: Session | None = None
        self.client_host = stream.peer[0]

    # ---- lifecycle ----

    async def run(self) -> None:
        try:
            try:
                async with asyncio.timeout(self.settings.handshake_timeout_seconds):
                    await self._connect()
            except TimeoutError:
                log.info("connection %d from %s: handshake timeout", self.connection_id, self.client_host)
                self._fail_fatal(ErrorCode.HANDSHAKE, "08S01", "Bad handshake: timed out", seq=None)
                return
            if self.session is None:
                return
            self.stream.set_packet_limit(self.settings.max_packet_size)
            await self._command_loop()
        except (ConnectionClosed, ConnectionError):
            pass
        finally:
            self.stream.close()

    def _fail_fatal(self, code: int, sqlstate: str, message: str, seq: int | None) -> None:
        """Send an ERR (when we know the sequence id) and close."""
        if seq is not None:
            self.stream.send((messages.err(code, sqlstate, message),), seq)
        self.stream.close()

    # ---- connection phase ----

    async def _connect(self) -> None:
        nonce = make_nonce()
        status = ServerStatus.AUTOCOMMIT
        greeting = messages.greeting(
            self.connection_id, nonce, ADVERTISED_CAPABILITIES, self.server.server_version,
            PLUGIN_CACHING_SHA2, status,
        )  # fmt: skip
        self.stream.send((greeting,), 0)
        started = time.perf_counter()
        expected_seq = 1
        try:
            packet = self._expect_seq(await self.stream.read_packet(), expected_seq)
            hello = messages.parse_client_hello(packet.payload, ADVERTISED_CAPABILITIES)
            if isinstance(hello, messages.SSLRequest):
                await self.stream.start_tls(self.server.tls.context)
                expected_seq = packet.next_seq
                packet = self._expect_seq(await self.stream.read_packet(), expected_seq)
                hello = messages.parse_client_hello(packet.payload, ADVERTISED_CAPABILITIES)
                if isinstance(hello, messages.SSLRequest):
                    raise MalformedPacket("a second SSLRequest")
            elif hello.capabilities & Capability.SSL:
                raise MalformedPacket("client asked for TLS without an SSLRequest")
            next_seq = packet.next_seq
        except PacketTooLarge:
            self._fail_fatal(*TOO_LARGE, expected_seq + 1)
            return
        except MalformedPacket as exc:
            self._fail_fatal(ErrorCode.HANDSHAKE, "08S01", f"Bad handshake: {exc}", expected_seq + 1)
            return
        except _SequenceError as exc:
            self._fail_fatal(ErrorCode.NET_PACKETS_OUT_OF_ORDER, "08S01", "Got packets out of order", exc.reply_seq)
            return
        self.capabilities = hello.capabilities
        if self.settings.require_secure_transport and not self.stream.is_tls:
            self._fail_fatal(
                ErrorCode.SECURE_TRANSPORT_REQUIRED, "HY000",
                "Connections using insecure transport are prohibited while --require_secure_transport=ON.",
                next_seq,
            )  # fmt: skip
            self._log_login(hello.user, "", "failure", "insecure_transport", started)
            return
        exchange = Exchange(
            self.stream, next_seq, nonce, hello.user, self.client_host, hello.plugin, hello.auth_response,
            sent_credentials=bool(hello.auth_response),
        )  # fmt: skip
        account = await self._authenticate(exchange, started)
        if account is None:
            return
        self.session = self._new_session(hello.user, account, exchange.plugin)
        if hello.database:
            try:
                self.server.executor.use_database(self.session, hello.database)
            except SqlError as exc:
                self.stream.send((_sql_error(exc),), exchange.seq)
                self.session = None
                self.stream.close()
                return
        self.stream.send((messages.ok(status=self._status()),), exchange.seq)
        await self.stream.drain()

    @staticmethod
    def _expect_seq(packet: Packet, expected: int) -> Packet:
        if packet.seq != expected:
            raise _SequenceError(packet.next_seq)
        return packet

    async def _authenticate(self, exchange: Exchange, started: float) -> LoginAccount | None:
        try:
            account = await self.server.authenticator.authenticate(exchange)
        except LoginFailed as exc:
            self._log_login(exchange.user, exchange.plugin, "failure", exc.reason, started, exc.message)
            self._fail_fatal(*exc.as_err(), exchange.seq)
            return None
        except PacketTooLarge:
            self._log_login(exchange.user, exchange.plugin, "failure", "packet_too_large", started)
            self._fail_fatal(*TOO_LARGE, exchange.seq)
            return None
        except ConnectionClosed:
            self._log_login(exchange.user, exchange.plugin, "failure", "client_closed", started)
            raise
        except asyncio.CancelledError:  # the handshake timeout, or shutdown, in the middle of the exchange
            self._log_login(exchange.user, exchange.plugin, "failure", "timeout", started)
            raise
        except Exception:
            # A bug or a broken dependency (catalog, verifier): still a clean, logged refusal, never a session.
            log.exception("connection %d: login failed unexpectedly", self.connection_id)
            self._log_login(exchange.user, exchange.plugin, "failure", "internal_error", started)
            self._fail_fatal(*exchange.denied("internal_error").as_err(), exchange.seq)
            return None
        self._log_login(exchange.user, exchange.plugin, "success", "ok", started)
        return account

    def _log_login(self, user: str, plugin: str, outcome: str, reason: str, started: float, detail: str = "") -> None:
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.server.stats.login(outcome, reason)
        login_log.info(
            "login user=%s client=%s:%d plugin=%s tls=%s outcome=%s reason=%s ms=%.2f%s",
            _quote(user), self.client_host, self.stream.peer[1], plugin or "-",
            "yes" if self.stream.is_tls else "no", outcome, reason, elapsed_ms,
            f" detail={_quote(detail)}" if detail and outcome != "success" else "",
        )  # fmt: skip

    def _new_session(self, user: str, account: LoginAccount, plugin: str) -> Session:
        return Session(
            connection_id=self.connection_id,
            user=user,
            client_host=self.client_host,
            matched_name=account.name,
            matched_host=account.host,
            secure_transport=self.stream.is_tls,
            auth_plugin=plugin,
        )

    # ---- command phase ----

    def _status(self) -> int:
        return int(ServerStatus.AUTOCOMMIT) if self.session is None or self.session.autocommit else 0

    async def _command_loop(self) -> None:
        idle = self.settings.idle_timeout_seconds
        while True:
            try:
                packet = await self.stream.read_packet(idle)
            except TimeoutError:
                self._fail_fatal(4031, "HY000", "The client was disconnected by the server because of inactivity.", 0)
                return
            except PacketTooLarge:
                self._fail_fatal(*TOO_LARGE, 1)
                return
            if packet.seq != 0:
                self._fail_fatal(
                    ErrorCode.NET_PACKETS_OUT_OF_ORDER, "08S01", "Got packets out of order", packet.next_seq
                )
                return
            if not packet.payload:
                self._fail_fatal(ErrorCode.MALFORMED_PACKET, "HY000", "Malformed communication packet.", 1)
                return
            keep_going = await self._dispatch(packet)
            try:
                await self.stream.drain(min(idle, WRITE_TIMEOUT_SECONDS))
            except TimeoutError:
                # The client stopped reading our replies: nothing more can reach it, and a close would wait for
                # the unsent bytes forever. Drop the connection.
                log.info("connection %d from %s: client stopped reading; dropped", self.connection_id,
                         self.client_host)  # fmt: skip
                self.stream.abort()
                return
            if not keep_going:
                return

    async def _dispatch(self, packet: Packet) -> bool:
        session = self.session
        assert session is not None
        command, body, seq = packet.payload[0], packet.payload[1:], packet.next_seq
        if command == Command.QUERY:
            await self._query(body, seq)
        elif command == Command.PING:
            self.stream.send((messages.ok(status=self._status()),), seq)
        elif command == Command.QUIT:
            return False
        elif command == Command.INIT_DB:
            try:
                self.server.executor.use_database(session, body.decode("utf-8", "replace"))
                self.stream.send((messages.ok(status=self._status()),), seq)
            except SqlError as exc:
                self.stream.send((_sql_error(exc),), seq)
        elif command == Command.FIELD_LIST:
            self.stream.send((self._end_of_rows(),), seq)
        elif command == Command.RESET_CONNECTION:
            session.reset()
            self.stream.send((messages.ok(status=self._status()),), seq)
        elif command == Command.CHANGE_USER:
            return await self._change_user(packet)
        else:
            name = Command(command).name if command in Command._value2member_map_ else f"0x{command:02x}"
            self.stream.send((messages.err(ErrorCode.UNKNOWN_COM, "08S01", f"Unknown command {name}"),), seq)
        return True

    def _end_of_rows(self) -> bytes:
        if self.capabilities & Capability.DEPRECATE_EOF:
            return messages.ok(status=self._status(), header=0xFE)
        return messages.eof(self._status())

    async def _query(self, body: bytes, seq: int) -> None:
        session = self.session
        assert session is not None
        try:
            sql = body.decode("utf-8")
        except UnicodeDecodeError:
            self.stream.send((messages.err(1300, "HY000", "Invalid utf8mb4 character string in query"),), seq)
            return
        try:
            result = await self.server.executor.execute(session, sql)
        except SqlError as exc:
            self.stream.send((_sql_error(exc),), seq)
            return
        except Exception:
            log.exception("connection %d: statement failed unexpectedly: %.200s", self.connection_id, sql)
            self.stream.send((messages.err(1105, "HY000", "Unknown error executing the statement"),), seq)
            return
        warnings = len(session.warnings)
        if isinstance(result, OkResult):
            payload = messages.ok(
                result.affected_rows, result.last_insert_id, self._status(), result.warnings or warnings, result.info
            )
            self.stream.send((payload,), seq)
        elif isinstance(result, ResultSet):
            columns = [(c.name, c.type_code or ColumnType.VAR_STRING) for c in result.columns]
            payloads = messages.result_set(
                columns, result.rows, self._status(), bool(self.capabilities & Capability.DEPRECATE_EOF), warnings
            )
            self.stream.send(payloads, seq)

    async def _change_user(self, packet: Packet) -> bool:
        started = time.perf_counter()
        try:
            change = messages.parse_change_user(packet.payload, self.capabilities)
        except MalformedPacket as exc:
            self._fail_fatal(ErrorCode.MALFORMED_PACKET, "HY000", f"Malformed COM_CHANGE_USER: {exc}", 1)
            return False
        nonce = make_nonce()
        self.session = None
        # The client scrambled its reply with the greeting's nonce; a new identity gets a fresh nonce, so every
        # plugin restarts its exchange through an AuthSwitchRequest (no client plugin is taken as "in use").
        exchange = Exchange(
            self.stream, packet.next_seq, nonce, change.user, self.client_host, CHANGE_USER_NO_PLUGIN, b"",
            sent_credentials=bool(change.auth_response),
        )  # fmt: skip
        account = await self._authenticate(exchange, started)
        if account is None:
            return False
        session = self._new_session(change.user, account, exchange.plugin)
        if change.database:
            try:
                self.server.executor.use_database(session, change.database)
            except SqlError as exc:
                # The client takes the ERR as "the change failed, I am still who I was": a session that went on
                # as the new user would run its next statements with rights it does not know it has. Close.
                self._fail_fatal(exc.code, exc.sqlstate, exc.message, exchange.seq)
                return False
        self.session = session
        self.stream.send((messages.ok(status=self._status()),), exchange.seq)
        return True


def _sql_error(exc: SqlError) -> bytes:
    return messages.err(exc.code, exc.sqlstate, exc.message)


class _SequenceError(Exception):
    def __init__(self, reply_seq: int) -> None:
        super().__init__("packets out of order")
        self.reply_seq = reply_seq


def _quote(value: str) -> str:
    """A log field: bare if plain, else double-quoted with quotes, backslashes and every unprintable character
    escaped, so a client-chosen user name can never start a log line of its own or drive a terminal."""
    if value and all(ch.isalnum() or ch in "._-@/" for ch in value):
        return value
    escaped = "".join(_escape_char(ch) for ch in value)
    return f'"{escaped}"'


def _escape_char(ch: str) -> str:
    if ch in '"\\':
        return "\\" + ch
    if ch == "\n":
        return "\\n"
    if ch.isprintable():
        return ch
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
