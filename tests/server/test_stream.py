"""PacketStream on real sockets: small replies are not held back by Nagle's algorithm."""

from __future__ import annotations

import asyncio
import socket

from fe.server.listener import make_listening_socket
from fe.server.stream import PacketStream


async def test_accepted_connections_disable_nagle() -> None:
    await _accepted_connection_disables_nagle()


def test_accepted_connections_disable_nagle_on_uvloop() -> None:
    from fe.server import eventloop

    eventloop.run(_accepted_connection_disables_nagle(), "uvloop")


async def _accepted_connection_disables_nagle() -> None:
    made: asyncio.Future[PacketStream] = asyncio.get_running_loop().create_future()

    def factory() -> PacketStream:
        stream = PacketStream(1024)
        stream.on_made = made.set_result
        return stream

    listening = make_listening_socket("127.0.0.1", 0, reuse_port=False)
    server = await asyncio.get_running_loop().create_server(factory, sock=listening)
    _, writer = await asyncio.open_connection(*listening.getsockname()[:2])
    try:
        stream = await asyncio.wait_for(made, 5)
        assert stream.transport is not None
        accepted = stream.transport.get_extra_info("socket")
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert stream.peer[0] == "127.0.0.1"
    finally:
        writer.close()
        server.close()
        await server.wait_closed()
