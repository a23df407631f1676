"""What one benchmark run measured: per case and concurrency, the memory test, the crypto floor; and the targets."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from scripts.bench.crypto_floor import CryptoFloor

KIB = 1024
MIB = 1024 * 1024


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    server: str  # "fe" or "mariadb"
    workers: int  # fe worker processes (1 for MariaDB: one process, a thread per connection)
    credential: str  # "password", "token-fresh" or "token-reused"
    alg: str = ""  # token signature algorithm


@dataclass
class CaseRun:
    case: Case
    clients: int
    seconds: float
    logins: int
    errors: int
    server_cpu_seconds: float
    client_cpu_seconds: float
    server_rss_bytes: int
    machine_cpu_seconds: float = 0.0  # every process on the machine, for spotting background load
    latencies_ms: list[float] = field(repr=False, default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    tokens_exhausted: bool = False

    @property
    def logins_per_second(self) -> float:
        return self.logins / self.seconds if self.seconds > 0 else 0.0

    @property
    def server_cpu_ms_per_login(self) -> float:
        return 1000 * self.server_cpu_seconds / self.logins if self.logins else math.inf

    @property
    def server_cores(self) -> float:
        return self.server_cpu_seconds / self.seconds if self.seconds > 0 else 0.0

    @property
    def client_cores(self) -> float:
        return self.client_cpu_seconds / self.seconds if self.seconds > 0 else 0.0

    @property
    def other_cores(self) -> float:
        """Busy cores that were neither the server nor the load generator (other work on the machine)."""
        if self.seconds <= 0:
            return 0.0
        return max(0.0, self.machine_cpu_seconds / self.seconds - self.server_cores - self.client_cores)

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies_ms, 0.50)

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_ms, 0.99)

    @property
    def max_ms(self) -> float:
        return self.latencies_ms[-1] if self.latencies_ms else 0.0


@dataclass
class MemoryRun:
    server: str
    connections_wanted: int
    connections_opened: int
    rss_before_bytes: int
    rss_holding_bytes: int
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    @property
    def bytes_per_connection(self) -> float:
        if not self.connections_opened:
            return math.inf
        return (self.rss_holding_bytes - self.rss_before_bytes) / self.connections_opened


@dataclass(frozen=True)
class Rounds:
    """One case's runs in the interleaved rounds: the same storm repeated, taking turns with the other cases, so
    a drift in the shared machine's speed reaches every case alike."""

    case: Case
    runs: list[CaseRun]

    @property
    def measured(self) -> list[CaseRun]:
        """The rounds in which logins completed (a round with none counts in `errors` and `failed_rounds`)."""
        return [r for r in self.runs if r.logins]

    @property
    def failed_rounds(self) -> int:
        return len(self.runs) - len(self.measured)

    @property
    def cpu_ms_per_login(self) -> float:
        """The median round's server CPU per login."""
        return statistics.median(r.server_cpu_ms_per_login for r in self.measured)

    @property
    def cpu_ms_range(self) -> tuple[float, float]:
        values = [r.server_cpu_ms_per_login for r in self.measured]
        return min(values), max(values)

    @property
    def logins_per_second(self) -> float:
        return statistics.median(r.logins_per_second for r in self.runs)

    @property
    def latencies_ms(self) -> list[float]:
        return sorted(latency for r in self.runs for latency in r.latencies_ms)

    @property
    def p99_ms(self) -> float:
        """p99 over every login of every round."""
        return percentile(self.latencies_ms, 0.99)

    @property
    def p99_ms_range(self) -> tuple[float, float]:
        values = [r.p99_ms for r in self.measured]
        return min(values), max(values)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.runs)


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    goal: str
    passed: bool | None  # None: could not be measured in this run

    @property
    def verdict(self) -> str:
        return "n/a" if self.passed is None else ("PASS" if self.passed else "MISS")


@dataclass
class Environment:
    cpu_model: str
    cores: int
    python: str
    openssl: str
    mariadb: str
    fe_commit: str
    seconds_per_case: float
    concurrency: tuple[int, ...]
    command: str


