"""Faults a real server does not produce on demand, from a scripted upstream on loopback: a server that hangs
mid-result (read timeout), closes in the middle of a packet, says goodbye with an unsolicited ERR, refuses before
its greeting, or answers out of sequence."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from fe.mysql import messages
from fe.mysql.codec import frame, lenenc_int
from fe.mysql.constants import SERVER_CAPABILITIES, Capability
from fe.server import eventloop
from fe.upstream.connect import connect
from fe.upstream.connection import UpstreamConnection
from fe.upstream.endpoint import UpstreamAccount, UpstreamServer
from fe.upstream.errors import Reason, UpstreamError
from fe.upstream.pool import UpstreamPool
from fe.upstream.tls import TlsMode, TlsOptions
from tests.support.upstream_wire import Collector
from tests.upstream.conftest import CLIENT_CAPS

ACCOUNT = UpstreamAccount("svc", "pw")
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def wire(payload: bytes, seq: int) -> bytes:
    return frame(payload, seq)[0]


async def read_packet(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(4)
    return await reader.readexactly(int.from_bytes(header[:3], "little"))


async def greet_and_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    caps = SERVER_CAPABILITIES | Capability.MULTI_STATEMENTS
    writer.write(wire(messages.greeting(9, b"s" * 20, caps, "8.4.0-scripted", "mysql_native_password", 2), 0))
    await read_packet(reader)
    writer.write(wire(messages.ok(status=2), 2))
    await writer.drain()


def column_metadata() -> bytes:
    return wire(lenenc_int(1), 1) + wire(messages.column_definition("a"), 2)


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[[Script], Awaitable[UpstreamServer]]]:
    listeners: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []

    async def start(script: Script) -> UpstreamServer:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            await script(reader, writer)

        listener = await asyncio.start_server(serve, "127.0.0.1", 0)
        listeners.append(listener)
        port = int(listener.sockets[0].getsockname()[1])
        return UpstreamServer("127.0.0.1", port, TlsOptions(TlsMode.DISABLED), connect_timeout=2, read_timeout=0.3)

    yield start
    for writer in writers:
        writer.close()
    for listener in listeners:
        listener.close()
        await listener.wait_closed()


async def test_a_hang_mid_result_hits_the_read_timeout(scripted: Callable[[Script], Awaitable[UpstreamServer]]) -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet_and_accept(reader, writer)
        await read_packet(reader)
        writer.write(column_metadata())
        await asyncio.sleep(5)

    connection = await connect(await scripted(hang), ACCOUNT, client_capabilities=CLIENT_CAPS)
    sink = Collector()
    with pytest.raises(UpstreamError, match="did not answer in time") as caught:
        await connection.relay(b"\x03SELECT a", sink)
    assert caught.value.reason is Reason.TIMEOUT and connection.broken and len(sink.packets()) == 2


async def test_closed_in_the_middle_of_a_packet(scripted: Callable[[Script], Awaitable[UpstreamServer]]) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet_and_accept(reader, writer)
        await read_packet(reader)
        writer.write(column_metadata() + wire(b"\x05hello", 3)[:6])
        await writer.drain()
        writer.close()

    connection = await connect(await scripted(cut), ACCOUNT, client_capabilities=CLIENT_CAPS)
    with pytest.raises(UpstreamError, match="closed the connection mid-result") as caught:
        await connection.relay(b"\x03SELECT a", Collector())
    assert caught.value.reason is Reason.CLOSED and connection.broken


async def test_a_goodbye_err_between_commands(scripted: Callable[[Script], Awaitable[UpstreamServer]]) -> None:
    async def shutdown(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet_and_accept(reader, writer)
        await asyncio.sleep(0.01)
        writer.write(wire(messages.err(1053, "08S01", "Server shutdown in progress"), 0))
        await writer.drain()
        writer.close()

    connection = await connect(await scripted(shutdown), ACCOUNT, client_capabilities=CLIENT_CAPS)
    await asyncio.sleep(0.05)
    sink = Collector()
    with pytest.raises(UpstreamError, match="Server shutdown in progress") as caught:
        await connection.relay(b"\x03SELECT 1", sink)
    assert caught.value.reason is Reason.CLOSED and caught.value.server_error is not None
    assert caught.value.server_error.code == 1053 and connection.broken and not sink.data


async def test_an_err_instead_of_the_greeting(scripted: Callable[[Script], Awaitable[UpstreamServer]]) -> None:
    async def full(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(wire(b"\xff\x10\x04Too many connections", 0))
        await writer.drain()
        writer.close()

    with pytest.raises(UpstreamError, match="Too many connections") as caught:
        await connect(await scripted(full), ACCOUNT, client_capabilities=CLIENT_CAPS)
    assert caught.value.reason is Reason.REFUSED and caught.value.server_error is not None
    assert caught.value.server_error.code == 1040


async def test_an_out_of_sequence_answer(scripted: Callable[[Script], Awaitable[UpstreamServer]]) -> None:
    async def confused(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet_and_accept(reader, writer)
        await read_packet(reader)
        writer.write(wire(messages.ok(), 5))
        await asyncio.sleep(5)

    connection = await connect(await scripted(confused), ACCOUNT, client_capabilities=CLIENT_CAPS)
    with pytest.raises(UpstreamError, match="broke the protocol") as caught:
        await connection.relay(b"\x03DO 1", Collector())
    assert caught.value.reason is Reason.PROTOCOL and connection.broken


async def test_tls_required_but_not_offered(scripted: Callable[[Script], Awaitable[UpstreamServer]]) -> None:
    server = await scripted(greet_and_accept)
    tls = UpstreamServer(server.host, server.port, TlsOptions(TlsMode.REQUIRED))
    with pytest.raises(UpstreamError, match="does not offer TLS") as caught:
        await connect(tls, ACCOUNT, client_capabilities=CLIENT_CAPS)
    assert caught.value.reason is Reason.TLS


async def _closed_between_commands() -> None:
    """The upstream logs fe in, then closes (wait_timeout, a restart): the next relay, reset or COM_CHANGE_USER
    reports it as an UpstreamError, and the pool that held the connection does not lose its place."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet_and_accept(reader, writer)
        writer.close()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = int(listener.sockets[0].getsockname()[1])
    server = UpstreamServer("127.0.0.1", port, TlsOptions(TlsMode.DISABLED), connect_timeout=2, read_timeout=2)

    async def closed(connection: UpstreamConnection) -> UpstreamConnection:
        for _ in range(200):
            if not connection.ready_for_direct:
                return connection
            await asyncio.sleep(0.01)
        raise AssertionError("the upstream's close never arrived")

    operations: list[Callable[[UpstreamConnection], Awaitable[object]]] = [
        lambda connection: connection.relay(b"\x03SELECT 1", Collector()),
        lambda connection: connection.reset(),
        lambda connection: connection.change_user(ACCOUNT),
    ]
    try:
        for operation in operations:
            connection = await closed(await connect(server, ACCOUNT, client_capabilities=CLIENT_CAPS))
            with pytest.raises(UpstreamError) as caught:
                await operation(connection)
            assert caught.value.reason is Reason.CLOSED and connection.broken
        pool = UpstreamPool(server, max_size=1, acquire_timeout=2)
        for _ in range(3):
            connection = await closed(await pool.acquire(ACCOUNT, client_capabilities=CLIENT_CAPS))
            assert not await pool.release(connection)
        assert pool.stats.open == 0 and pool.stats.created == 3
        await pool.close()
    finally:
        listener.close()
        await listener.wait_closed()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_an_upstream_that_closed_between_commands(loop: str) -> None:
    # (uvloop raises RuntimeError for a write to a closed transport; asyncio's loop drops it)
    eventloop.run(_closed_between_commands(), loop)
