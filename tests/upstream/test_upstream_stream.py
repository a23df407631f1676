"""UpstreamStream, the upstream leg's byte pipe with TLS over memory BIOs, against a local TLS server on both event
loops: flow control (the read buffer's limit, a receiver that pauses), a cancelled TLS handshake, certificate
checks. The relay over it runs against the real MariaDB in the other modules here."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from fe.server import eventloop
from fe.upstream.stream import UpstreamStream
from tests.support.certificates import CertificateFiles, write_ca_and_server_certificate

LOOPS = ["asyncio", "uvloop"]
CHUNK = 16 * 1024
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> CertificateFiles:
    return write_ca_and_server_certificate(tmp_path_factory.mktemp("upstream-stream"))


def _server_context(files: CertificateFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    return context


def _client_context(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)


async def _serve(handler: Handler, files: CertificateFiles | None) -> asyncio.Server:
    context = _server_context(files) if files is not None else None
    return await asyncio.start_server(handler, "127.0.0.1", 0, ssl=context)


def _port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


async def _flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Sends 4 MiB as soon as it hears anything, then waits."""
    await reader.read(10)
    try:
        for _ in range(256):
            writer.write(b"y" * CHUNK)
            await writer.drain()
        await asyncio.sleep(10)
    except (ConnectionError, asyncio.CancelledError):
        pass


async def _open(server: asyncio.Server, files: CertificateFiles | None, limit: int) -> UpstreamStream:
    stream = await UpstreamStream.open("127.0.0.1", _port(server), limit=limit)
    if files is not None:
        await stream.start_tls(_client_context(files.ca), "localhost")
    return stream


async def _settle(seconds: float = 0.3) -> None:
    await asyncio.sleep(seconds)


async def _until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait for `condition` (polled), however slow the machine; AssertionError after `seconds`."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never came true")


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("tls", [False, True])
def test_reading_stops_at_twice_the_limit_and_resumes_at_it(
    loop: str, tls: bool, certificates: CertificateFiles
) -> None:
    async def main() -> None:
        files = certificates if tls else None
        server = await _serve(_flood, files)
        limit = 64 * 1024
        stream = await _open(server, files, limit)
        try:
            stream.write(b"go")
            await _until(lambda: stream.unread > 2 * limit)
            await _settle()  # time to read more, if reading had not paused
            # Whatever the socket had when reading paused (one read's worth) may come on top of twice the limit.
            assert 2 * limit < stream.unread <= 2 * limit + 256 * 1024
            assert stream.transport is not None and not stream.transport.is_reading()
            total = 0
            while total < 256 * CHUNK:
                data = await asyncio.wait_for(stream.read(limit), 5)
                assert data
                total += len(data)
                assert stream.unread <= 2 * limit + 256 * 1024  # bounded all along
            assert total == 256 * CHUNK
        finally:
            stream.abort()
            server.close()

    eventloop.run(main(), loop)


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("tls", [False, True])
def test_a_receiver_that_pauses_gets_nothing_more_until_it_resumes(
    loop: str, tls: bool, certificates: CertificateFiles
) -> None:
    """The fast relay pauses the upstream's read when its client stops reading: what was already received (and,
    over TLS, already decrypted into the BIO) must wait too, not be pushed at a client that does not read."""

    async def main() -> None:
        files = certificates if tls else None
        server = await _serve(_flood, files)
        stream = await _open(server, files, 1 << 20)
        received: list[int] = []

        def receiver(data: bytes) -> None:
            received.append(len(data))
            if len(received) == 1:
                stream.pause_reading()

        try:
            stream.receiver = receiver
            stream.write(b"go")
            await _until(lambda: len(received) >= 1)
            await _settle()  # time for more to arrive, if pausing did not hold it back
            assert len(received) == 1
            stream.resume_reading()
            await _until(lambda: sum(received) >= 256 * CHUNK)
            assert sum(received) == 256 * CHUNK  # nothing lost, nothing twice
        finally:
            stream.abort()
            server.close()

    eventloop.run(main(), loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_tls_handshake_cancelled_as_the_servers_answer_arrives(loop: str, certificates: CertificateFiles) -> None:
    """A shutdown cancels a session's connect just as the server's handshake flight comes in: the stream is
    dropped quietly (no error from the event loop about a callback that failed)."""

    class CancelOnData(UpstreamStream):
        __slots__ = ("task",)

        def data_received(self, data: bytes) -> None:
            task = getattr(self, "task", None)
            if task is not None and not task.done():
                task.cancel()
            super().data_received(data)

    async def main() -> None:
        server = await _serve(_flood, certificates)
        loop_ = asyncio.get_running_loop()
        errors: list[dict[str, object]] = []
        loop_.set_exception_handler(lambda _, context: errors.append(context))
        _, stream = await loop_.create_connection(CancelOnData, "127.0.0.1", _port(server))
        stream.task = asyncio.ensure_future(stream.start_tls(_client_context(certificates.ca), "localhost"))
        with pytest.raises(asyncio.CancelledError):
            await stream.task
        await _until(lambda: stream.transport is not None and stream.transport.is_closing())
        await _settle(0.2)
        assert errors == []
        server.close()

    eventloop.run(main(), loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_certificate_for_another_name_is_refused(loop: str, certificates: CertificateFiles) -> None:
    async def main() -> None:
        server = await _serve(_flood, certificates)
        stream = await UpstreamStream.open("127.0.0.1", _port(server))
        with pytest.raises(ssl.SSLCertVerificationError):
            await stream.start_tls(_client_context(certificates.ca), "db.example.com")
        server.close()

    eventloop.run(main(), loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_bytes_written_after_the_upstream_closed_are_dropped_and_the_read_says_so(loop: str) -> None:
    async def main() -> None:
        async def goodbye(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"bye")
            writer.close()

        server = await _serve(goodbye, None)
        stream = await UpstreamStream.open("127.0.0.1", _port(server))
        await _until(lambda: stream.closed)
        stream.write(b"too late")  # uvloop would raise RuntimeError for its closed transport
        await stream.drain()
        assert await stream.read(100) == b"bye"
        assert await stream.read(100) == b""
        server.close()

    eventloop.run(main(), loop)
