"""One run: start the servers, measure phase by phase in interleaved rounds, optionally profile fe, stop."""

from __future__ import annotations

import asyncio
import datetime
import importlib.util
import os
import platform
import shutil
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from scripts.bench.fe_server import REPO_ROOT
from scripts.bench.gateway import measure, profile
from scripts.bench.gateway.measure import Client, Plan, ordered, say
from scripts.bench.gateway.results import (
    DIRECT,
    FE,
    FE_2W,
    FE_ASYNCIO,
    FE_FRESH,
    FE_SOCKET,
    BenchmarkResult,
    Environment,
)
from scripts.bench.gateway.servers import DATABASE, Stack, running_stack
from scripts.bench.mysqlwire import client_tls_context

# The large result comes first: fe's "idle" memory is then that of a server that has done nothing but log its
# users in, not one whose heap earlier phases already grew (freed memory is reused without growing RSS).
PHASES = ("stream", "latency", "qps", "logins", "big")
PROFILE_SECONDS = 4.0


@dataclass
class Options:
    plan: Plan = field(default_factory=Plan)
    command: str = "python -m scripts.bench.gateway"
    with_asyncio: bool = True
    with_workers: bool = True
    with_socket: bool = True  # fe-socket: fe's leg to MariaDB over its Unix socket (latency and qps phases)
    work_tree: bool = False  # run fe as it is in the work tree, not as committed
    fe_commit: str = "HEAD"  # the commit whose fe/ runs (unless work_tree)
    install: bool = True
    keep: bool = False
    profile_dir: Path | None = None
    phases: tuple[str, ...] = PHASES


def new_client_loop() -> asyncio.AbstractEventLoop:
    """The clients' event loop: uvloop when installed (less of the 2 cores goes to the client), else asyncio's."""
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def client_loop_name() -> str:
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        return f"uvloop {uvloop.__version__}"
    return "asyncio"


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def describe_commit(work_tree: bool, fe_commit: str = "HEAD") -> str:
    commit = _git("rev-parse", "--short=12", "HEAD") or "unknown"
    if not work_tree:
        fe = _git("rev-parse", "--short=12", fe_commit) or fe_commit
        return f"{fe} (fe/ as committed there)" if fe == commit else f"{commit}; fe/ as committed in {fe}"
    changed = _git("status", "--porcelain", "--", "fe")
    if changed:
        return f"{commit} with {len(changed.splitlines())} uncommitted change(s) under fe/ (the work tree's fe ran)"
    return commit


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment(options: Options, stack: Stack) -> Environment:
    load = os.getloadavg()
    return Environment(
        command=options.command,
        commit=describe_commit(options.work_tree, options.fe_commit),
        date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        cpu=_cpu_model(),
        cores=os.cpu_count() or 1,
        python=platform.python_version(),
        openssl=ssl.OPENSSL_VERSION,
        mariadb=stack.mariadb.version,
        client_loop=client_loop_name(),
        notes=(
            f"load average at the start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min)",
            "the client process, fe and MariaDB share the cores (nothing pinned) with whatever else runs",
        ),
    )


def run_benchmark(options: Options) -> BenchmarkResult:
    fe_targets = [FE]
    if options.with_asyncio:
        fe_targets.append(FE_ASYNCIO)
    if "logins" in options.phases:
        fe_targets.append(FE_FRESH)
    if options.with_workers and "qps" in options.phases:
        fe_targets.append(FE_2W)
    if options.with_socket and {"qps", "latency"} & set(options.phases):
        fe_targets.append(FE_SOCKET)
    started = time.monotonic()
    say(f"starting MariaDB and fe ({', '.join(fe_targets)}) ...")
    commit = None if options.work_tree else _git("rev-parse", options.fe_commit)
    if not options.work_tree and not commit:
        raise RuntimeError(f"no commit {options.fe_commit!r} in this repository")
    with running_stack(fe_targets, commit=commit, install=options.install, keep=options.keep) as stack:
        result = BenchmarkResult(environment(options, stack), rounds=options.plan.rounds)
        with asyncio.Runner(loop_factory=new_client_loop) as runner:
            runner.run(_measure(stack, options, result))
    say(f"done in {time.monotonic() - started:.0f} s")
    return result


