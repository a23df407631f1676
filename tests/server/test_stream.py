"""PacketStream on real sockets: small replies are not held back by Nagle's algorithm; read timeouts."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from fe.mysql.protocol import ServerProtocol
from fe.server.listener import make_listening_socket
from fe.server.stream import ConnectionClosed, PacketStream


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


class _ByteEvents:
    """A stand-in for ServerProtocol: every received byte is an event."""

    buffered = 0
    read_limit = 1 << 20

    def __init__(self) -> None:
        self.pending: list[int] = []

    def receive_data(self, data: bytes) -> bool:
        self.pending.extend(data)
        return False

    def next_event(self) -> object:
        from fe.mysql.protocol import NEED_DATA

        return self.pending.pop(0) if self.pending else NEED_DATA


async def _reads_share_one_timer_and_each_keeps_its_own_deadline() -> None:
    """The read timer outlives a read that ended in time, but every read still times out `timeout` seconds after
    it began: not earlier (at an earlier read's deadline), not later (a longer earlier timeout)."""
    loop = asyncio.get_running_loop()
    made: asyncio.Future[PacketStream] = loop.create_future()

    def factory() -> PacketStream:
        stream = PacketStream(_ByteEvents())  # type: ignore[arg-type]
        stream.on_made = made.set_result
        return stream

    listening = make_listening_socket("127.0.0.1", 0, reuse_port=False)
    server = await loop.create_server(factory, sock=listening)
    client = socket.create_connection(listening.getsockname()[:2])
    try:
        stream = await asyncio.wait_for(made, 5)
        # A long timeout, then a short one: the short read must not wait for the long read's timer.
        first = asyncio.ensure_future(stream.next_event(30.0))
        await asyncio.sleep(0.05)
        client.sendall(b"a")
        assert await asyncio.wait_for(first, 5) == ord("a")
        began = loop.time()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(stream.next_event(0.2), 5)
        assert 0.19 <= loop.time() - began < 2.0
        # Equal timeouts, the second read begun later: it times out at its own deadline, not at the first's.
        third = asyncio.ensure_future(stream.next_event(0.4))
        await asyncio.sleep(0.2)
        client.sendall(b"b")
        assert await asyncio.wait_for(third, 5) == ord("b")
        began = loop.time()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(stream.next_event(0.4), 5)
        assert 0.39 <= loop.time() - began < 2.0
        client.close()
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(stream.next_event(30.0), 5)
        await asyncio.sleep(0.05)
        assert stream._read_timer is None  # no timer keeps a closed connection's stream
    finally:
        client.close()
        server.close()
        await server.wait_closed()


async def test_reads_share_one_timer_and_each_keeps_its_own_deadline() -> None:
    await _reads_share_one_timer_and_each_keeps_its_own_deadline()


def test_reads_share_one_timer_and_each_keeps_its_own_deadline_on_uvloop() -> None:
    from fe.server import eventloop

    eventloop.run(_reads_share_one_timer_and_each_keeps_its_own_deadline(), "uvloop")
