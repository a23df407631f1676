"""The listening socket and the set of live connections: accept, cap, and shut down within a bounded time."""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import socket

from fe.mysql.errors import ErrorCode
from fe.mysql.protocol import ServerProtocol
from fe.server.connection import ADVERTISED_CAPABILITIES, Connection
from fe.server.context import ServerContext
from fe.server.limits import ConnectionLimits, LimitSettings
from fe.server.stream import PacketStream

log = logging.getLogger("fe.server")


def make_listening_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class Listener:
    def __init__(self, context: ServerContext, worker_index: int = 0, worker_count: int = 1) -> None:
        self.context = context
        self.settings = context.settings
        self._tasks: set[asyncio.Task[None]] = set()
        self._streams: set[PacketStream] = set()
        self._server: asyncio.Server | None = None
        # Connection ids stay unique across worker processes: worker i hands out i+1, i+1+n, i+1+2n, ...
        self._ids = itertools.count(worker_index + 1, worker_count)
        settings = self.settings
        logging_in = min(settings.max_unauthenticated_connections, settings.max_connections)
        self.limits = ConnectionLimits(
            LimitSettings(
                max_sessions=settings.max_connections,
                admin_reserved=settings.admin_reserved_connections,
                max_logging_in=logging_in,
                max_logging_in_per_address=min(settings.max_unauthenticated_per_address, max(32, logging_in // 4)),
            )
        )

    @property
    def connection_count(self) -> int:
        return len(self._streams)

    async def start(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._new_stream, sock=sock, backlog=1024)

    def _new_stream(self) -> PacketStream:
        gateway = self.context.gateway
        capabilities = gateway.advertised_capabilities() if gateway is not None else ADVERTISED_CAPABILITIES
        protocol = ServerProtocol(self.settings.max_preauth_packet_size, self.settings.max_packet_size, capabilities)
        stream = PacketStream(protocol)
        stream.on_made = self._on_connection
        return stream

    def _on_connection(self, stream: PacketStream) -> None:
        connection_id = next(self._ids) & 0xFFFFFFFF
        policy = self.context.proxy_policy
        if policy.networks:
            stream.proxy = policy.reader_for(stream.peer[0])
        metrics = self.context.metrics
        admission = self.limits.connect(stream, stream.peer[0])
        if not admission.admitted:
            if metrics is not None:
                metrics.connection_refused("too_many_connections")
            log.warning("refusing connection from %s: %d connections are logging in already", stream.peer[0],
                        self.limits.logging_in)  # fmt: skip
            stream.write(stream.protocol.refuse(ErrorCode.CON_COUNT, "Too many connections"))
            stream.close()
            return
        if isinstance(admission.evict, PacketStream):
            log.info("closing the oldest unfinished login from %s to make room for its newest", stream.peer[0])
            admission.evict.abort()
        self._streams.add(stream)
        self.context.stats.connections += 1
        self.context.stats.connected = len(self._streams)
        task = asyncio.get_running_loop().create_task(
            Connection(self.context, stream, connection_id, self.limits).run()
        )
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._forget, stream))  # (positional: no keyword dict per call)

    def _forget(self, stream: PacketStream, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._streams.discard(stream)
        self.limits.disconnect(stream)
        self.context.stats.connected = len(self._streams)
        if not task.cancelled() and task.exception() is not None:
            log.error("connection task failed", exc_info=task.exception())

    async def shutdown(self, grace: float) -> None:
        """Stop accepting; let sessions finish their current statement, then close them all within `grace`."""
        if self._server is not None:
            self._server.close()
        for stream in list(self._streams):
            stream.close_when_idle()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        for stream in list(self._streams):
            stream.abort()
        if self._server is not None:
            await self._server.wait_closed()
