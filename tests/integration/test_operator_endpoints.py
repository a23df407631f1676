"""The operator's HTTP listener of a real `fe serve`: /metrics in Prometheus' text format (read back with
prometheus_client's own parser) moves with the logins made; /healthz and /readyz answer for a health check;
with --workers, any worker's /metrics counts every worker's logins."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT_PASSWORD
from tests.support.clients import ALL_CLIENTS
from tests.support.server import running_fe


def _logins(port: int) -> dict[tuple[str, str], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "fe_logins":
            for sample in family.samples:
                if sample.name == "fe_logins_total":
                    key = (sample.labels["outcome"], sample.labels["reason"])
                    counts[key] = counts.get(key, 0) + sample.value
    return counts


def test_metrics_move_with_logins_and_health_answers(tmp_path: Path) -> None:
    env = {"FE_ROOT_PASSWORD": ROOT_PASSWORD, "FE_HTTP_PORT": "0"}
    with running_fe(tmp_path, env=env) as server:
        port = server.http_port()
        before = _logins(port)
        for _ in range(3):
            assert ALL_CLIENTS["pymysql"](server.host, server.port, "root", ROOT_PASSWORD).ok
        assert ALL_CLIENTS["pymysql"](server.host, server.port, "root", "wrong").errno == 1045
        after = _logins(port)
        assert after.get(("success", "ok"), 0) - before.get(("success", "ok"), 0) == 3
        assert after.get(("failure", "bad_password"), 0) - before.get(("failure", "bad_password"), 0) == 1
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text


def test_every_worker_reports_all_workers_logins(tmp_path: Path) -> None:
    env = {"FE_ROOT_PASSWORD": ROOT_PASSWORD, "FE_HTTP_PORT": "0"}
    with running_fe(tmp_path, extra_args=["--workers", "2"], env=env) as server:
        port = server.http_port()
        for _ in range(8):  # SO_REUSEPORT spreads these over both workers
            assert ALL_CLIENTS["pymysql"](server.host, server.port, "root", ROOT_PASSWORD).ok
        for _ in range(4):  # whichever worker answers, it counts all of them
            assert _logins(port).get(("success", "ok"), 0) >= 8
