"""One connection's byte pipe: an asyncio Protocol between the socket and the sans-IO ServerProtocol. It does TLS
itself.

TLS runs over memory BIOs rather than asyncio's own SSL transport, for two reasons: bytes that arrive in the
same read as the SSLRequest (the client's ClientHello) are handed to TLS instead of being lost, and an idle
connection keeps no large read buffer (asyncio's SSL protocol holds 256 KiB per connection).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from typing import Protocol

from fe.mysql.protocol import NEED_DATA, Event, ServerProtocol
from fe.server.eventloop import from_uvloop
from fe.server.proxy_protocol import ProxyHeader, ProxyHeaderReader, ProxyProtocolError

_TLS_READ_SIZE = 64 * 1024
# After close(), how long unsent bytes may wait for a client that does not read before the socket is dropped.
CLOSE_LINGER_SECONDS = 5.0
# A read timer that fires this close to its read's deadline (event loops may run a timer a little early) times the
# read out rather than waiting again.
_TIMER_SLACK = 0.001


class ConnectionClosed(Exception):
    """The peer went away (or TLS failed) while we waited for a packet."""


class CommandTap(Protocol):
    """Takes commands off the stream in its own callbacks, while the session's task waits for the next event (the
    gateway's fast relay, fe.server.fast_relay)."""

    @property
    def busy(self) -> bool:
        """A command it took is still being answered."""

    def take_commands(self) -> bool:
        """Take the commands it can; True when it handed the task something (PacketStream.hand_over)."""

    def client_stalled(self, stalled: bool) -> None:
        """The client stopped reading (True) or reads again (False) while busy: pause the answer's source."""


