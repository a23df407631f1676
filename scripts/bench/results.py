"""What one benchmark run measured: per case and concurrency, the memory test, the crypto floor; and the targets."""

from __future__ import annotations

import math
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

    def find(self, key: str, clients: int) -> CaseRun | None:
        return next((r for r in self.runs if r.case.key == key and r.clients == clients), None)

    def targets(self) -> list[Target]:
        c = self.target_clients
        token = self.find("fe-token-fresh-es256", c)
        mariadb = self.find("mariadb-password", c)
        memory = next((m for m in self.memory if m.server == "fe"), None)
        targets = []
        if token and mariadb and token.logins and mariadb.logins:
            ratio = token.server_cpu_ms_per_login / mariadb.server_cpu_ms_per_login
            targets.append(
                Target(
                    f"server CPU per token login ≤ 1/5 of MariaDB's per password login ({c} clients)",
                    f"{token.server_cpu_ms_per_login:.3f} ms vs {mariadb.server_cpu_ms_per_login:.3f} ms "
                    f"= {ratio:.2f}× MariaDB",
                    "≤ 0.20×",
                    ratio <= 0.2,
                )
            )
        else:
            targets.append(Target("server CPU per token login ≤ 1/5 of MariaDB's", "not measured", "≤ 0.20×", None))
        if token and self.floor and token.logins:
            floor = self.floor.token_login_ms("ES256")
            ratio = token.server_cpu_ms_per_login / floor
            targets.append(
                Target(
                    f"server CPU per token login ≤ 5× the crypto floor ({c} clients)",
                    f"{token.server_cpu_ms_per_login:.3f} ms vs floor {floor:.3f} ms = {ratio:.1f}× floor",
                    "≤ 5×",
                    ratio <= 5,
                )
            )
        else:
            targets.append(Target("server CPU per token login ≤ 5× the crypto floor", "not measured", "≤ 5×", None))
        if token and token.logins:
            targets.append(
                Target(
                    f"p99 token-login latency at {c} clients", f"{token.p99_ms:.1f} ms", "≤ 10 ms", token.p99_ms <= 10
                )
            )
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
