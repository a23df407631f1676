"""The measurements, each run by one asyncio client process (this one) against a target: MariaDB directly, or an
fe in front of it. Every run is bounded by a count or a time window, every wait by a timeout."""

from __future__ import annotations

import asyncio
import ssl
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from scripts.bench import procstats
from scripts.bench.gateway import stats
from scripts.bench.gateway.results import LatencyRound, LoginRound, QpsRound, StreamRound
from scripts.bench.gateway.servers import Stack, peak_rss, reset_peak_rss
from scripts.bench.gateway.wire import BenchConnection
from scripts.bench.mysqlwire import Password, WireError

QUERY_TIMEOUT = 30.0
STREAM_TIMEOUT = 300.0
RSS_SAMPLE_SECONDS = 0.005


@dataclass(frozen=True)
class Plan:
    """How much of each measurement one run does."""

    rounds: int = 5
    latency_count: int = 4000  # round trips per target and round
    latency_warmup: int = 300
    qps_clients: int = 16
    qps_seconds: float = 3.0  # timed window per target and round
    qps_warmup_seconds: float = 0.5
    stream_rows: int = 200  # rows of 1,000,000 bytes
    stall_after_bytes: int = 20_000_000  # then one more result, its client pausing for stall_seconds after this many
    stall_seconds: float = 2.0
    logins: int = 100  # per target and round
    login_warmup: int = 10
    big_statement_count: int = 10
    big_statement_items: int = 11000


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ordered(targets: Sequence[str], round_index: int) -> list[str]:
    """The targets in this round's order: as given in even rounds, reversed in odd ones (so neither side is always
    the one measured right after the other)."""
    return list(targets) if round_index % 2 == 0 else list(reversed(targets))


def stream_statement(rows: int) -> str:
    return f"SELECT REPEAT('x', 1000000) FROM seq_1_to_{rows}"


def big_statement(items: int) -> str:
    """A statement of many tokens, as a multi-row INSERT is, that MariaDB answers cheaply: 1 IN (0, 1, ..., n-1)."""
    return "SELECT 1 IN (" + ",".join(str(i) for i in range(items)) + ")"


class Client:
    """The connections of one target: one for single-client runs, opened once and kept."""

    def __init__(self, stack: Stack, target: str, tls: ssl.SSLContext) -> None:
        self.stack = stack
        self.target = target
        self.tls = tls
        self.fe_pid = stack.fe_pid(target)
        self.main: BenchConnection | None = None

    async def open(self, database: str = "") -> BenchConnection:
        user, password = self.stack.credentials(self.target)
        connection = await BenchConnection.open(
            self.stack.host, self.stack.port(self.target), user, Password(password), self.tls, timeout=QUERY_TIMEOUT
        )
        assert isinstance(connection, BenchConnection)
        if database:
            await connection.query(f"USE {database}")
        return connection

    async def connection(self, database: str) -> BenchConnection:
        if self.main is None:
            self.main = await self.open(database)
            rows = await self.main.query("SELECT 1")
            if rows != [(b"1",)]:
                raise WireError(f"{self.target}: SELECT 1 answered {rows!r}")
        return self.main

    async def close(self) -> None:
        if self.main is not None:
            await self.main.quit()
            self.main = None


async def latency(client: Client, round_index: int, sql: str, count: int, warmup: int, database: str) -> LatencyRound:
    """`count` round trips of `sql`, one at a time on the already-open connection; each timed on its own."""
    connection = await client.connection(database)
    for _ in range(warmup):
        await connection.query(sql)
    stack = client.stack
    mariadb_pid = stack.mariadb.pid
    clock = time.perf_counter_ns
    samples: list[int] = []
    fe_cpu, mariadb_cpu = stack.cpu_seconds(client.fe_pid), stack.cpu_seconds(mariadb_pid)
    client_cpu, busy, begun = time.process_time(), procstats.machine_busy_seconds(), clock()
    for _ in range(count):
        started = clock()
        await connection.query(sql)
        samples.append(clock() - started)
    return LatencyRound(
        client.target,
        round_index,
        count,
        stats.median(samples) / 1000,
        stats.percentile(samples, 0.99) / 1000,
        stack.cpu_seconds(client.fe_pid) - fe_cpu,
        stack.cpu_seconds(mariadb_pid) - mariadb_cpu,
        (clock() - begun) / 1e9,
        time.process_time() - client_cpu,
        procstats.machine_busy_seconds() - busy,
    )


