"""One client connection from greeting to close: the driver around the sans-IO ServerProtocol (fe/mysql) and the
login's exchange (fe/auth/login.py). It moves bytes and awaits; what may be sent when, and with which sequence
id, is the protocol's business, and what to send during a login is the authentication method's."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import time
import traceback
from datetime import UTC, datetime

from fe.auth.login import Login, LoginAttempt, LoginDenied, LoginOutcome
from fe.auth.methods import CHANGE_USER_NO_PLUGIN, Accept
from fe.mysql import messages
from fe.mysql.constants import PLUGIN_CACHING_SHA2, SERVER_CAPABILITIES, Capability, ColumnType, Command, ServerStatus
from fe.mysql.errors import ErrorCode
from fe.mysql.protocol import (
    AuthReply,
    ChangeUserRequested,
    ClientProtocolError,
    CommandReceived,
    HandshakeReceived,
    QuitRequested,
    SslRequested,
)
from fe.server.context import ServerContext
from fe.server.fast_relay import FastRelay, ResumeInfile
from fe.server.gateway import session_attributes
from fe.server.limits import ConnectionLimits
from fe.server.relay import RelayBroken, UpstreamSession
from fe.server.stream import ConnectionClosed, PacketStream
from fe.sql.redact import describe_failure
from fe.sql.results import OkResult, ResultSet, SqlError
from fe.sql.routing import is_fe_query
from fe.sql.session import Session
from fe.upstream.errors import UpstreamError
from fe.util.deadline import Deadline

log = logging.getLogger("fe.connection")
login_log = logging.getLogger("fe.login")

# TLS is always offered: a certificate is configured or generated at first start.
ADVERTISED_CAPABILITIES = SERVER_CAPABILITIES | Capability.SSL
# How long a reply may wait for the client to read (MySQL's net_write_timeout); never longer than the idle timeout.
WRITE_TIMEOUT_SECONDS = 60.0
# Enum members read on every login and command, as plain ints: in Python 3.11 each `Enum.X` costs a call of the
# enum metaclass's __getattr__ hook (about a thousand machine instructions).
_AUTOCOMMIT = int(ServerStatus.AUTOCOMMIT)
_DEPRECATE_EOF = int(Capability.DEPRECATE_EOF)
_COM_QUERY = int(Command.QUERY)
_COM_PING = int(Command.PING)
_COM_INIT_DB = int(Command.INIT_DB)
_COM_FIELD_LIST = int(Command.FIELD_LIST)
_COM_RESET_CONNECTION = int(Command.RESET_CONNECTION)
_NONCE_ALPHABET = bytes(range(0x21, 0x7F))
# A log field that needs no quoting: letters and digits (\w: what str.isalnum() accepts, and "_") and "._-@/".
_PLAIN = re.compile(r"[\w.\-@/]+")
_TO_NONCE_ALPHABET = bytes(_NONCE_ALPHABET[b % len(_NONCE_ALPHABET)] for b in range(256))


def make_nonce() -> bytes:
    """20 printable bytes: libmysqlclient NUL-terminates the scramble, so it must hold no zero byte."""
    return os.urandom(20).translate(_TO_NONCE_ALPHABET)


class Connection:
    """Drives one PacketStream; `server` is the ServerContext (settings, authenticator, executor, TLS)."""

    # One per connection, read and written on every packet: slots, no instance dict.
    __slots__ = (
        "client_host",
        "connection_id",
        "fast_relay",
        "gateway",
        "limits",
        "protocol",
        "server",
        "session",
        "settings",
        "stream",
        "upstream",
    )

    def __init__(
        self, server: ServerContext, stream: PacketStream, connection_id: int, limits: ConnectionLimits | None = None
    ) -> None:
        self.server = server
        self.limits = limits
        self.settings = server.settings
        self.stream = stream
        self.protocol = stream.protocol
        self.connection_id = connection_id
        self.session: Session | None = None
        self.client_host = stream.peer[0]
        self.gateway = server.gateway
        self.upstream: UpstreamSession | None = None  # the session's leg to the upstream database (gateway)
        self.fast_relay: FastRelay | None = None  # its common case, run in the transports' callbacks

    # ---- lifecycle ----

    async def run(self) -> None:
        try:
            try:
                with Deadline(self.settings.handshake_timeout_seconds):
                    await self._connect()
            except TimeoutError:
                log.info("connection %d from %s: handshake timeout", self.connection_id, self.client_host)
                return
            if self.session is None:
                return
            await self._command_loop()
        except (ConnectionClosed, ConnectionError):
            if self.stream.proxy_error:
                self._refuse_proxy(self.stream.proxy_error)
        finally:
            self.protocol.close()
            self.stream.close()
            if self.upstream is not None:  # (no coroutine to run for the sessions without one)
                await self._end_upstream()

    def _end(self, wire: bytes) -> None:
        """Send a closing ERR the protocol framed, and close."""
        self.stream.write(wire)
        self.stream.close()

    # ---- connection phase ----

    async def _connect(self) -> None:
        proxied = self.stream.proxy is not None and self.stream.proxy.expect_header
        if proxied and not await self._read_proxy_header():
            return
        nonce = make_nonce()
        self.stream.write(
            self.protocol.greeting(self.connection_id, nonce, self._server_version(), PLUGIN_CACHING_SHA2, _AUTOCOMMIT)
        )
        started = time.perf_counter()
        try:
            event = await self.stream.next_event()
            if isinstance(event, SslRequested):
                await self.stream.start_tls(self.server.tls.context)
                self.protocol.tls_established()
                event = await self.stream.next_event()
        except ClientProtocolError as exc:
            self._end(self.protocol.fail(exc))
            return
        assert isinstance(event, HandshakeReceived)
        hello = event.response
        if self.settings.require_secure_transport and not self.stream.is_tls:
            self._end(
                self.protocol.login_denied(
                    ErrorCode.SECURE_TRANSPORT_REQUIRED,
                    "Connections using insecure transport are prohibited while --require_secure_transport=ON.",
                )
            )
            self._log_login(hello.user, "", "failure", "insecure_transport", started)
            return
        attempt = LoginAttempt(
            hello.user, self.client_host, hello.plugin, hello.auth_response, nonce, secure=self.stream.is_tls
        )
        outcome = await self._login(attempt, started)
        if outcome is not None:
            self.session = await self._open_session(outcome, hello.database, hello.charset, started)
            await self.stream.drain()
            self._start_fast_relay()

    async def _read_proxy_header(self) -> bool:
        """A load balancer's connection: the real client's address comes first, in a PROXY protocol header."""
        try:
            await self.stream.read_proxy_header()
        except ConnectionClosed as exc:
            self._refuse_proxy(self.stream.proxy_error or str(exc))
            self.stream.close()
            return False
        self.client_host = self.stream.peer[0]
        if self.limits is not None:
            evicted = self.limits.readdress(self.stream, self.client_host)
            if isinstance(evicted, PacketStream):
                evicted.abort()
        return True

    def _refuse_proxy(self, why: str) -> None:
        peer = self.stream.socket_peer
        log.warning("connection %d from %s:%d refused: PROXY protocol: %s", self.connection_id, peer[0], peer[1], why)
        if self.server.metrics is not None:
            self.server.metrics.connection_refused("proxy_protocol")

    async def _login(self, attempt: LoginAttempt, started: float) -> LoginOutcome | None:
        """Run the login's exchange to its end: the outcome, or None once the refusal was sent."""
        login: Login | None = None
        try:
            login = await self.server.authenticator.begin(attempt)
            accept = login.accepted
            if accept is None:
                exchange = login.exchange
                assert exchange is not None
                step = await exchange.asend(None)  # type: ignore[arg-type]
                while not isinstance(step, Accept):
                    self.stream.write(self.protocol.auth_packet(step))
                    event = await self.stream.next_event()
                    assert isinstance(event, AuthReply)
                    step = await exchange.asend(event.payload)
                accept = step
            outcome = await self.server.authenticator.finish(login, accept)
        except LoginDenied as exc:
            if login is not None:
                login.refused(exc)
            self._log_login(attempt.user, attempt.plugin, "failure", exc.reason, started, exc.log_detail or exc.message)
            full_detail = self.server.authenticator.services.full_error_detail
            self._end(self.protocol.login_denied(exc.code, exc.client_message(attempt, full_detail)))
            return None
        except ClientProtocolError as exc:
            self._log_login(attempt.user, attempt.plugin, "failure", exc.reason, started)
            self._end(self.protocol.fail(exc))
            return None
        except ConnectionClosed:
            self._log_login(attempt.user, attempt.plugin, "failure", "client_closed", started)
            raise
        except asyncio.CancelledError:  # the handshake timeout, or shutdown, in the middle of the exchange
            self._log_login(attempt.user, attempt.plugin, "failure", "timeout", started)
            raise
        except Exception as exc:
            # A bug or a broken dependency (catalog, verifier): still a clean, logged refusal, never a session.
            log.error("connection %d: login failed unexpectedly: %s", self.connection_id, describe_exception(exc))
            self._log_login(attempt.user, attempt.plugin, "failure", "internal_error", started)
            denied = LoginDenied("internal_error")
            self._end(self.protocol.login_denied(denied.code, denied.client_message(attempt)))
            return None
        finally:
            if login is not None and login.exchange is not None:
                await login.exchange.aclose()
        if self.limits is not None and not self.limits.log_in(self.stream, outcome.account.is_user_admin):
            self._log_login(attempt.user, attempt.plugin, "failure", "too_many_connections", started)
            self._end(self.protocol.login_denied(ErrorCode.CON_COUNT, "Too many connections"))
            return None
        return outcome

    def _server_version(self) -> str:
        """The upstream's version through the gateway (clients pick features by it), once known; else fe's."""
        if self.gateway is not None and self.gateway.server_version:
            return self.gateway.server_version
        return self.server.server_version

    async def _open_session(self, outcome: LoginOutcome, database: str, charset: int, started: float) -> Session | None:
        """The logged-in session, its OK sent (with the gateway: once its upstream connection is open); or None,
        the refusal sent and the connection closed, when its database fails or the upstream does."""
        for payload in outcome.after_ok:
            self.stream.write(self.protocol.auth_packet(payload))
        user, plugin = outcome.user, outcome.method
        if self.gateway is not None:
            failure = await self._open_upstream(outcome, database, charset)
            if failure is not None:
                reason, detail = failure
                self._log_login(user, plugin, "failure", reason, started, detail)
                # The upstream's own words (its account names and hosts) stay in the log.
                told = "the upstream database is unavailable" if reason.startswith("upstream") else detail
                message = f"Access denied for user '{user}'@'{self.client_host}': {told} ({reason})"
                self._end(self.protocol.login_denied(ErrorCode.ACCESS_DENIED, message))
                return None
            database = ""  # the upstream's: it was sent with the upstream login
        session = Session(
            connection_id=self.connection_id,
            user=outcome.user,
            client_host=self.client_host,
            matched_name=outcome.account.name,
            matched_host=outcome.account.host,
            login=outcome,
            groups=outcome.groups,
            security_integration=outcome.integration,
        )
        if database:
            try:
                self.server.executor.use_database(session, database)
            except SqlError as exc:
                # For COM_CHANGE_USER the client takes the ERR as "the change failed, I am still who I was": a
                # session that went on as the new user would run its next statements with rights it does not know
                # it has. Close, on connect and on change alike.
                self._log_login(user, plugin, "failure", "unknown_database", started, exc.message)
                self._end(self.protocol.login_denied(exc.code, exc.message, exc.sqlstate))
                return None
        self._log_login(user, plugin, "success", "ok", started)
        self.stream.write(self.protocol.login_ok(_status(session)))
        return session

    async def _open_upstream(self, outcome: LoginOutcome, database: str, charset: int) -> tuple[str, str] | None:
        """Connect the session to the upstream as the account its roles map to; (reason, detail) if it cannot."""
        gateway = self.gateway
        assert gateway is not None
        roles = outcome.roles
        upstream_account = gateway.account_for(roles)
        if upstream_account is None:
            return "no_upstream_account", "no upstream account for this session (no mapped role and no upstream_user)"
        attributes = session_attributes(user=outcome.user, client=self.client_host, roles=roles, claims=outcome.claims)
        try:
            connection = await gateway.open(
                upstream_account, attributes, client_capabilities=self.protocol.capabilities, database=database,
                charset=charset,
            )  # fmt: skip
        except UpstreamError as exc:
            return exc.reason.value, f"the upstream database: {exc.message}"
        self.upstream = UpstreamSession(gateway, connection, self.stream, self.protocol)
        return None

    def _start_fast_relay(self) -> None:
        session, upstream = self.session, self.upstream
        if session is None or upstream is None:
            return
        exp = self._token_exp(session)
        expires_at = math.inf if exp is None else exp + self.settings.jwt_leeway_seconds
        self.fast_relay = FastRelay(
            self.stream, self.protocol, upstream, expires_at=expires_at,
            read_timeout=upstream.connection.server.read_timeout, broken=self._upstream_broke,
        )  # fmt: skip

    def _upstream_broke(self, why: str, mid_response: bool) -> None:
        """The session's upstream leg failed (in its task, or in the fast relay's callbacks): the session ends."""
        log.warning("connection %d: the upstream session broke: %s", self.connection_id, why)
        if mid_response:
            self.stream.abort()  # the client holds half a response: nothing more can follow it
        else:
            self._end(self.protocol.close_with(ErrorCode.UNKNOWN_ERROR, f"Lost the upstream database: {why}"))
        self.stream.end_session("the upstream session broke")

    async def _end_upstream(self) -> None:
        fast_relay, self.fast_relay = self.fast_relay, None
        if fast_relay is not None:
            fast_relay.detach()
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            await upstream.end()

    def _log_login(self, user: str, plugin: str, outcome: str, reason: str, started: float, detail: str = "") -> None:
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.server.stats.login(outcome, reason)
        if self.server.metrics is not None:
            self.server.metrics.login(plugin or "none", outcome, reason, elapsed_ms / 1000)
        login_log.info(
            "login user=%s client=%s:%d plugin=%s tls=%s outcome=%s reason=%s ms=%.2f%s%s",
            _quote(user), self.client_host, self.stream.peer[1], plugin or "-",
            "yes" if self.stream.is_tls else "no", outcome, reason, elapsed_ms,
            f" via={self.stream.socket_peer[0]}" if self.stream.proxy_header is not None else "",
            f" detail={_quote(detail)}" if detail and outcome != "success" else "",
        )  # fmt: skip

    # ---- command phase ----

    async def _command_loop(self) -> None:
        idle = self.settings.idle_timeout_seconds
        while True:
            try:
                event = await self.stream.next_event(idle)
            except TimeoutError:
                self._end(
                    self.protocol.close_with(
                        ErrorCode.CLIENT_INTERACTION_TIMEOUT,
                        "The client was disconnected by the server because of inactivity.",
                    )
                )
                return
            except ClientProtocolError as exc:
                self._end(self.protocol.fail(exc))
                return
            if isinstance(event, QuitRequested):
                return
            if isinstance(event, ChangeUserRequested):
                keep_going = await self._change_user(event)
            elif isinstance(event, ResumeInfile):
                keep_going = await self._resume_infile()
            else:
                assert isinstance(event, CommandReceived)
                if self._token_expired():
                    return
                keep_going = await self._dispatch(event)
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

    def _token_expired(self) -> bool:
        """token_session_policy = expire: a session whose token expired ends here, with an ERR that says so."""
        session = self.session
        if session is None:
            return False
        exp = self._token_exp(session)
        if exp is None or time.time() < exp + self.settings.jwt_leeway_seconds:
            return False
        expired_at = datetime.fromtimestamp(exp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        login_log.info(
            "session user=%s client=%s:%d ended: its token expired at %s (token_session_policy=expire)",
            _quote(session.user), self.client_host, self.stream.peer[1], expired_at,
        )  # fmt: skip
        message = (
            f"Access denied for user '{session.user}'@'{self.client_host}': the token this session logged in with "
            f"expired at {expired_at}; log in again"
        )
        self._end(self.protocol.close_with(ErrorCode.ACCESS_DENIED, message))
        return True

    def _token_exp(self, session: Session) -> float | None:
        """When the session's token expires, if token_session_policy = expire ends the session then."""
        if self.settings.token_session_policy != "expire" or session.login is None:
            return None
        claims = session.login.claims
        exp = claims.get("exp") if claims else None
        return exp if isinstance(exp, int | float) else None

    def _reply(self, *payloads: bytes) -> None:
        self.stream.write(self.protocol.reply(payloads))

    def _ok(self) -> None:
        self._reply(messages.ok(status=_status(self.session)))

    async def _dispatch(self, event: CommandReceived) -> bool:
        session = self.session
        assert session is not None
        command, body = event.command, event.body
        if self.upstream is not None:
            return await self._relay_or_answer(session, self.upstream, event)
        if command == _COM_QUERY:
            await self._query(session, body)
        elif command == _COM_PING:
            self._ok()
        elif command == _COM_INIT_DB:
            try:
                self.server.executor.use_database(session, body.decode("utf-8", "replace"))
                self._ok()
            except SqlError as exc:
                self._sql_error(exc)
        elif command == _COM_FIELD_LIST:
            self._reply(self._end_of_rows())
        elif command == _COM_RESET_CONNECTION:
            session.reset()
            self._ok()
        else:
            name = Command(command).name if command in Command._value2member_map_ else f"0x{command:02x}"
            self.stream.write(self.protocol.error(ErrorCode.UNKNOWN_COM, f"Unknown command {name}"))
        return True

    async def _relay_or_answer(self, session: Session, upstream: UpstreamSession, event: CommandReceived) -> bool:
        """Through the gateway: fe's own statements stay with fe; every other command goes to the database."""
        command, body = event.command, event.body
        if command == _COM_QUERY and is_fe_query(body):
            await self._query(session, body)
            return True
        try:
            await upstream.relay(bytes((command,)) + body)
        except RelayBroken as exc:
            self._upstream_broke(str(exc), upstream.mid_response)
            return False
        if command == _COM_RESET_CONNECTION:
            session.reset()
        return True

    async def _resume_infile(self) -> bool:
        """The fast relay met a LOCAL INFILE request: the file and the rest of the response go the general way."""
        upstream = self.upstream
        assert upstream is not None
        try:
            await upstream.resume_infile()
        except RelayBroken as exc:
            self._upstream_broke(str(exc), upstream.mid_response)
            return False
        return True

    def _end_of_rows(self) -> bytes:
        if self.protocol.capabilities & _DEPRECATE_EOF:
            return messages.ok(status=_status(self.session), header=0xFE)
        return messages.eof(_status(self.session))

    def _sql_error(self, exc: SqlError) -> None:
        self.stream.write(self.protocol.error(exc.code, exc.message, exc.sqlstate))

    async def _query(self, session: Session, body: bytes) -> None:
        try:
            sql = body.decode("utf-8")
        except UnicodeDecodeError:
            self.stream.write(
                self.protocol.error(ErrorCode.INVALID_CHARACTER_STRING, "Invalid utf8mb4 character string in query")
            )
            return
        try:
            result = await self.server.executor.execute(session, sql)
        except SqlError as exc:
            self._sql_error(exc)
            return
        except Exception as exc:
            log.error(
                "connection %d: statement failed unexpectedly: %s", self.connection_id, describe_failure(exc, sql)
            )
            self.stream.write(self.protocol.error(ErrorCode.UNKNOWN_ERROR, "Unknown error executing the statement"))
            return
        warnings = len(session.warnings)
        if isinstance(result, OkResult):
            status = _status(session)
            self._reply(
                messages.ok(
                    result.affected_rows, result.last_insert_id, status, result.warnings or warnings, result.info
                )
            )
        elif isinstance(result, ResultSet):
            columns = [(c.name, c.type_code or ColumnType.VAR_STRING) for c in result.columns]
            deprecate_eof = bool(self.protocol.capabilities & _DEPRECATE_EOF)
            self._reply(*messages.result_set(columns, result.rows, _status(session), deprecate_eof, warnings))

    async def _change_user(self, event: ChangeUserRequested) -> bool:
        change = event.change
        started = time.perf_counter()
        self.session = None
        if self.fast_relay is not None:  # the login's packets are the task's
            self.fast_relay.detach()
            self.fast_relay = None
        # The client scrambled its proof with the greeting's nonce; a new identity gets a fresh nonce, so the
        # exchange restarts through an AuthSwitchRequest (no client plugin is taken as "in use").
        attempt = LoginAttempt(
            change.user, self.client_host, CHANGE_USER_NO_PLUGIN, change.auth_response, make_nonce(),
            secure=self.stream.is_tls,
        )  # fmt: skip
        try:
            with Deadline(self.settings.handshake_timeout_seconds):
                outcome = await self._login(attempt, started)
        except TimeoutError:
            log.info("connection %d from %s: COM_CHANGE_USER timed out", self.connection_id, self.client_host)
            return False
        if outcome is None:
            return False
        if self.upstream is not None:
            await self._end_upstream()  # the old identity's upstream connection goes back to the pool
        self.session = await self._open_session(outcome, change.database, change.charset, started)
        self._start_fast_relay()
        return self.session is not None


def _status(session: Session | None) -> int:
    return _AUTOCOMMIT if session is None or session.autocommit else 0


def describe_exception(exc: BaseException) -> str:
    """An unexpected exception for the log: its type and where it was raised, frame by frame, without its message
    or any value — a message may quote a statement or a credential."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = " <- ".join(f"{frame.name} ({os.path.basename(frame.filename)}:{frame.lineno})" for frame in frames[::-1])
    return f"{type(exc).__qualname__} at {where or 'unknown'}"


def _quote(value: str) -> str:
    """A log field: bare if plain, else double-quoted with quotes, backslashes and every unprintable character
    escaped, so a client-chosen user name can never start a log line of its own or drive a terminal."""
    if _PLAIN.fullmatch(value):
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
