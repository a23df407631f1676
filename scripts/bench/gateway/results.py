"""What one run of the gateway benchmark measured, round by round, and the verdict on each goal of issue 12."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from scripts.bench.gateway import stats

MIB = 1024 * 1024
MB = 1_000_000

DIRECT = "direct"  # the client talking to MariaDB itself
FE = "fe"  # the client talking to fe (its defaults: uvloop), which relays to the same MariaDB (the goals' target)
FE_ASYNCIO = "fe-asyncio"  # the same, fe with event_loop = asyncio, the standard library's loop (for information)
FE_FRESH = "fe-fresh"  # fe whose pool never reuses a connection (upstream_pool_idle_seconds = 0): logins only
FE_2W = "fe-2workers"  # fe --workers 2 (for information, in the queries-per-second phase)
# fe's defaults with its upstream leg on MariaDB's Unix socket (no TCP, no TLS on that leg): a database on fe's host
FE_SOCKET = "fe-socket"

# The queries-per-second goal is judged for each way fe's leg can reach a MariaDB on the same machine.
QPS_LEGS = {
    FE: "fe → MariaDB over loopback TCP with TLS, verify_identity",
    FE_SOCKET: "fe → MariaDB over its Unix socket",
}

# The goals (issue 12, "Speed").
GOAL_ADDED_MEDIAN_US = 150.0
GOAL_QPS_RATIO = 0.6
GOAL_STREAM_RATIO = 0.7
GOAL_RSS_GROWTH_MIB = 20.0


@dataclass(frozen=True)
class LatencyRound:
    """`count` round trips of one statement on one already-open connection, one after another."""

    target: str
    round_index: int
    count: int
    median_us: float
    p99_us: float
    fe_cpu_s: float  # fe's process CPU (user + system) over the run (0 for direct: fe was idle)
    mariadb_cpu_s: float
    seconds: float = 0.0  # the run's wall-clock time
    client_cpu_s: float = 0.0
    machine_busy_s: float = 0.0  # all cores, from /proc/stat

    @property
    def fe_cpu_us_per_query(self) -> float:
        return 1e6 * self.fe_cpu_s / self.count if self.count else math.nan

    @property
    def other_cores(self) -> float:
        """Busy cores that were neither fe, MariaDB nor the client (see QpsRound.other_cores)."""
        return _other_cores(self.machine_busy_s, self.fe_cpu_s, self.mariadb_cpu_s, self.client_cpu_s, self.seconds)


def _other_cores(busy: float, fe: float, mariadb: float, client: float, seconds: float) -> float:
    if not seconds:
        return math.nan
    return max(0.0, busy - fe - mariadb - client) / seconds


@dataclass(frozen=True)
class QpsRound:
    """`clients` connections, each running the statement in a loop; what completed inside the timed window."""

    target: str
    round_index: int
    clients: int
    seconds: float
    queries: int
    errors: int
    fe_cpu_s: float
    mariadb_cpu_s: float
    client_cpu_s: float  # the benchmark process's own CPU: the clients
    machine_busy_s: float  # all cores, from /proc/stat

    @property
    def qps(self) -> float:
        return self.queries / self.seconds if self.seconds else math.nan

    def per_query_us(self, cpu_s: float) -> float:
        return 1e6 * cpu_s / self.queries if self.queries else math.nan

    @property
    def other_cores(self) -> float:
        """Busy cores that were neither fe, MariaDB nor the clients: non-zero means something else ran."""
        return _other_cores(self.machine_busy_s, self.fe_cpu_s, self.mariadb_cpu_s, self.client_cpu_s, self.seconds)


@dataclass(frozen=True)
class StreamRound:
    """One large result read to its end; fe's resident memory just before and its peak during it."""

    target: str
    round_index: int
    rows: int
    wire_bytes: int
    seconds: float
    fe_rss_idle: int = 0  # fe's RSS just before the statement was sent (bytes; 0 for direct)
    fe_rss_peak_sampled: int = 0  # the highest of fe's RSS samples taken during the result
    fe_rss_peak_hwm: int | None = None  # the kernel's high-water mark (VmHWM, reset just before), when readable
    fe_cpu_s: float = 0.0
    mariadb_cpu_s: float = 0.0

    @property
    def mb_per_s(self) -> float:
        return self.wire_bytes / MB / self.seconds if self.seconds else math.nan

    @property
    def rss_peak(self) -> int:
        """The exact peak when the kernel kept one, else the sampled one."""
        return self.fe_rss_peak_hwm if self.fe_rss_peak_hwm is not None else self.fe_rss_peak_sampled

    @property
    def rss_growth(self) -> int:
        return max(0, self.rss_peak - self.fe_rss_idle)


@dataclass(frozen=True)
class LoginRound:
    """`count` logins in a row by one client: connect → TLS → login → (untimed: which upstream connection it got,
    then COM_QUIT, waiting for the server to close)."""

    target: str
    round_index: int
    count: int
    median_ms: float
    p99_ms: float
    upstream_connections: int  # distinct upstream connection ids the sessions were given
    errors: int


@dataclass(frozen=True)
class Verdict:
    goal: str
    measured: str
    passed: bool | None  # None: measured, with no goal

    @property
    def word(self) -> str:
        return "—" if self.passed is None else "PASS" if self.passed else "MISS"


