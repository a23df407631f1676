"""One authenticated upstream connection over asyncio: relay commands with their responses streamed to a sink,
COM_CHANGE_USER, COM_RESET_CONNECTION, COM_PING, closing. (Opening one: fe.upstream.connect.)

Every failure comes out as UpstreamError with a Reason; after one (or after an ERR that ends the session), the
connection is `broken` and must not be used again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from fe.upstream.commands import Com, Status
from fe.upstream.endpoint import READ_SIZE, UpstreamAccount, UpstreamServer
from fe.upstream.errors import Reason, ServerError, UpstreamError, UpstreamProtocolError, translate
from fe.upstream.login import authenticate
from fe.upstream.packets import Greeting
from fe.upstream.protocol import DEFAULT_CHARSET, ClientProtocol, Phase
from fe.upstream.response import Outcome, ResponseTracker
from fe.upstream.stream import Receiver, UpstreamStream

# Errors after which the upstream closes the session: such a connection is never used again.
FATAL_ERRORS = frozenset(
    {
        1053,  # ER_SERVER_SHUTDOWN
        1152,  # ER_ABORTING_CONNECTION
        1927,  # ER_CONNECTION_KILLED (MariaDB)
        4031,  # ER_CLIENT_INTERACTION_TIMEOUT (MySQL)
    }
)

Sink = Callable[[bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RelayResult:
    """How a relayed response ended. `status` is the session's status flags after it (SERVER_STATUS_IN_TRANS,
    ...); `error` the upstream's ERR when it ended with one (already forwarded to the sink)."""

    outcome: Outcome
    status: int
    warnings: int = 0
    error: ServerError | None = None
    infile_name: bytes = b""  # LOCAL_INFILE: the file the upstream asks the client for
    statement_id: int = 0  # COM_STMT_PREPARE: the upstream's statement id and counts
    param_count: int = 0
    column_count: int = 0

    @property
    def in_transaction(self) -> bool:
        return bool(self.status & Status.IN_TRANS)


async def _discard(_: bytes) -> None:
    return None


