"""The benchmark's arithmetic: interleaved rounds give medians, and the targets use them when they ran; reading
callgrind dumps and profiles."""

from __future__ import annotations

import os
import pstats
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.bench.report import render_markdown
from scripts.bench.results import BenchmarkRun, Case, CaseRun, Environment

FE_FRESH = Case("fe-token-fresh-es256", "fe token fresh ES256, 1 worker", "fe", 1, "token-fresh", "ES256")
MARIADB = Case("mariadb-password", "MariaDB password (mysql_native), TLS", "mariadb", 1, "password")


def storm(case: Case, cpu_ms: float, p99_ms: float, logins: int = 1000) -> CaseRun:
    latencies = sorted([p99_ms / 2] * 98 + [p99_ms] * 2)
    return CaseRun(
        case=case,
        clients=16,
        seconds=1.0,
        logins=logins,
        errors=0,
        server_cpu_seconds=cpu_ms * logins / 1000,
        client_cpu_seconds=0.5,
        server_rss_bytes=50 << 20,
        latencies_ms=latencies,
    )


def benchmark_run() -> BenchmarkRun:
    environment = Environment("cpu", 2, "3.11", "OpenSSL 3", "MariaDB", "abc", 1.0, (16,), "python -m scripts.bench")
    return BenchmarkRun(environment=environment, floor=None)


def test_rounds_take_the_median_and_the_targets_use_it() -> None:
    run = benchmark_run()
    run.runs.append(storm(FE_FRESH, cpu_ms=2.0, p99_ms=50))  # the sweep's window: ignored once rounds ran
    run.runs.append(storm(MARIADB, cpu_ms=0.5, p99_ms=40))
    for fe_cpu, maria_cpu in ((0.8, 0.70), (1.3, 0.72), (0.9, 0.68)):
        run.interleaved += [storm(FE_FRESH, fe_cpu, p99_ms=20), storm(MARIADB, maria_cpu, p99_ms=15)]
    rounds = {r.case.key: r for r in run.rounds()}
    assert rounds["fe-token-fresh-es256"].cpu_ms_per_login == pytest.approx(0.9)
    assert rounds["fe-token-fresh-es256"].cpu_ms_range == pytest.approx((0.8, 1.3))
    assert rounds["mariadb-password"].cpu_ms_per_login == pytest.approx(0.70)
    assert rounds["fe-token-fresh-es256"].p99_ms == 20
    by_name = {t.name.split(" (")[0]: t for t in run.targets()}
    mariadb_target = by_name["server CPU per token login ≤ 1/5 of MariaDB's per password login"]
    assert "0.900 ms (median of 3 rounds, 0.800–1.300)" in mariadb_target.measured
    assert "= 1.29× MariaDB" in mariadb_target.measured and mariadb_target.passed is False
    p99_target = next(t for t in run.targets() if t.name.startswith("p99"))
    assert p99_target.measured.startswith("20.0 ms") and p99_target.passed is False
    assert "Interleaved rounds at 16 clients" in render_markdown(run, None)


def test_without_rounds_the_targets_use_the_sweep() -> None:
    run = benchmark_run()
    run.runs += [storm(FE_FRESH, cpu_ms=0.1, p99_ms=8), storm(MARIADB, cpu_ms=0.6, p99_ms=9)]
    targets = run.targets()
    assert targets[0].passed is True and "0.100 ms (one window)" in targets[0].measured
    assert targets[2].passed is True and targets[2].measured == "8.0 ms (one window)"
    assert "Interleaved rounds" not in render_markdown(run, None)


def test_callgrind_dump_is_split_by_shared_object_without_counting_calls_twice() -> None:
    from scripts.bench.instructions import parse_callgrind

    dump = """\
version: 1
events: Ir
ob=(1) /usr/lib/libcrypto.so.3
fl=(1) ???
fn=(1) EC_POINT_mul
0 700
ob=(2) /usr/lib/libpython3.11.so.1.0
fn=(2) _PyEval_EvalFrameDefault
0 200
cob=(1)
cfn=(1)
calls=1 0
0 700
+1 50
totals: 950
"""
    counts = parse_callgrind(dump)
    assert counts.by_object == {"libcrypto.so.3": 700, "libpython3.11.so.1.0": 250}
    assert counts.total == 950


