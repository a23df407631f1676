"""PacketStream on real sockets: small replies are not held back by Nagle's algorithm."""

from __future__ import annotations

import asyncio
import socket
import time

from fe.mysql.protocol import ServerProtocol
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
        stream = PacketStream(ServerProtocol(1024, 1024, 0))
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


async def _read_timeout_survives_a_partial_packet_at_the_deadline() -> None:
    """A partial packet that lands in the same loop turn as the deadline wakes the reader first; the timeout must
    still end the read (else a client that sends half a packet and vanishes holds its connection forever)."""
    loop = asyncio.get_running_loop()
    made: asyncio.Future[PacketStream] = loop.create_future()

    def factory() -> PacketStream:
        stream = PacketStream(ServerProtocol(1 << 20, 1 << 20, 0))
        stream.on_made = made.set_result
        return stream

    listening = make_listening_socket("127.0.0.1", 0, reuse_port=False)
    server = await loop.create_server(factory, sock=listening)
    client = socket.create_connection(listening.getsockname()[:2])
    try:
        stream = await asyncio.wait_for(made, 5)
        stream.write(stream.protocol.greeting(1, b"n" * 20, "9.2.0", "caching_sha2_password", 0))
        read = asyncio.ensure_future(stream.next_event(0.2))
        await asyncio.sleep(0.05)
        client.sendall(b"\x05\x00")  # two bytes of a four-byte header
        time.sleep(0.3)  # the loop is busy past the deadline while those bytes arrive
        await asyncio.wait({read}, timeout=2.0)  # waits without cancelling: the read must end by itself
        assert read.done(), "the read outlived its timeout"
        assert isinstance(read.exception(), TimeoutError)
    finally:
        client.close()
        server.close()
        await server.wait_closed()


async def test_read_timeout_survives_a_partial_packet_at_the_deadline() -> None:
    await _read_timeout_survives_a_partial_packet_at_the_deadline()


def test_read_timeout_survives_a_partial_packet_at_the_deadline_on_uvloop() -> None:
    from fe.server import eventloop

    eventloop.run(_read_timeout_survives_a_partial_packet_at_the_deadline(), "uvloop")
