"""A real HAProxy (Debian's `haproxy`) in front of fe for tests: TCP mode, `send-proxy-v2` to the backends, and
an HTTP health check on fe's /readyz; on 127.0.0.1, a free port, stopped at the end."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.support.processes import free_port

HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)


@contextmanager
def running_haproxy(
    workdir: Path, backends: Sequence[tuple[int, int | None]], *, proxy: str = "send-proxy-v2", source: str = ""
) -> Iterator[int]:
    """HAProxy on a free port balancing over `backends` (MySQL port, HTTP port for a /readyz check or None);
    `source`: the address it connects to them from. Yields its port."""
    assert HAPROXY is not None, "haproxy is not installed"
    port = free_port()
    servers = []
    for index, (mysql_port, http_port) in enumerate(backends):
        check = f" check port {http_port} inter 300ms fall 2 rise 1" if http_port is not None else ""
        via = f" source {source}" if source else ""
        servers.append(f"    server fe{index} 127.0.0.1:{mysql_port} {proxy}{check}{via}")
    health = "    option httpchk GET /readyz\n" if any(http is not None for _, http in backends) else ""
    config = workdir / "haproxy.cfg"
    config.write_text(
        "global\n    log stdout format raw local0 warning\n"
        "defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n"
        f"frontend mysql\n    bind 127.0.0.1:{port}\n    default_backend fe\n"
        f"backend fe\n    balance roundrobin\n{health}" + "\n".join(servers) + "\n"
    )
    process = subprocess.Popen(
        [HAPROXY, "-f", str(config), "-db"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stdout.read() if process.stdout else ""
                    raise RuntimeError(f"haproxy did not start:\n{output}") from None
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