def test_callgrind_dump_gives_self_cost_and_calls_per_function() -> None:
    from scripts.bench.instructions import compare, parse_callgrind

    dump = """\
version: 1
events: Ir
ob=(1) /usr/lib/libssl.so.3
fl=(1) ???
fn=(1) SSL_read
0 40
ob=(2) /usr/lib/libpython3.11.so.1.0
fn=(2) _PyEval_EvalFrameDefault'2
0 200
cob=(1)
cfn=(1)
calls=3 0
0 120
fn=(2)
+1 50
cfn=(2)
calls=1 0
0 10
totals: 290
"""
    counts = parse_callgrind(dump)
    assert counts.by_function == {"SSL_read (libssl.so.3)": 40, "_PyEval_EvalFrameDefault (libpython3.11.so.1.0)": 250}
    assert counts.calls == {"SSL_read (libssl.so.3)": 3, "_PyEval_EvalFrameDefault (libpython3.11.so.1.0)": 1}
    assert counts.total == 290
    password = parse_callgrind(dump.replace("0 40", "0 20"))
    lines = compare(counts, password, n=2)
    assert lines[0].startswith("reused token / password = 0.000 M / 0.000 M = 1.074 (+0 k per login")
    assert lines[0].endswith("goal at most 1.05: not met)")
    assert "+0.0 k" in lines[2] and lines[2].endswith("SSL_read (libssl.so.3)")


def test_python_profiles_are_compared_by_the_functions_whose_calls_differ() -> None:
    from scripts.bench.instructions import PyFunction, compare_python

    reused = {"_verify (fe/auth/verifier.py:95)": PyFunction(10, 0.002), "poll": PyFunction(30, 0.001)}
    reused["same (fe/x.py:1)"] = PyFunction(10, 0.9)
    password = {"poll": PyFunction(20, 0.001), "same (fe/x.py:1)": PyFunction(10, 0.5)}
    lines = compare_python(reused, password, n=10, top=5)
    header = lines.index(next(line for line in lines if line.startswith("Python functions")))
    by_file = ["  +40000.0 µs  fe/x.py", "   +200.0 µs  fe/auth/verifier.py", "     +0.0 µs  (built-in)"]
    assert lines[1:header] == by_file
    assert len(lines) == header + 3  # the two functions whose calls differ; `same` is left out
    assert lines[header + 1].endswith("_verify (fe/auth/verifier.py:95)") and "+200.0 µs" in lines[header + 1]
    assert "calls   3.0 /   2.0" in lines[header + 2] and lines[header + 2].endswith("poll")


def test_a_round_without_logins_is_reported_not_dropped() -> None:
    run = benchmark_run()
    failed = storm(FE_FRESH, cpu_ms=0.9, p99_ms=20, logins=0)
    failed.errors = 7
    run.interleaved += [storm(FE_FRESH, 0.8, 20), failed, storm(FE_FRESH, 1.0, 20), storm(MARIADB, 0.7, 15)]
    rounds = run.rounds()[0]
    assert len(rounds.runs) == 3 and rounds.failed_rounds == 1 and rounds.errors == 7
    assert rounds.cpu_ms_per_login == pytest.approx(0.9)  # the median of the two rounds that measured
    assert "median of 2 rounds, 1 failed" in run.targets()[0].measured
    assert "| 3 (1 failed) |" in render_markdown(run, None)


def test_pyprofile_runs_a_module_and_profiles_between_the_signals(tmp_path: Path) -> None:
    from scripts.bench.fe_server import REPO_ROOT

    (tmp_path / "victim.py").write_text(
        "import os, signal, sys, time\n"
        "def before(): pass\n"
        "def during(): pass\n"
        "before()\n"
        "os.kill(os.getpid(), signal.SIGUSR1)\n"
        "time.sleep(0.05)\n"
        "for _ in range(3): during()\n"
        "os.kill(os.getpid(), signal.SIGUSR2)\n"
        "time.sleep(0.05)\n"
        "sys.exit(int(sys.argv[1]))\n"
    )
    out = tmp_path / "profile.out"
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{tmp_path}", "FE_BENCH_PROFILE_OUT": str(out)}
    command = [sys.executable, "-m", "scripts.bench.pyprofile", sys.executable, "-m", "victim", "3"]
    assert subprocess.run(command, env=env, timeout=60).returncode == 3  # the module's own exit status
    calls = {name: stat[1] for (_file, _line, name), stat in pstats.Stats(str(out)).stats.items()}  # type: ignore[attr-defined]
    assert calls.get("during") == 3 and "before" not in calls
    assert (tmp_path / "profile.out.started").exists()
