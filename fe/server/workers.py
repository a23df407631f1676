"""`fe serve --workers N`: N server processes sharing one port (SO_REUSEPORT) and one catalog file.

The parent prepares the home directory once, reserves the port (so `--port 0` works too), starts the
workers, restarts one that dies, and on SIGTERM/SIGINT stops them all.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from typing import Any

from fe.config import Settings, as_environment
from fe.server.app import prepare_home

log = logging.getLogger("fe.workers")

_RESTART_DELAY_SECONDS = 1.0


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind (without listening) with SO_REUSEPORT, so the workers can bind the same, now known, port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def worker_command(settings: Settings, port: int, index: int, count: int) -> list[str]:
    return [
        sys.executable, "-m", "fe.cli", "serve",
        "--home", str(settings.home), "--host", settings.host, "--port", str(port),
        "--worker-index", str(index), "--worker-count", str(count),
    ]  # fmt: skip


async def _run_worker(settings: Settings, port: int, index: int, count: int, ready: asyncio.Event,
                      stopping: asyncio.Event) -> None:  # fmt: skip
    while not stopping.is_set():
        process = await asyncio.create_subprocess_exec(
            *worker_command(settings, port, index, count),
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, **as_environment(settings)},
        )
        assert process.stdout is not None
        line = await process.stdout.readline()
        if line.startswith(b"ready"):
            ready.set()
        waiter = asyncio.ensure_future(process.wait())
        stop_waiter = asyncio.ensure_future(stopping.wait())
        await asyncio.wait({waiter, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
        if stopping.is_set():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(waiter, settings.shutdown_grace_seconds + 2)
            except TimeoutError:
                process.kill()
                await waiter
            return
        stop_waiter.cancel()
        log.error("worker %d exited with code %s; restarting it", index, process.returncode)
        if not ready.is_set():
            stopping.set()  # it never became ready: a start-up error, not worth a restart loop
            return
        await asyncio.sleep(_RESTART_DELAY_SECONDS)


async def supervise(settings: Settings) -> int:
    prepare_home(settings)
    reservation = reserve_port(settings.host, settings.query_port)
    port = reservation.getsockname()[1]
    stopping = asyncio.Event()
    signalled = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        signalled.set()
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    readies = [asyncio.Event() for _ in range(settings.workers)]
    tasks = [
        asyncio.create_task(_run_worker(settings, port, i, settings.workers, readies[i], stopping))
        for i in range(settings.workers)
    ]
    ready_all: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*(r.wait() for r in readies)))
    stop_waiter: asyncio.Future[Any] = asyncio.ensure_future(stopping.wait())
    await asyncio.wait({ready_all, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
    reservation.close()
    became_ready = ready_all.done()
    if became_ready:
        log.info("fe ready: %d workers accepting MySQL connections on %s:%d", settings.workers, settings.host, port)
    else:
        ready_all.cancel()
        await asyncio.gather(ready_all, return_exceptions=True)
    await asyncio.gather(*tasks)
    stop_waiter.cancel()
    # Stopped by a signal is a clean exit, even before every worker was ready; a worker that could not start is not.
    return 0 if became_ready or signalled.is_set() else 1