class PacketStream(asyncio.Protocol):
    """Bytes between the socket (through TLS, once started) and the connection's sans-IO ServerProtocol."""

    # One per connection, read and written on every packet: slots, no instance dict.
    __slots__ = (
        "_drain_waiter",
        "_eof",
        "_failure",
        "_handshake_done",
        "_outgoing",
        "_paused_reading",
        "_pending",
        "_read_deadline",
        "_read_expired",
        "_read_timeout",
        "_read_timer",
        "_read_timer_at",
        "_tls",
        "_tls_in",
        "_tls_out",
        "_waiter",
        "active_at",
        "close_linger",
        "closing_when_idle",
        "on_made",
        "peer",
        "protocol",
        "proxy",
        "proxy_error",
        "proxy_header",
        "socket_peer",
        "tap",
        "transport",
        "write_paused",
    )

    def __init__(self, protocol: ServerProtocol) -> None:
        self.protocol = protocol
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)  # the client: the socket's peer, or the one a PROXY header names
        self.socket_peer: tuple[str, int] = ("", 0)  # the socket's own peer (a load balancer, when proxied)
        # Set by the listener for connections that must (or must not) open with a PROXY protocol header.
        self.proxy: ProxyHeaderReader | None = None
        self.proxy_header: ProxyHeader | None = None
        self.proxy_error = ""  # why the PROXY header (or its absence) was refused
        self._waiter: asyncio.Future[None] | None = None
        self._failure: BaseException | None = None
        self._eof = False
        self._paused_reading = False
        self.write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._outgoing: list[bytes] = []
        self._tls: ssl.SSLObject | None = None
        self._tls_in: ssl.MemoryBIO | None = None
        self._tls_out: ssl.MemoryBIO | None = None
        self._handshake_done: asyncio.Future[None] | None = None
        self._read_expired = False  # next_event's timeout has passed
        # While next_event waits with a timeout: when that read times out. One timer serves every read of the
        # connection (_arm_read_timer), instead of a new one per command.
        self._read_deadline: float | None = None
        self._read_timer: asyncio.TimerHandle | None = None
        self._read_timer_at = 0.0  # when _read_timer fires
        # Called once the transport exists (the listener starts the connection's task there).
        self.on_made: Callable[[PacketStream], None] | None = None
        self.close_linger = CLOSE_LINGER_SECONDS
        self.tap: CommandTap | None = None
        self._pending: object = None  # what the tap handed over, before any more bytes
        self._read_timeout = 0.0  # the waiting read's timeout (the tap's activity moves its deadline)
        self.active_at = 0.0  # loop time the tap last took a command or finished an answer (idleness counts from it)
        self.closing_when_idle = False

    # ---- asyncio.Protocol callbacks ----

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # No isinstance check: uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):  # an IP socket (a Unix socket's peer is a path)
            self.peer = self.socket_peer = (str(peer[0]), int(peer[1]))
            # Replies are small and often come in pairs (AuthMoreData, then OK): with Nagle's algorithm on, the
            # second waits for the client's delayed ACK, about 40 ms. uvloop turns it off on every TCP transport;
            # asyncio skips accepted sockets (their proto is 0), so those get it here.
            if not from_uvloop(transport):
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.on_made is not None:
            self.on_made(self)

    def data_received(self, data: bytes) -> None:
        if self.proxy is not None and not self.proxy.done:
            data = self._read_proxy_header(data)
            if not data:
                return
        if self._tls_in is not None:
            self._tls_in.write(data)
            self._pump_tls()
        else:
            self._feed(data)

    def _read_proxy_header(self, data: bytes) -> bytes:
        """The PROXY header before anything else (never inside TLS); returns the bytes that follow it."""
        assert self.proxy is not None
        try:
            result = self.proxy.feed(data)
        except ProxyProtocolError as exc:
            self.proxy_error = str(exc)
            self._failure = ConnectionClosed(f"PROXY protocol: {exc}")
            self._wake()
            return b""
        if isinstance(result, ProxyHeader):
            self.proxy_header = result
            self.peer = result.client_address(self.socket_peer)
        if self.proxy.done:
            self._wake()
            return self.proxy.rest
        return b""

    async def read_proxy_header(self) -> None:
        """Wait for the PROXY header a balancer's connection must open with; raises ConnectionClosed when it is
        malformed or missing, or the peer left."""
        while self.proxy is not None and not self.proxy.done:
            if self._failure is not None:
                raise self._failure
            if self._eof:
                raise ConnectionClosed("closed before its PROXY header")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._failure is not None:
            raise self._failure

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        if self._read_timer is not None:  # it would keep this stream until the idle timeout
            self._read_timer.cancel()
            self._read_timer = None
        if self._failure is None:
            self._failure = ConnectionClosed(str(exc) if exc else "connection closed by peer")
        if self._handshake_done is not None and not self._handshake_done.done():
            self._handshake_done.set_exception(ConnectionClosed("connection closed during TLS handshake"))
        self._wake()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.tap is not None and self.tap.busy:
            self.tap.client_stalled(True)

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)
        if self.tap is not None:
            self.tap.client_stalled(False)

    # ---- reading ----

    def _feed(self, data: bytes) -> None:
        if self._failure is not None:
            return
        if self.protocol.receive_data(data) and self.transport and not self._paused_reading:
            self.transport.pause_reading()
            self._paused_reading = True
        if self.tap is not None:
            self.poke()
        else:
            self._wake()

    def poke(self) -> None:
        """Offer the tap the commands received, if the task waits for its next event; wake the task when there is
        something for it."""
        tap = self.tap
        if self._waiter is None or self._waiter.done() or self._pending is not None or tap is None:
            self._wake()  # the task is busy, or already woken (by a timeout, a close): the bytes wait for it
            return
        if self.closing_when_idle and not tap.busy:
            self.closing_when_idle = False
            self.close_when_idle()
            return
        wake = tap.take_commands()
        self._resume_reading_if_drained()
        if wake:
            self._wake()

    def _resume_reading_if_drained(self) -> None:
        """Reading paused while the client was far ahead resumes once its events were taken."""
        if self._paused_reading and self.transport and self.protocol.buffered <= self.protocol.read_limit:
            self._paused_reading = False
            self.transport.resume_reading()

    def hand_over(self, item: object) -> None:
        """The tap took an event it does not handle (or the protocol's error, or an event of its own): the task's
        next_event returns (or raises) it first."""
        self._pending = item

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next_event(self, timeout: float | None = None) -> Event:
        """The client's next event; raises ClientProtocolError (the client broke the protocol), ConnectionClosed,
        or TimeoutError when `timeout` seconds pass without one."""
        self._read_expired = False
        protocol = self.protocol
        try:
            while True:
                pending = self._pending  # what the tap handed over comes before any more bytes
                if pending is not None:
                    self._pending = None
                    if isinstance(pending, BaseException):
                        raise pending
                    return pending  # type: ignore[return-value]
                tap = self.tap
                # While the tap's command is being answered, what the client sent next is not the task's to parse.
                event = protocol.next_event() if tap is None or not tap.busy else NEED_DATA
                if event is not NEED_DATA:
                    self._resume_reading_if_drained()
                    return event  # type: ignore[return-value]
                if self.closing_when_idle and (tap is None or not tap.busy):
                    self.closing_when_idle = False
                    self.close_when_idle()  # a shutdown that came while the tap's command was being answered
                if self._failure is not None:
                    raise self._failure
                if self._eof:
                    raise ConnectionClosed("connection closed by peer")
                if self._read_expired:
                    # The timer fired while part of a packet was arriving (the waiter was already woken by it).
                    raise TimeoutError()
                self.flush()
                loop = asyncio.get_running_loop()
                if timeout is not None and self._read_deadline is None:
                    self._read_timeout = timeout
                    self._arm_read_timer(loop, loop.time() + timeout)
                self._waiter = loop.create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
        finally:
            self._read_deadline = None

    def _arm_read_timer(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """The read now waiting times out at `deadline`. This wait is on every command, so the connection keeps one
        timer for all its reads: it is replaced only when it would fire too late; firing too early (it was armed by
        an earlier read), it moves itself on (_read_timer_fired)."""
        self._read_deadline = deadline
        if self._read_timer is None or self._read_timer_at > deadline:
            if self._read_timer is not None:
                self._read_timer.cancel()
            self._read_timer = loop.call_at(deadline, self._read_timer_fired)
            self._read_timer_at = deadline

    def _read_timer_fired(self) -> None:
        self._read_timer = None
        deadline = self._read_deadline
        if deadline is None:
            return  # no read is waiting: the next one arms a timer again
        loop = asyncio.get_running_loop()
        tap = self.tap
        if tap is not None:
            # Commands the tap answered meanwhile count as activity (idleness counts from the end of the last
            # answer), and a command still being answered is not idleness (without the tap no read waits then).
            now = loop.time()
            deadline = now + self._read_timeout if tap.busy else max(deadline, self.active_at + self._read_timeout)
            self._read_deadline = deadline
        if deadline - loop.time() > _TIMER_SLACK:
            self._read_timer = loop.call_at(deadline, self._read_timer_fired)
            self._read_timer_at = deadline
            return
        self._time_out_read()

    def _time_out_read(self) -> None:
        self._read_expired = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(TimeoutError())

    # ---- writing ----

    def write(self, wire: bytes) -> None:
        """Queue bytes the protocol framed. Queued bytes go out together when the connection next waits for the
        client (or drains, or closes): one login's AuthMoreData and OK, or a result set's packets, leave in one TLS
        record and one send()."""
        self._outgoing.append(wire)

    def flush(self) -> None:
        if self._outgoing:
            data = b"".join(self._outgoing)
            self._outgoing.clear()
            self._write(data)

    def send_now(self, data: bytes) -> bool:
        """Send at once (what is queued first); False when the client is gone."""
        if self.transport is None or self.transport.is_closing():
            return False
        if self._outgoing:
            self.flush()
        self._write(data)
        return True

    def _write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        tls = self._tls
        if tls is None:
            transport.write(data)
            return
        try:
            tls.write(data)
        except ssl.SSLError:
            self.abort()
            return
        transport.write(self._tls_out.read())  # type: ignore[union-attr]  # (what write() encrypted, always some)

    async def drain(self, timeout: float | None = None) -> None:
        """Send what is queued and, while the transport's buffer is over its high-water mark, wait for the client
        to read; TimeoutError after `timeout` seconds of that."""
        self.flush()
        if self.write_paused and self.transport and not self.transport.is_closing():
            loop = asyncio.get_running_loop()
            waiter = self._drain_waiter = loop.create_future()
            timer = None
            if timeout is not None:
                timer = loop.call_later(timeout, _fail_unless_done, waiter, TimeoutError())
            try:
                await waiter
            finally:
                self._drain_waiter = None
                if timer is not None:
                    timer.cancel()

    # ---- TLS ----

    @property
    def is_tls(self) -> bool:
        return self._tls is not None

    async def start_tls(self, context: ssl.SSLContext) -> None:
        """Server-side TLS from here on; bytes already received after the last packet go into TLS."""
        leftover = self.protocol.take_unparsed()
        self._tls_in = ssl.MemoryBIO()
        self._tls_out = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._tls_in, self._tls_out, server_side=True)
        self._handshake_done = asyncio.get_running_loop().create_future()
        if leftover:
            self._tls_in.write(leftover)
        self._pump_tls()
        await self._handshake_done

    def _pump_tls(self) -> None:
        tls, tls_in = self._tls, self._tls_in
        assert tls is not None and tls_in is not None
        done = self._handshake_done
        if done is not None and not done.done():
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                self._flush_tls()
                return
            except (ssl.SSLError, OSError) as exc:
                self._flush_tls()
                done.set_exception(ConnectionClosed(f"TLS handshake failed: {exc}"))
                self._failure = ConnectionClosed("TLS handshake failed")
                self.abort()
                return
            self._flush_tls()
            done.set_result(None)
        while True:
            try:
                chunk = tls.read(_TLS_READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self._eof = True
                self._wake()
                break
            except (ssl.SSLError, OSError) as exc:
                self._failure = ConnectionClosed(f"TLS error: {exc}")
                self._wake()
                self.abort()
                break
            if not chunk:
                self._eof = True
                self._wake()
                break
            self._feed(chunk)
            # Nothing left to decrypt: spare the SSLWantReadError another read() would raise. (A record holds at most
            # 16 KiB, so a shorter read took all that was decrypted.)
            if not tls_in.pending and (len(chunk) < _TLS_READ_SIZE or not tls.pending()):
                break
        self._flush_tls()

    def _flush_tls(self) -> None:
        out = self._tls_out
        if out is not None and out.pending and self.transport is not None and not self.transport.is_closing():
            self.transport.write(out.read())

    # ---- closing ----

    def close_when_idle(self) -> None:
        """Server shutdown: a session waiting for its next command ends now; a busy one after its reply."""
        if self.tap is not None and self.tap.busy:
            self.closing_when_idle = True  # poke() comes back here once the tap's reply is complete
            return
        if self._failure is None:
            self._failure = ConnectionClosed("server shutting down")
        self._wake()

    def end_session(self, why: str) -> None:
        """The session ended outside its task (the tap's upstream failed): the task's next wait ends with
        ConnectionClosed."""
        if self._failure is None:
            self._failure = ConnectionClosed(why)
        self._wake()

    def close(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.flush()
        # No TLS close_notify, as MySQL's own server does (a quiet shutdown, vio_ssl_shutdown): MySQL packets carry
        # their length and a session ends on COM_QUIT or an ERR, so a truncation cannot pass unnoticed, and the
        # alert would cost every login one more encryption and send().
        self.transport.close()
        if self.transport.get_write_buffer_size():
            # asyncio keeps a closing socket until its buffer is sent: a peer that never reads would keep it
            # (outside max_connections, since the connection's task is over) forever.
            asyncio.get_running_loop().call_later(self.close_linger, self.abort)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def _fail_unless_done(future: asyncio.Future[None], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