@dataclass(frozen=True)
class Environment:
    command: str
    commit: str
    date: str
    cpu: str
    cores: int
    python: str
    openssl: str
    mariadb: str
    client_loop: str
    notes: tuple[str, ...] = ()


@dataclass
class BenchmarkResult:
    environment: Environment
    rounds: int
    latency_statement: str = "SELECT 1"
    qps_clients: int = 16
    stream_statement: str = ""
    big_statement_bytes: int = 0
    latency: list[LatencyRound] = field(default_factory=list)
    qps: list[QpsRound] = field(default_factory=list)
    stream: list[StreamRound] = field(default_factory=list)
    # The same result while the client stops reading for a while: fe must stop reading MariaDB, not buffer.
    stalled: list[StreamRound] = field(default_factory=list)
    stall_seconds: float = 0.0
    logins: list[LoginRound] = field(default_factory=list)
    big_statement: list[LatencyRound] = field(default_factory=list)
    fe_rss_start: int = 0  # fe's RSS once started and its users created
    profiles: dict[str, str] = field(default_factory=dict)  # phase → py-spy summary

    def targets(self, items: list[LatencyRound] | list[QpsRound] | list[StreamRound] | list[LoginRound]) -> list[str]:
        seen: list[str] = []
        for item in items:
            if item.target not in seen:
                seen.append(item.target)
        return seen

    # ---- the comparisons the goals are about ----

    def added_latency_us(self, target: str = FE) -> list[float]:
        return stats.paired(self.latency, target, DIRECT, lambda r: r.median_us, stats.difference)

    def added_p99_us(self, target: str = FE) -> list[float]:
        return stats.paired(self.latency, target, DIRECT, lambda r: r.p99_us, stats.difference)

    def qps_ratios(self, target: str = FE) -> list[float]:
        return stats.paired(self.qps, target, DIRECT, lambda r: r.qps, stats.ratio)

    def stream_ratios(self, target: str = FE) -> list[float]:
        return stats.paired(self.stream, target, DIRECT, lambda r: r.mb_per_s, stats.ratio)

    def rss_growth_mib(self, target: str = FE) -> list[float]:
        return [r.rss_growth / MIB for r in [*self.stream, *self.stalled] if r.target == target]

    def added_big_statement_ms(self, target: str = FE) -> list[float]:
        return stats.paired(self.big_statement, target, DIRECT, lambda r: r.median_us / 1000, stats.difference)

    def verdicts(self) -> list[Verdict]:
        verdicts: list[Verdict] = []
        added = self.added_latency_us()
        if added:
            value = stats.median(added)
            low, high = stats.spread(added)
            p99 = stats.median(self.added_p99_us())
            verdicts.append(
                Verdict(
                    f"`{self.latency_statement}` round trip, 1 client: at most {GOAL_ADDED_MEDIAN_US:.0f} µs added "
                    "at the median",
                    f"{value:+.0f} µs at the median (rounds {low:+.0f} to {high:+.0f}); {p99:+.0f} µs at p99",
                    value <= GOAL_ADDED_MEDIAN_US,
                )
            )
        for target, leg in QPS_LEGS.items():
            ratios = self.qps_ratios(target)
            if not ratios:
                continue
            value = stats.median(ratios)
            low, high = stats.spread(ratios)
            verdicts.append(
                Verdict(
                    f"queries per second at {self.qps_clients} clients: at least {GOAL_QPS_RATIO:g}× direct ({leg})",
                    f"{value:.2f}× (rounds {low:.2f}–{high:.2f})",
                    value >= GOAL_QPS_RATIO,
                )
            )
        ratios = self.stream_ratios()
        if ratios:
            value = stats.median(ratios)
            low, high = stats.spread(ratios)
            verdicts.append(
                Verdict(
                    f"a {self._stream_size()} result's throughput: at least {GOAL_STREAM_RATIO:g}× direct",
                    f"{value:.2f}× (rounds {low:.2f}–{high:.2f})",
                    value >= GOAL_STREAM_RATIO,
                )
            )
        growth = self.rss_growth_mib()
        if growth:
            worst = max(growth)
            verdicts.append(
                Verdict(
                    f"fe's RSS during that result: under {GOAL_RSS_GROWTH_MIB:g} MiB above idle",
                    f"+{worst:.1f} MiB at the worst run (median +{stats.median(growth):.1f} MiB), a stalled client "
                    "included",
                    worst < GOAL_RSS_GROWTH_MIB,
                )
            )
        pooled = [r.median_ms for r in self.logins if r.target == FE]
        fresh = [r.median_ms for r in self.logins if r.target == FE_FRESH]
        direct = [r.median_ms for r in self.logins if r.target == DIRECT]
        if pooled or fresh:
            parts = []
            if pooled:
                parts.append(f"pooled {stats.median(pooled):.2f} ms")
            if fresh:
                parts.append(f"fresh upstream connection {stats.median(fresh):.2f} ms")
            if direct:
                parts.append(f"MariaDB directly {stats.median(direct):.2f} ms")
            verdicts.append(Verdict("a login through fe, including its upstream connection", "; ".join(parts), None))
        return verdicts

    def _stream_size(self) -> str:
        sizes = [r.wire_bytes for r in self.stream]
        return f"{round(stats.median(sizes) / MB)} MB" if sizes else "large"
