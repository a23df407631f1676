"""The PROXY protocol reader against a real HAProxy (Debian's `haproxy`): `send-proxy` (v1) and `send-proxy-v2`
with TLVs and a CRC32C checksum carry the client's address and port; its health checks arrive as LOCAL (v2)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fe.server.proxy_protocol import NEED_DATA, ProxyCommand, ProxyHeader, ProxyHeaderReader
from tests.support.processes import free_port

HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)

pytestmark = pytest.mark.skipif(
    HAPROXY is None and not os.environ.get("FE_TESTS_REQUIRE_HAPROXY"), reason="haproxy is not installed"
)


class Backend:
    """Stands in for fe: reads the PROXY header first, then greets (MySQL is server-first) and echoes a line."""

    def __init__(self) -> None:
        self.headers: list[ProxyHeader] = []
        self.server: asyncio.Server | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        proxy = ProxyHeaderReader(expect_header=True)
        try:
            result = proxy.feed(await reader.read(4096))
            while result is NEED_DATA:
                chunk = await reader.read(4096)
                if not chunk:
                    return
                result = proxy.feed(chunk)
            assert isinstance(result, ProxyHeader)
            self.headers.append(result)
            if result.command is ProxyCommand.LOCAL:
                return
            writer.write(b"greeting\n")
            line = proxy.rest + await reader.readline()
            writer.write(b"echo " + line)
            await writer.drain()
        finally:
            writer.close()


# TLVs (unique id) and a checksum after the addresses; health checks every 200 ms, with a PROXY header.
V2_OPTIONS = "crc32c,unique-id check check-send-proxy inter 200ms"


@pytest.fixture
async def haproxy(tmp_path: Path) -> AsyncIterator[tuple[Backend, dict[str, int]]]:
    assert HAPROXY is not None, "haproxy is required (FE_TESTS_REQUIRE_HAPROXY) but not installed"
    backend = Backend()
    server = await asyncio.start_server(backend.serve, "127.0.0.1", 0)
    backend_port = server.sockets[0].getsockname()[1]
    ports = {"v1": free_port(), "v2": free_port()}
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        f"""
global
    log stdout format raw local0 warning
defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend v1
    bind 127.0.0.1:{ports["v1"]}
    default_backend v1
frontend v2
    bind 127.0.0.1:{ports["v2"]}
    unique-id-format %{{+X}}o\\ %ci:%cp_%fi:%fp_%Ts_%rt
    default_backend v2
backend v1
    server fe 127.0.0.1:{backend_port} send-proxy
backend v2
    server fe 127.0.0.1:{backend_port} send-proxy-v2 proxy-v2-options {V2_OPTIONS}
"""
    )
    process = await asyncio.create_subprocess_exec(
        HAPROXY, "-db", "-f", str(config), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        for port in ports.values():
            await wait_for_listener(process, port)
        await asyncio.sleep(0.2)
        backend.headers.clear()
        yield backend, ports
    finally:
        process.terminate()
        await process.wait()
        server.close()
        await server.wait_closed()


async def wait_for_listener(process: asyncio.subprocess.Process, port: int) -> None:
    for _ in range(200):
        if process.returncode is not None:
            break
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    process.kill()
    assert process.stderr is not None
    errors = await process.stderr.read()
    raise RuntimeError(f"haproxy did not listen on {port}: {errors.decode(errors='replace')}")


async def round_trip(port: int) -> tuple[tuple[str, int], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        client = writer.get_extra_info("sockname")
        greeting = await asyncio.wait_for(reader.readline(), 5)
        assert greeting == b"greeting\n"
        writer.write(b"hello\n")
        return (client[0], client[1]), await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()


@pytest.mark.parametrize("version", [1, 2])
async def test_haproxy_sends_the_client_address(haproxy: tuple[Backend, dict[str, int]], version: int) -> None:
    backend, ports = haproxy
    client, echoed = await round_trip(ports[f"v{version}"])
    assert echoed == b"echo hello\n"
    relayed = [header for header in backend.headers if header.command is ProxyCommand.PROXY]
    assert relayed and relayed[-1].version == version
    assert relayed[-1].source == client
    assert relayed[-1].destination == ("127.0.0.1", ports[f"v{version}"])


async def test_haproxy_health_checks_are_local(haproxy: tuple[Backend, dict[str, int]]) -> None:
    backend, _ = haproxy
    for _ in range(50):
        if any(header.command is ProxyCommand.LOCAL for header in backend.headers):
            break
        await asyncio.sleep(0.1)
    local = [header for header in backend.headers if header.command is ProxyCommand.LOCAL]
    assert local and local[0].version == 2 and local[0].source is None