async def _measure(stack: Stack, options: Options, result: BenchmarkResult) -> None:
    plan = options.plan
    tls = client_tls_context()
    targets = [DIRECT, FE] + ([FE_ASYNCIO] if options.with_asyncio else [])
    clients = {target: Client(stack, target, tls) for target in [DIRECT, *stack.fe]}
    fe_pid = stack.fe_pid(FE)
    assert fe_pid is not None
    result.fe_rss_start = stack.rss(fe_pid)
    result.qps_clients = plan.qps_clients
    result.stream_statement = measure.stream_statement(plan.stream_rows)
    big = measure.big_statement(plan.big_statement_items)
    result.big_statement_bytes = len(big)
    try:
        if "stream" in options.phases:
            say(f"large result: {result.stream_statement}")
            for r in range(plan.rounds):
                for target in ordered(targets, r):
                    streamed = await measure.stream(clients[target], r, plan.stream_rows, DATABASE)
                    result.stream.append(streamed)
                    rss = f"  fe RSS +{streamed.rss_growth / 2**20:.1f} MiB" if target != DIRECT else ""
                    say(f"  round {r} {target:10} {streamed.mb_per_s:7.0f} MB/s{rss}")
            stall = (plan.stall_after_bytes, plan.stall_seconds)
            result.stall_seconds = plan.stall_seconds
            for target in targets[1:]:
                streamed = await measure.stream(clients[target], 0, plan.stream_rows, DATABASE, stall)
                result.stalled.append(streamed)
                say(f"  stalled client {target:10} fe RSS +{streamed.rss_growth / 2**20:.1f} MiB")
        if "latency" in options.phases:
            say(f"latency: SELECT 1, 1 client, {plan.latency_count} round trips per target and round")
            latency_targets = targets + ([FE_SOCKET] if FE_SOCKET in stack.fe else [])
            for r in range(plan.rounds):
                for target in ordered(latency_targets, r):
                    item = await measure.latency(
                        clients[target], r, "SELECT 1", plan.latency_count, plan.latency_warmup, DATABASE
                    )
                    result.latency.append(item)
                    say(f"  round {r} {target:10} median {item.median_us:7.1f} µs  p99 {item.p99_us:7.1f} µs")
        if "qps" in options.phases:
            say(f"throughput: SELECT 1, {plan.qps_clients} clients, {plan.qps_seconds:g} s per target and round")
            qps_targets = targets + [t for t in (FE_SOCKET, FE_2W) if t in stack.fe]
            pools = {t: await measure.open_many(clients[t], plan.qps_clients, DATABASE) for t in qps_targets}
            try:
                for r in range(plan.rounds):
                    for target in ordered(qps_targets, r):
                        qps = await measure.qps(
                            clients[target], pools[target], r, "SELECT 1", plan.qps_warmup_seconds, plan.qps_seconds
                        )
                        result.qps.append(qps)
                        say(
                            f"  round {r} {target:10} {qps.qps:8.0f} q/s  fe {qps.per_query_us(qps.fe_cpu_s):5.1f} "
                            f"µs/q  MariaDB {qps.per_query_us(qps.mariadb_cpu_s):5.1f} µs/q  errors {qps.errors}"
                        )
            finally:
                for connections in pools.values():
                    await measure.close_all(connections)
        if "logins" in options.phases:
            login_targets = [DIRECT, FE, FE_FRESH]
            say(f"logins: 1 client, {plan.logins} in a row per target and round")
            for target in login_targets:
                await measure.logins(clients[target], -1, plan.login_warmup)
            for r in range(plan.rounds):
                for target in ordered(login_targets, r):
                    login = await measure.logins(clients[target], r, plan.logins)
                    result.logins.append(login)
                    say(
                        f"  round {r} {target:10} median {login.median_ms:6.2f} ms  p99 {login.p99_ms:6.2f} ms  "
                        f"upstream connections {login.upstream_connections}/{login.count}  errors {login.errors}"
                    )
        if "big" in options.phases:
            say(f"a {len(big) // 1000} KB statement of {plan.big_statement_items} numbers, 1 client")
            latency_targets = targets + ([FE_SOCKET] if FE_SOCKET in stack.fe else [])
            for r in range(plan.rounds):
                for target in ordered(latency_targets, r):
                    item = await measure.latency(clients[target], r, big, plan.big_statement_count, 2, DATABASE)
                    result.big_statement.append(item)
                    say(f"  round {r} {target:10} median {item.median_us / 1000:7.2f} ms")
        if options.profile_dir is not None:
            await _profile(stack, clients, options, result)
    finally:
        for client in clients.values():
            await client.close()


def start_py_spy(pid: int, seconds: float, raw: Path) -> subprocess.Popen[bytes] | None:
    """py-spy on fe, counting only samples that hold the GIL (--gil): fe's Python work. A sample in a system call
    (send, recv, epoll) is left out, and so is one where fe was runnable but another process had the core, which
    otherwise shows up as time in send() (the wake-up of the receiving process can preempt the sender at once)."""
    binary = shutil.which("py-spy")
    if binary is None:
        return None
    command = [binary, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", "500"]
    command += ["--gil", "--format", "raw", "--output", str(raw)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def _profile(stack: Stack, clients: dict[str, Client], options: Options, result: BenchmarkResult) -> None:
    """py-spy on fe during more of the same load (not during the measured windows: sampling costs CPU)."""
    directory = options.profile_dir
    assert directory is not None
    directory.mkdir(parents=True, exist_ok=True)
    plan = options.plan
    client = clients[FE]
    pid = stack.fe_pid(FE)
    assert pid is not None

    async def qps_load() -> None:
        connections = await measure.open_many(client, plan.qps_clients, DATABASE)
        try:
            await measure.qps(client, connections, -1, "SELECT 1", 0.2, PROFILE_SECONDS + 1)
        finally:
            await measure.close_all(connections)

    async def latency_load() -> None:
        deadline = time.monotonic() + PROFILE_SECONDS + 1
        while time.monotonic() < deadline:
            await measure.latency(client, -1, "SELECT 1", 500, 0, DATABASE)

    async def stream_load() -> None:
        deadline = time.monotonic() + PROFILE_SECONDS + 1
        while time.monotonic() < deadline:
            await measure.stream(client, -1, plan.stream_rows, DATABASE)

    loads: dict[str, Callable[[], Awaitable[None]]] = {"latency": latency_load, "qps": qps_load, "stream": stream_load}
    for phase, load in loads.items():
        raw = directory / f"fe-{phase}.txt"
        spy = start_py_spy(pid, PROFILE_SECONDS, raw)
        if spy is None:
            result.profiles[phase] = "py-spy is not installed (pip install py-spy)"
            return
        say(f"profiling fe (py-spy) during {phase} load ...")
        await asyncio.sleep(0.5)  # py-spy attaches
        await load()
        _, error = spy.communicate(timeout=60)
        if spy.returncode != 0 or not raw.exists():
            result.profiles[phase] = f"py-spy failed: {error.decode(errors='replace').strip()[-500:]}"
            continue
        summary = profile.render(raw.read_text(errors="replace"))
        (directory / f"fe-{phase}-summary.txt").write_text(summary + "\n")
        result.profiles[phase] = summary
