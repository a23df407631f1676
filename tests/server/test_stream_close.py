"""PacketStream.close() on a peer that never reads: the socket is dropped after a bounded linger."""

from __future__ import annotations

import asyncio
import socket

from fe.mysql.protocol import ServerProtocol
from fe.server.listener import make_listening_socket
from fe.server.stream import PacketStream


async def test_close_does_not_wait_forever_for_a_peer_that_never_reads() -> None:
    loop = asyncio.get_running_loop()
    made: asyncio.Future[PacketStream] = loop.create_future()
    lost = asyncio.Event()

    class Stream(PacketStream):
        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            lost.set()

    def factory() -> PacketStream:
        stream = Stream(ServerProtocol(1024, 1024, 0))
        stream.close_linger = 0.5
        stream.on_made = made.set_result
        return stream

    listening = make_listening_socket("127.0.0.1", 0, reuse_port=False)
    server = await loop.create_server(factory, sock=listening)
    peer = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    peer.setblocking(False)
    try:
        await loop.sock_connect(peer, listening.getsockname()[:2])
        stream = await asyncio.wait_for(made, 5)
        assert stream.transport is not None
        for _ in range(200):  # far more than the socket buffers hold; the peer reads none of it
            stream.write(b"x" * 65536)
            stream.flush()
        await asyncio.sleep(0.2)
        assert stream.transport.get_write_buffer_size() > 0
        stream.close()
        await asyncio.wait_for(lost.wait(), 5)
    finally:
        peer.close()
        server.close()
        await server.wait_closed()
