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
from pathlib import Path
from typing import Any

from fe.config import Settings, as_environment
from fe.server.app import prepare_home
from fe.server.metrics import mark_worker_dead, multiprocess_environment, prepare_multiprocess_dir

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
                      stopping: asyncio.Event, env: dict[str, str]) -> None:  # fmt: skip
    while not stopping.is_set():
        process = await asyncio.create_subprocess_exec(
            *worker_command(settings, port, index, count), stdout=asyncio.subprocess.PIPE, env=env
        )
        try:
            await _watch_worker(settings, process, index, ready, stopping)
        finally:
            mark_worker_dead(process.pid, metrics_dir(settings))
        if stopping.is_set() or not ready.is_set():
            return
        await asyncio.sleep(_RESTART_DELAY_SECONDS)


def metrics_dir(settings: Settings) -> Path:
    """Where the workers' metrics meet (prometheus_client's multiprocess mode), made anew at each start."""
    return settings.meta_dir / "metrics"


async def _watch_worker(
    settings: Settings, process: asyncio.subprocess.Process, index: int, ready: asyncio.Event, stopping: asyncio.Event
) -> None:
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
    prepare_multiprocess_dir(metrics_dir(settings))
    env = {**os.environ, **as_environment(settings), **multiprocess_environment(metrics_dir(settings))}
    http_reservation = None
    if settings.http_port == 0:
        # One free port for all the workers' HTTP listeners (SO_REUSEPORT), like the MySQL port.
        http_reservation = reserve_port(settings.http_host, 0)
        env["FE_HTTP_PORT"] = str(http_reservation.getsockname()[1])
    tasks = [
        asyncio.create_task(_run_worker(settings, port, i, settings.workers, readies[i], stopping, env))
        for i in range(settings.workers)
    ]
    ready_all: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*(r.wait() for r in readies)))
    stop_waiter: asyncio.Future[Any] = asyncio.ensure_future(stopping.wait())
    await asyncio.wait({ready_all, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
    reservation.close()
    if http_reservation is not None:
        http_reservation.close()
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