async def qps(
    client: Client,
    connections: list[BenchConnection],
    round_index: int,
    sql: str,
    warmup_seconds: float,
    seconds: float,
) -> QpsRound:
    """Every connection runs `sql` in a loop; the queries that complete inside the timed window are counted, and
    the CPU every process spent in it is read at its edges."""
    stack = client.stack
    clock = time.perf_counter
    window_start = clock() + warmup_seconds
    window_end = window_start + seconds
    errors = 0

    async def loop(connection: BenchConnection) -> int:
        nonlocal errors
        completed = 0
        while True:
            try:
                await connection.query(sql)
            except WireError:
                errors += 1
                return completed
            now = clock()
            if now >= window_end:
                return completed
            if now >= window_start:
                completed += 1

    def snapshot() -> tuple[float, float, float, float, float]:
        return (
            clock(),
            stack.cpu_seconds(client.fe_pid),
            stack.cpu_seconds(stack.mariadb.pid),
            time.process_time(),
            procstats.machine_busy_seconds(),
        )

    async def sample_edges() -> tuple[tuple[float, ...], tuple[float, ...]]:
        await asyncio.sleep(max(0.0, window_start - clock()))
        first = snapshot()
        await asyncio.sleep(max(0.0, window_end - clock()))
        return first, snapshot()

    sampler = asyncio.ensure_future(sample_edges())
    counts = await asyncio.gather(*(loop(connection) for connection in connections))
    first, last = await sampler
    return QpsRound(
        client.target,
        round_index,
        len(connections),
        seconds,
        sum(counts),
        errors,
        fe_cpu_s=last[1] - first[1],
        mariadb_cpu_s=last[2] - first[2],
        client_cpu_s=last[3] - first[3],
        machine_busy_s=last[4] - first[4],
    )


class RssSampler:
    """fe's RSS every few milliseconds from a thread, while a result streams through it."""

    def __init__(self, read: Callable[[], int]) -> None:
        self._read = read
        self._stop = threading.Event()
        self.peak = 0
        self.samples = 0
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                value = self._read()
            except Exception:  # the process went away: the run fails elsewhere
                return
            self.peak = max(self.peak, value)
            self.samples += 1
            self._stop.wait(RSS_SAMPLE_SECONDS)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)


async def stream(
    client: Client, round_index: int, rows: int, database: str, stall: tuple[int, float] | None = None
) -> StreamRound:
    """One large result to its end, counted as it streams; fe's RSS sampled meanwhile, and its peak kept by the
    kernel (VmHWM, reset just before). `stall`: the client stops reading for a while (see BenchConnection.stream)."""
    connection = await client.connection(database)
    stack = client.stack
    pid = client.fe_pid
    idle = stack.rss(pid) if pid else 0
    hwm_reset = bool(pid) and reset_peak_rss(pid)  # type: ignore[arg-type]
    fe_cpu, mariadb_cpu = stack.cpu_seconds(pid), stack.cpu_seconds(stack.mariadb.pid)
    if pid:
        with RssSampler(lambda: stack.rss(pid)) as sampler:
            streamed = await connection.stream(stream_statement(rows), STREAM_TIMEOUT, stall)
        sampled = sampler.peak
        hwm = peak_rss(pid) if hwm_reset else None
    else:
        streamed = await connection.stream(stream_statement(rows), STREAM_TIMEOUT, stall)
        sampled, hwm = 0, None
    if streamed.rows != rows or streamed.row_payload_bytes != rows * 1_000_004:
        raise WireError(f"{client.target}: the result had {streamed.rows} rows, {streamed.row_payload_bytes} bytes")
    return StreamRound(
        client.target,
        round_index,
        streamed.rows,
        streamed.wire_bytes,
        streamed.seconds,
        idle,
        sampled,
        hwm,
        stack.cpu_seconds(pid) - fe_cpu,
        stack.cpu_seconds(stack.mariadb.pid) - mariadb_cpu,
    )


async def logins(client: Client, round_index: int, count: int) -> LoginRound:
    """`count` logins in a row: each timed from just before connect() to the login's OK; then (untimed) which
    upstream connection the session got (CONNECTION_ID() is the upstream's id through fe) and COM_QUIT."""
    clock = time.perf_counter
    latencies: list[float] = []
    ids: set[bytes | None] = set()
    errors = 0
    for _ in range(count):
        started = clock()
        try:
            connection = await client.open()
        except WireError:
            errors += 1
            continue
        latencies.append(clock() - started)
        try:
            rows = await connection.query("SELECT CONNECTION_ID()")
            ids.add(rows[0][0])
        except WireError:
            errors += 1
        await connection.quit()
    if not latencies:
        raise WireError(f"{client.target}: every login failed")
    return LoginRound(
        client.target,
        round_index,
        len(latencies),
        1000 * stats.median(latencies),
        1000 * stats.percentile(latencies, 0.99),
        len(ids),
        errors,
    )


async def open_many(client: Client, count: int, database: str) -> list[BenchConnection]:
    connections = await asyncio.gather(*(client.open(database) for _ in range(count)))
    return list(connections)


async def close_all(connections: list[BenchConnection]) -> None:
    await asyncio.gather(*(connection.quit() for connection in connections))
