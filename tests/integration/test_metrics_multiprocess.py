"""Metrics across worker processes (prometheus_client's multiprocess mode): two real processes write to one
directory and serve HTTP on one port (SO_REUSEPORT), and whichever answers /metrics reports both; a dead one's
gauges go once the supervisor marks it dead, its counters stay."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fe.server.metrics import (
    MULTIPROCESS_ENV,
    Metrics,
    mark_worker_dead,
    multiprocess_environment,
    prepare_multiprocess_dir,
)

REPO = Path(__file__).resolve().parents[2]

# A stand-in for a worker: records `logins` logins and one open connection, copies in token-verifier counters
# that scale with `logins`, serves /metrics and /readyz on `port` (0: a free one) until its stdin closes.
WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from fe.server.http import HttpListener, Readiness
    from fe.server.metrics import Metrics

    async def main(name: str, logins: int, port: int) -> None:
        stats = {"token_cache_size": logins, "jwks_fetches": {"https://idp/jwks": logins},
                 "jwks_key_age_seconds": {"https://idp/jwks": 10.0 * logins}}
        metrics = Metrics(token_stats=lambda: stats)
        for _ in range(logins):
            metrics.login("caching_sha2_password", "success", "ok", 0.002)
        metrics.connection_counts = lambda: (1, 1)  # one connection accepted, open now
        metrics.sync()

        async def readiness() -> Readiness:
            return Readiness(False, name)

        listener = HttpListener(metrics, readiness)
        host, bound = await listener.start("127.0.0.1", port, reuse_port=True)
        print(bound, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await listener.close()

    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
    """
)


def start_worker(directory: Path, name: str, logins: int, port: int) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER, name, str(logins), str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, **multiprocess_environment(directory)},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.kill()
        raise RuntimeError(f"worker {name} did not start")
    return process, int(line)


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def scrape(port: int) -> dict[str, float]:
    """The unlabelled samples, and the logins counter of the one label set the workers use."""
    response = httpx.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if not sample.labels or sample.name in ("fe_logins_total", "fe_login_duration_seconds_count"):
                samples[sample.name] = sample.value
    return samples


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "meta" / "metrics"
    path.mkdir(parents=True)
    (path / "counter_999999.db").write_bytes(b"left over from an earlier run, and not a metrics file")
    prepare_multiprocess_dir(path)
    assert list(path.iterdir()) == [] and path.stat().st_mode & 0o777 == 0o700
    yield path


def test_two_workers_one_directory(directory: Path) -> None:
    first, port = start_worker(directory, "first", 7, 0)
    second, second_port = start_worker(directory, "second", 5, port)
    try:
        assert second_port == port
        reasons = set()
        for _ in range(40):
            samples = scrape(port)
            assert samples["fe_logins_total"] == 12
            assert samples["fe_login_duration_seconds_count"] == 12
            assert samples["fe_connections_accepted_total"] == 2
            assert samples["fe_connections_open"] == 2  # summed over the living
            assert samples["fe_token_cache_entries"] == 12
            assert samples["fe_jwks_fetches_total"] == 12
            assert samples["fe_jwks_oldest_key_set_age_seconds"] == 70.0  # the oldest of all
            assert "process_resident_memory_bytes" not in samples  # one process's own would mislead
            reasons.add(httpx.get(f"http://127.0.0.1:{port}/readyz").text)
        assert reasons == {"not ready: first\n", "not ready: second\n"}, "both workers serve the port"

        stop(first)
        mark_worker_dead(first.pid, directory)
        samples = scrape(port)
        assert samples["fe_logins_total"] == 12  # a dead worker's counts stay in the totals
        assert samples["fe_connections_accepted_total"] == 2
        assert samples["fe_connections_open"] == 1
        assert samples["fe_token_cache_entries"] == 5
        assert samples["fe_jwks_oldest_key_set_age_seconds"] == 50.0
    finally:
        stop(first)
        stop(second)


def test_multiprocess_mode_must_be_chosen_before_import(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # This process imported prometheus_client without the variable: its values live in memory, not in files.
    monkeypatch.setenv(MULTIPROCESS_ENV, str(tmp_path))
    with pytest.raises(RuntimeError, match="before prometheus_client is imported"):
        Metrics()