class UpstreamConnection:
    """An authenticated connection. Use it from one task at a time."""

    def __init__(
        self,
        server: UpstreamServer,
        account: UpstreamAccount,
        stream: UpstreamStream,
        protocol: ClientProtocol,
        loopback: bool,
    ) -> None:
        self.server = server
        self.account = account
        self._stream = stream
        self._protocol = protocol
        self.loopback = loopback
        self.broken = False
        self._in_sink = False
        assert protocol.greeting is not None
        self.greeting: Greeting = protocol.greeting

    # ---- state ----

    @property
    def connection_id(self) -> int:
        """The upstream's id for this session (what CONNECTION_ID() returns through the relay)."""
        return self.greeting.connection_id

    @property
    def capabilities(self) -> int:
        """The flags this connection was opened with (SSL included when on TLS); COM_CHANGE_USER keeps them."""
        return self._protocol.capabilities

    @property
    def tls(self) -> bool:
        return self._protocol.tls

    @property
    def status(self) -> int:
        return self._protocol.status

    @property
    def in_transaction(self) -> bool:
        return self._protocol.in_transaction

    @property
    def busy(self) -> bool:
        """A response (or a LOCAL INFILE file) is still in progress."""
        return self._protocol.busy

    @property
    def usable(self) -> bool:
        """Open, not broken, between commands: ready for the next one."""
        return not self.broken and self._protocol.phase is Phase.COMMAND and not self._protocol.busy

    def _check_usable(self) -> None:
        if self.broken or self._protocol.phase is not Phase.COMMAND:
            raise UpstreamError(Reason.CLOSED, f"the connection to upstream {self.server.address} is closed")

    @property
    def response_next_seq(self) -> int:
        """The sequence id that follows the last packet of the current (or last) response: where a client's LOCAL
        INFILE packets start, after a LOCAL_INFILE result."""
        response = self._protocol.response
        return response.next_seq if response is not None else 0

    # ---- relaying ----

    async def relay(self, payload: bytes, sink: Sink) -> RelayResult:
        """Send one client command (its whole payload, command byte first) and pass its response to `sink` as
        raw packet bytes, headers included, in the order received and unchanged; each `await sink(chunk)` is
        awaited before more is read (backpressure). Raises UpstreamError (the connection is then broken: if
        anything was already passed on, the client's connection is mid-response and must be closed too),
        UnsupportedCommand for commands that cannot be relayed (COM_CHANGE_USER, COM_QUIT, replication)."""
        wire = self._start(payload)
        return await self._run(wire, sink, self.server.read_timeout)

    def _start(self, payload: bytes) -> bytes:
        self._check_usable()
        try:
            return self._protocol.command(payload)
        except (UpstreamError, UpstreamProtocolError) as exc:  # it closed the session since the last command
            self.abort()
            raise translate(exc, f"upstream {self.server.address}") from exc

    # ---- relaying from the transports' callbacks (fe.server.fast_relay) ----

    @property
    def ready_for_direct(self) -> bool:
        """send_direct can go now: nothing arrived since the last response (no goodbye ERR, no close: when something
        did, the general path, relay(), reads and reports it) and the upstream takes what it is sent."""
        return self._stream.ready

    def send_direct(self, payload: bytes, receiver: Receiver) -> ResponseTracker:
        """Send one command; the bytes of its response then go to `receiver` as they arrive (b"": the upstream
        closed), for `direct_data`, until `end_direct`. Returns the response's tracker (its `done`, its
        `awaiting_infile`). Raises UpstreamError (the connection is then broken) and UnsupportedCommand as relay()
        does."""
        wire = self._start(payload)
        stream = self._stream
        stream.receiver = receiver
        stream.write(wire)
        response = self._protocol.response
        assert response is not None
        return response

    def direct_data(self, data: bytes) -> bytes:
        """Bytes the receiver got → the part of the response to forward now (see ClientProtocol.response_data);
        raises UpstreamError, the connection then broken."""
        try:
            return self._protocol.response_data(data)
        except (UpstreamError, UpstreamProtocolError) as exc:
            self.abort()
            raise translate(exc, f"upstream {self.server.address}", "mid-result") from exc

    def end_direct(self) -> None:
        """The response ended (or stopped for a LOCAL INFILE file): its bytes wait for read() again."""
        self._stream.receiver = None
        response = self._protocol.response
        if response is not None and response.error is not None:
            self._abort_after_fatal_error()

    def pause_reading(self) -> None:
        self._stream.pause_reading()

    def resume_reading(self) -> None:
        self._stream.resume_reading()

    async def infile_packet(self, payload: bytes, sink: Sink) -> RelayResult | None:
        """After a LOCAL_INFILE result: one packet of the client's file, passed on. The empty packet ends the file;
        the rest of the response then goes to `sink` and its result is returned."""
        self._check_usable()
        wire = self._protocol.infile_packet(payload)
        if payload:
            await self._guard(self._send(wire), None)
            return None
        return await self._run(wire, sink, self.server.read_timeout)

    async def _run(self, wire: bytes, sink: Sink, timeout: float | None) -> RelayResult:
        await self._guard(self._exchange(wire, sink, timeout), None)
        return self._result()

    def _abort_after_fatal_error(self) -> None:
        """After an ERR that ends the upstream's session, the connection is never used again."""
        response = self._protocol.response
        if response is not None and response.error is not None and response.error.code in FATAL_ERRORS:
            self.abort()

    def _result(self) -> RelayResult:
        response = self._protocol.response
        assert response is not None
        self._abort_after_fatal_error()
        return RelayResult(
            response.outcome or Outcome.NONE,
            response.status,
            response.warnings,
            response.error,
            response.infile_name,
            response.statement_id,
            response.param_count,
            response.column_count,
        )

    async def _send(self, wire: bytes) -> None:
        self._stream.write(wire)
        await self._stream.drain()

    async def _exchange(self, wire: bytes, sink: Sink, timeout: float | None) -> None:
        await self._send(wire)
        protocol = self._protocol
        response = protocol.response
        assert response is not None
        read = self._stream.read
        answered = False
        while not response.done and not response.awaiting_infile:
            if timeout is None:
                data = await read(READ_SIZE)
            else:
                async with asyncio.timeout(timeout):
                    data = await read(READ_SIZE)
            if not data:
                when = "mid-result" if answered else "instead of answering"
                raise UpstreamError(Reason.CLOSED, f"upstream {self.server.address} closed the connection {when}")
            answered = True
            chunk = protocol.response_data(data)
            if chunk:
                self._in_sink = True
                await sink(chunk)
                self._in_sink = False

    async def _guard(self, operation: Awaitable[None], timeout: float | None) -> None:
        """Run an exchange; any failure (cancellation included) breaks the connection, and comes out as an
        UpstreamError."""
        try:
            if timeout is None:
                await operation
            else:
                async with asyncio.timeout(timeout):
                    await operation
        except UpstreamError:
            self.abort()
            raise
        except BaseException as exc:
            self.abort()
            if self._in_sink:  # the sink's own failure (the client went away): passed on as it is
                self._in_sink = False
                raise
            raise translate(
                exc, f"upstream {self.server.address}", "mid-result" if self._protocol.busy else ""
            ) from exc

    # ---- session commands ----

    async def change_user(
        self,
        account: UpstreamAccount,
        attributes: Mapping[str, str] | None = None,
        *,
        database: str = "",
        charset: int = DEFAULT_CHARSET,
    ) -> None:
        """COM_CHANGE_USER: the upstream resets the session (variables, temporary tables, transactions, prepared
        statements) and logs `account` in with new connection attributes. Raises UpstreamError (REFUSED with the
        upstream's ERR when it refuses; the connection is then broken)."""
        self._check_usable()
        wire = self._protocol.change_user(
            account.user,
            account.password,
            loopback=self.loopback,
            database=database,
            attributes=attributes,
            charset=charset,
            server_public_key=self.server.server_public_key,
        )
        await self._guard(self._login(wire), self.server.command_timeout)
        self.account = account

    async def _login(self, first: bytes) -> None:
        await authenticate(self._stream, self._protocol, first, f"upstream {self.server.address}")

    async def reset(self) -> None:
        """COM_RESET_CONNECTION: the session's state is cleared, the login kept. A failure breaks the connection."""
        result = await self._simple(Com.RESET_CONNECTION)
        if result.error is not None:
            self.abort()
            raise UpstreamError(Reason.ERROR, f"COM_RESET_CONNECTION failed: {result.error}", result.error)

    async def ping(self) -> None:
        result = await self._simple(Com.PING)
        if result.error is not None:
            raise UpstreamError(Reason.ERROR, f"COM_PING failed: {result.error}", result.error)

    async def _simple(self, command: int) -> RelayResult:
        wire = self._start(bytes((command,)))
        await self._guard(self._exchange(wire, _discard, None), self.server.command_timeout)
        return self._result()

    # ---- closing ----

    def abort(self) -> None:
        """Drop the connection at once (after a failure, or a cancelled relay)."""
        self.broken = True
        self._stream.receiver = None
        self._protocol.close()
        self._stream.abort()

    async def close(self) -> None:
        """Say COM_QUIT when between commands, then close; never raises."""
        if self.broken:
            return
        quit_wire = self._protocol.quit() if self.usable else b""
        self.broken = True
        self._protocol.close()
        stream = self._stream
        with contextlib.suppress(Exception):
            if quit_wire:
                stream.write(quit_wire)
            stream.close()
            async with asyncio.timeout(2.0):
                await stream.wait_closed()
        if not stream.is_closing():
            stream.abort()