@dataclass
class BenchmarkRun:
    environment: Environment
    floor: CryptoFloor | None
    runs: list[CaseRun] = field(default_factory=list)
    memory: list[MemoryRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    target_clients: int = 16
    # The target comparison again, in rounds that take turns between the cases (see Rounds).
    interleaved: list[CaseRun] = field(default_factory=list)

    def find(self, key: str, clients: int) -> CaseRun | None:
        return next((r for r in self.runs if r.case.key == key and r.clients == clients), None)

    def rounds(self) -> list[Rounds]:
        """The interleaved rounds, one entry per case, in the order the cases took turns."""
        cases = list(dict.fromkeys(r.case for r in self.interleaved))
        return [Rounds(case, [r for r in self.interleaved if r.case == case]) for case in cases]

    def _target_figures(self, key: str) -> tuple[float, float, str] | None:
        """(CPU ms per login, p99 ms, where from) for a target case: the medians of the interleaved rounds when
        they ran, else the sweep's window at the target concurrency."""
        rounds = next((r for r in self.rounds() if r.case.key == key and r.runs), None)
        if rounds is not None:
            if not rounds.measured:
                return None  # every round failed: not measured (the rounds table shows the errors)
            low, high = rounds.cpu_ms_range
            failed = f", {rounds.failed_rounds} failed" if rounds.failed_rounds else ""
            where = f"median of {len(rounds.measured)} rounds{failed}, {low:.3f}–{high:.3f}"
            return rounds.cpu_ms_per_login, rounds.p99_ms, where
        run = self.find(key, self.target_clients)
        if run is not None and run.logins:
            return run.server_cpu_ms_per_login, run.p99_ms, "one window"
        return None

    def targets(self) -> list[Target]:
        c = self.target_clients
        token = self._target_figures("fe-token-fresh-es256")
        mariadb = self._target_figures("mariadb-password")
        memory = next((m for m in self.memory if m.server == "fe"), None)
        targets = []
        if token and mariadb:
            ratio = token[0] / mariadb[0]
            targets.append(
                Target(
                    f"server CPU per token login ≤ 1/5 of MariaDB's per password login ({c} clients)",
                    f"{token[0]:.3f} ms ({token[2]}) vs {mariadb[0]:.3f} ms ({mariadb[2]}) = {ratio:.2f}× MariaDB",
                    "≤ 0.20×",
                    ratio <= 0.2,
                )
            )
        else:
            targets.append(Target("server CPU per token login ≤ 1/5 of MariaDB's", "not measured", "≤ 0.20×", None))
        if token and self.floor:
            floor = self.floor.token_login_ms("ES256")
            ratio = token[0] / floor
            targets.append(
                Target(
                    f"server CPU per token login ≤ 5× the crypto floor ({c} clients)",
                    f"{token[0]:.3f} ms ({token[2]}) vs floor {floor:.3f} ms = {ratio:.1f}× floor",
                    "≤ 5×",
                    ratio <= 5,
                )
            )
        else:
            targets.append(Target("server CPU per token login ≤ 5× the crypto floor", "not measured", "≤ 5×", None))
        if token:
            where = "every login of the rounds" if "rounds" in token[2] else "one window"
            measured = f"{token[1]:.1f} ms ({where})"
            targets.append(Target(f"p99 token-login latency at {c} clients", measured, "≤ 10 ms", token[1] <= 10))
        else:
            targets.append(Target(f"p99 token-login latency at {c} clients", "not measured", "≤ 10 ms", None))
        if memory and memory.connections_opened:
            per = memory.bytes_per_connection / KIB
            targets.append(
                Target(
                    f"RSS per idle authenticated TLS connection ({memory.connections_opened} connections)",
                    f"{per:.1f} KiB",
                    "≤ 64 KiB",
                    per <= 64,
                )
            )
        else:
            targets.append(Target("RSS per idle authenticated TLS connection", "not measured", "≤ 64 KiB", None))
        return targets
