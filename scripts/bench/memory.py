"""Memory at scale: the server's resident memory while it holds N idle, authenticated TLS connections."""

from __future__ import annotations

import gc
import time

from scripts.bench import procstats
from scripts.bench.loadgen import HoldJob, LoadGenerator
from scripts.bench.mysqlwire import Credential
from scripts.bench.results import MemoryRun

SETTLE_SECONDS = 2.0


def measure_idle_connections(
    generator: LoadGenerator,
    server: str,
    server_pid: int,
    host: str,
    port: int,
    user: str,
    credential: Credential | None,
    count: int,
) -> MemoryRun:
    """RSS before, and while holding `count` connections opened from the load generator's processes; the
    connections are closed again before returning."""
    gc.collect()
    time.sleep(SETTLE_SECONDS / 2)
    before = procstats.sample(server_pid).rss_bytes
    try:
        results = generator.hold(HoldJob(host, port, user, credential, count))
        time.sleep(SETTLE_SECONDS)
        holding = procstats.sample(server_pid).rss_bytes
    finally:
        generator.release()
    return MemoryRun(
        server=server,
        connections_wanted=count,
        connections_opened=sum(r.opened for r in results),
        rss_before_bytes=before,
        rss_holding_bytes=holding,
        errors=sum(r.errors for r in results),
        error_samples=[s for r in results for s in r.error_samples][:5],
    )
