"""One measured login storm: clients loop connect → TLS → login → SELECT 1 → quit; the server's CPU is sampled
from its own counters exactly at the window's start and end."""

from __future__ import annotations

import math
import time

from scripts.bench import procstats
from scripts.bench.loadgen import LoadGenerator, StormJob
from scripts.bench.mysqlwire import Credential
from scripts.bench.results import Case, CaseRun

LEAD_IN_SECONDS = 0.3  # time for the job to reach the workers before the window opens


def run_storm(
    generator: LoadGenerator,
    server_pid: int,
    case: Case,
    host: str,
    port: int,
    user: str,
    credential: Credential | None,
    clients: int,
    seconds: float,
) -> CaseRun:
    start_at = time.monotonic() + LEAD_IN_SECONDS
    end_at = start_at + seconds
    busy = generator.start_storm(StormJob(host, port, user, credential, clients, start_at, end_at))
    time.sleep(max(0.0, start_at - time.monotonic()))
    before = procstats.sample(server_pid)
    machine_before = procstats.machine_busy_seconds()
    opened = time.monotonic()
    time.sleep(max(0.0, end_at - time.monotonic()))
    after = procstats.sample(server_pid)
    machine_after = procstats.machine_busy_seconds()
    closed = time.monotonic()
    results = generator.finish_storm(busy, end_at)
    latencies = sorted(1000 * latency for r in results for latency in r.login_latencies)
    return CaseRun(
        case=case,
        clients=clients,
        seconds=closed - opened,
        logins=sum(r.cycles for r in results),
        errors=sum(r.errors for r in results),
        server_cpu_seconds=after.cpu_seconds - before.cpu_seconds,
        machine_cpu_seconds=machine_after - machine_before,
        client_cpu_seconds=sum(r.cpu_seconds for r in results),
        server_rss_bytes=after.rss_bytes,
        latencies_ms=latencies,
        error_samples=[sample for r in results for sample in r.error_samples][:5],
        tokens_exhausted=any(r.tokens_exhausted for r in results),
    )


def warm_up(
    generator: LoadGenerator,
    host: str,
    port: int,
    user: str,
    credential: Credential | None,
    clients: int,
    seconds: float,
) -> tuple[int, int, list[str]]:
    """An unmeasured storm (fills per-process caches, e.g. caching_sha2_password's fast path); (logins, errors)."""
    start_at = time.monotonic() + LEAD_IN_SECONDS
    end_at = start_at + seconds
    busy = generator.start_storm(StormJob(host, port, user, credential, clients, start_at, end_at))
    results = generator.finish_storm(busy, end_at)
    return (
        sum(r.cycles for r in results),
        sum(r.errors for r in results),
        [s for r in results for s in r.error_samples][:5],
    )


def tokens_needed(expected_rate: float, seconds: float) -> int:
    """Enough distinct tokens for a storm at up to 1.5× the expected rate (plus a margin), split over workers."""
    return math.ceil(expected_rate * 1.5 * (seconds + LEAD_IN_SECONDS)) + 200
