"""The gateway's common case, run in the transports' callbacks: a relayable command goes to the upstream as soon as
it is decrypted, and the bytes of its response go to the client as they arrive, without waking the session's task
twice per command (on 2 cores that halves what fe costs a short query; see docs/gateway.md).

Everything else is handed to the session's task, which takes the general path (fe/server/relay.py) exactly as
without this: fe's own statements, COM_CHANGE_USER, COM_QUIT, COM_RESET_CONNECTION, commands of more than
_MAX_PAYLOAD bytes, any command once the session's token has expired (token_session_policy = expire), a command
after the upstream said something unasked (a goodbye ERR, a close), a client that broke the protocol, and a LOCAL
INFILE request met mid-response (ResumeInfile).

The protocol state stays in the sans-IO objects, both legs' (ServerProtocol, the upstream ClientProtocol), so the
task finds them as it would have left them."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

from fe.mysql.protocol import NEED_DATA, ClientProtocolError, CommandReceived, ServerProtocol
from fe.server.relay import UpstreamSession
from fe.server.stream import PacketStream
from fe.sql.routing import is_fe_query
from fe.upstream.commands import Com
from fe.upstream.errors import UpstreamError
from fe.upstream.response import ResponseTracker

log = logging.getLogger("fe.gateway")

_COM_QUERY = int(Com.QUERY)
_COMMANDS = frozenset(
    int(command)
    for command in (
        Com.QUERY,
        Com.INIT_DB,
        Com.FIELD_LIST,
        Com.STATISTICS,
        Com.PING,
        Com.STMT_PREPARE,
        Com.STMT_EXECUTE,
        Com.STMT_SEND_LONG_DATA,
        Com.STMT_CLOSE,
        Com.STMT_RESET,
        Com.STMT_FETCH,
    )
)
# Larger commands take the task's path, which waits for the upstream to take them in before reading more.
_MAX_PAYLOAD = 1 << 20
WRITE_TIMEOUT_SECONDS = 60.0

# Why the session cannot go on, and whether the client holds part of a response (then it is dropped, not told).
Broken = Callable[[str, bool], None]


class ResumeInfile:
    """Handed to the task: the upstream asked for a LOCAL INFILE file mid-response; the task relays the file and
    the rest of the response (UpstreamSession.resume_infile)."""


class FastRelay:
    def __init__(
        self,
        stream: PacketStream,
        protocol: ServerProtocol,
        upstream: UpstreamSession,
        *,
        expires_at: float,
        read_timeout: float | None,
        broken: Broken,
    ) -> None:
        self._stream = stream
        self._protocol = protocol
        self._upstream = upstream
        self._connection = upstream.connection
        self._expires_at = expires_at  # wall-clock end of the session's token, or inf
        self._read_timeout = read_timeout or 0.0
        self._broken = broken
        self._loop = asyncio.get_running_loop()
        self._read_timer: asyncio.TimerHandle | None = None  # the upstream's silence within a response
        self._last_data = 0.0  # loop time the upstream last sent something (or the command went)
        self._write_timer: asyncio.TimerHandle | None = None  # a client that has not read for that long is dropped
        self._upstream_paused = False  # the upstream's read waits for the client to read
        self._detached = False
        self._response: ResponseTracker | None = None  # the command's, while busy
        self._receiver = self._on_upstream_data
        self.busy = False
        stream.tap = self

    def detach(self) -> None:
        """The session ends or changes user: commands are the task's again; the upstream connection is released
        by the caller (a response still running leaves it broken, hence closed)."""
        self._detached = True
        if self._stream.tap is self:
            self._stream.tap = None
        self._cancel_read_timer()
        self._cancel_write_timer()
        if self.busy:
            self._connection.abort()

    # ---- commands (the stream calls this while the task waits) ----

    def take_commands(self) -> bool:
        protocol = self._protocol
        while not self.busy and not self._detached:
            try:
                event = protocol.next_event()
            except ClientProtocolError as exc:
                self._stream.hand_over(exc)
                return True
            if event is NEED_DATA:
                return False
            if type(event) is not CommandReceived or not self._start(event):
                self._stream.hand_over(event)
                return True
        return False

    def _start(self, event: CommandReceived) -> bool:
        command, body = event.command, event.body
        if command not in _COMMANDS or len(body) >= _MAX_PAYLOAD:
            return False
        if command == _COM_QUERY and is_fe_query(body):
            return False
        if self._expires_at != math.inf and time.time() >= self._expires_at:
            return False
        connection = self._connection
        if not connection.ready_for_direct:
            # Something came unasked (the general path reports it), or the upstream is not taking what it was
            # sent (the general path waits for it to drain before it reads the client's next command).
            return False
        stream = self._stream
        stream.active_at = self._last_data = self._loop.time()
        self._upstream.mid_response = False
        self.busy = True
        try:
            response = self._response = connection.send_direct(bytes((command,)) + body, self._receiver)
        except UpstreamError as exc:
            self._fail(exc.message)
            return True
        if stream.write_paused:  # the client has not read the last answer yet
            self.client_stalled(True)
        if response.done:  # a command without a response (COM_STMT_CLOSE, SEND_LONG_DATA)
            self._finish()
        elif self._read_timeout:
            self._read_timer = self._loop.call_later(self._read_timeout, self._upstream_timed_out)
        return True

    # ---- the response ----

    def _on_upstream_data(self, data: bytes) -> None:
        if self._detached:
            return
        connection = self._connection
        if not data:
            when = "mid-result" if self._upstream.mid_response else "instead of answering"
            self._fail(f"upstream {connection.server.address} closed the connection {when}")
            return
        if self._read_timeout:
            self._last_data = self._loop.time()
        try:
            chunk = connection.direct_data(data)
        except UpstreamError as exc:
            self._fail(exc.message)
            return
        if chunk:
            self._upstream.mid_response = True
            if not self._stream.send_now(chunk):
                self._fail("the client went away mid-result")
                return
        response = self._response
        assert response is not None
        if response.done:
            self._finish()
            stream = self._stream
            if self._protocol.buffered or stream.closing_when_idle:  # the client sent more meanwhile
                stream.poke()
        elif response.awaiting_infile:
            # The task takes it from here; the file's packets reach it through take_commands (InfileData).
            self._end_response()
            connection.end_direct()
            self._stream.hand_over(ResumeInfile())
            self._stream.poke()

    def _finish(self) -> None:
        self._end_response()
        self._connection.end_direct()
        self._protocol.relayed(0)

    def _end_response(self) -> None:
        self._cancel_read_timer()
        if self._upstream_paused:  # the next command's answer may be read (and paused again if need be)
            self._upstream_paused = False
            self._connection.resume_reading()
        self._stream.active_at = self._loop.time()  # the idle timeout counts from the end of the answer
        self.busy = False

    def _fail(self, why: str) -> None:
        """The session cannot go on; detach() closes the upstream connection if a response was under way."""
        mid_response = self._upstream.mid_response
        self.detach()
        self._broken(why, mid_response)

    def _upstream_timed_out(self) -> None:
        """`upstream_read_timeout_seconds` is the longest silence within a response, as on the general path."""
        self._read_timer = None
        if self._detached or not self.busy:
            return
        silent = self._loop.time() - self._last_data
        if self._upstream_paused or silent < self._read_timeout:
            # Still coming, or held back by a client that does not read (the write timeout's business).
            left = self._read_timeout - silent if not self._upstream_paused else self._read_timeout
            self._read_timer = self._loop.call_later(left, self._upstream_timed_out)
            return
        self._fail(f"upstream {self._connection.server.address} did not answer in time")

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    # ---- a client that stops reading slows the upstream's read ----

    def client_stalled(self, stalled: bool) -> None:
        """The client's socket buffer is full (True) or drained (False)."""
        if self._detached:
            return
        if stalled:
            if self._write_timer is None:
                self._write_timer = self._loop.call_later(WRITE_TIMEOUT_SECONDS, self._client_stopped_reading)
            if self.busy and not self._upstream_paused:
                self._upstream_paused = True
                self._connection.pause_reading()
            return
        self._cancel_write_timer()
        if self._upstream_paused:
            self._upstream_paused = False
            self._connection.resume_reading()

    def _cancel_write_timer(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _client_stopped_reading(self) -> None:
        self._write_timer = None
        if self._detached:
            return
        log.info("the client stopped reading relayed results for %.0f s; dropped", WRITE_TIMEOUT_SECONDS)
        if self.busy:
            self._fail("the client stopped reading mid-result")
        else:
            self._stream.abort()
            self._stream.end_session("the client stopped reading")
