"""The whole benchmark run: crypto floor, fe (1 and 2 workers), MariaDB, memory at scale, profile, report."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scripts.bench import crypto_floor, fe_server, mariadb, memory, procstats, profile, storms
from scripts.bench.loadgen import LoadGenerator, MintSpec
from scripts.bench.mysqlwire import Credential, Password, Token
from scripts.bench.results import BenchmarkRun, Case, CaseRun, Environment, MemoryRun

FE_PASSWORD = Case("fe-password", "fe password (caching_sha2), 1 worker", "fe", 1, "password")
FE_TOKEN_REUSED = Case("fe-token-reused", "fe token reused (ES256), 1 worker", "fe", 1, "token-reused", "ES256")
FE_TOKEN_FRESH_ES = Case("fe-token-fresh-es256", "fe token fresh ES256, 1 worker", "fe", 1, "token-fresh", "ES256")
FE_TOKEN_FRESH_RS = Case("fe-token-fresh-rs256", "fe token fresh RS256, 1 worker", "fe", 1, "token-fresh", "RS256")
FE_TOKEN_FRESH_ES_UVLOOP = Case(
    "fe-token-fresh-es256-uvloop", "fe token fresh ES256, 1 worker, uvloop", "fe", 1, "token-fresh", "ES256"
)
FE2_TOKEN_REUSED = Case("fe2-token-reused", "fe token reused (ES256), 2 workers", "fe", 2, "token-reused", "ES256")
FE2_TOKEN_FRESH_ES = Case("fe2-token-fresh-es256", "fe token fresh ES256, 2 workers", "fe", 2, "token-fresh", "ES256")
MARIADB_PASSWORD = Case("mariadb-password", "MariaDB password (mysql_native), TLS", "mariadb", 1, "password")

Log = Callable[[str], None]


@dataclass
class Options:
    seconds: float = 5.0
    concurrency: tuple[int, ...] = (1, 4, 16, 64)
    generator_processes: int = 2
    warmup_seconds: float = 0.5
    memory_connections: int = 5000
    with_rs256: bool = True
    with_mariadb: bool = True
    install_mariadb: bool = True
    with_memory: bool = True
    with_mariadb_memory: bool = True
    profile_dir: Path | None = None
    profile_seconds: float = 8.0
    target_clients: int = 16
    # The target comparison again as rounds taking turns between fe and MariaDB (0: skip).
    interleaved_rounds: int = 5
    interleaved_seconds: float = 3.0
    command: str = "python -m scripts.bench"


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _environment(options: Options, mariadb_version: str) -> Environment:
    cpu_model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "-C", str(fe_server.REPO_ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    import ssl

    return Environment(
        cpu_model=cpu_model,
        cores=os.cpu_count() or 1,
        python=platform.python_version(),
        openssl=ssl.OPENSSL_VERSION,
        mariadb=mariadb_version or "not run",
        fe_commit=commit or "unknown",
        seconds_per_case=options.seconds,
        concurrency=options.concurrency,
        command=options.command,
    )


class Bench:
    def __init__(self, options: Options, base: Path, generator: LoadGenerator, log: Log = _log) -> None:
        self.options = options
        self.base = base
        self.generator = generator
        self.log = log
        self.result = BenchmarkRun(
            environment=_environment(options, ""), floor=None, target_clients=options.target_clients
        )
        self.signing_keys, self.jwks = fe_server.make_signing_keys(("ES256", "RS256"))
        self.reused_token = self._mint_one("ES256")
        self._stoppers: list[Callable[[], None]] = []

    # -- helpers

    def _key(self, alg: str) -> fe_server.SigningKey:
        return next(k for k in self.signing_keys if k.alg == alg)

    def _mint_spec(self, alg: str) -> MintSpec:
        key = self._key(alg)
        return MintSpec(key.private_key_pem, alg, key.kid, fe_server.token_claims(), count=0)

    def _mint_one(self, alg: str) -> str:
        from cryptography.hazmat.primitives import serialization

        from fe.auth.devtools import mint_token

        key = self._key(alg)
        private_key = serialization.load_pem_private_key(key.private_key_pem, password=None)
        now = int(time.time())
        claims = {**fe_server.token_claims(), "iat": now, "exp": now + 3600, "jti": "reused"}
        return mint_token(private_key, alg, key.kid, claims)  # type: ignore[arg-type]

    def stop_all(self) -> None:
        while self._stoppers:
            stop = self._stoppers.pop()
            try:
                stop()
            except Exception as exc:  # keep stopping the others
                self.log(f"while stopping a server: {exc!r}")

    def _credential(self, case: Case) -> Credential | None:
        if case.credential == "password":
            return Password(mariadb.BENCH_PASSWORD if case.server == "mariadb" else fe_server.PASSWORD)
        if case.credential == "token-reused":
            return Token(self.reused_token)
        return None  # fresh minted tokens

    def _user(self, case: Case) -> str:
        if case.server == "mariadb":
            return mariadb.BENCH_USER
        return fe_server.TOKEN_USER if case.credential.startswith("token") else fe_server.PASSWORD_USER

    # -- the parts

    def measure_floor(self) -> None:
        self.log("crypto floor: openssl speed ecdsap256 ecdhx25519 ed25519 rsa2048 (about 6 s)")
        try:
            floor = crypto_floor.measure()
            self.log("crypto floor: openssl s_server's CPU per TLS handshake (about 2 s)")
            handshake_ms = crypto_floor.measure_s_server_handshake()
            self.log("crypto floor: fe's TLS context in Python's ssl, 1000 in-memory handshakes (about 1 s)")
            python_ms = crypto_floor.measure_python_handshake()
            self.result.floor = crypto_floor.CryptoFloor(floor.speed, handshake_ms, python_ms)
        except (RuntimeError, ValueError, subprocess.SubprocessError) as exc:
            self.result.notes.append(f"crypto floor not measured: {exc}")

    def _warm_up(self, case: Case, host: str, port: int) -> None:
        credential = self._credential(case)
        warm_credential = credential if credential is not None else Token(self._mint_one(case.alg or "ES256"))
        logins, errors, samples = storms.warm_up(
            self.generator,
            host,
            port,
            self._user(case),
            warm_credential,
            min(4, max(self.options.concurrency)),
            self.options.warmup_seconds,
        )
        if logins == 0:
            raise RuntimeError(f"{case.label}: no login succeeded while warming up ({errors} errors: {samples})")

    def run_case(self, case: Case, pid: int, host: str, port: int) -> None:
        user = self._user(case)
        credential = self._credential(case)
        self._warm_up(case, host, port)
        for clients in self.options.concurrency:
            if credential is None:
                self._mint_for(case, clients)
            run = storms.run_storm(
                self.generator, pid, case, host, port, user, credential, clients, self.options.seconds
            )
            self.result.runs.append(run)
            self.log(_one_line(run))

    def _mint_for(self, case: Case, clients: int, seconds: float | None = None) -> None:
        reference_key = FE2_TOKEN_REUSED.key if case.workers == 2 else FE_TOKEN_REUSED.key
        reference = self.result.find(reference_key, clients)
        expected_rate = reference.logins_per_second if reference else 1500.0 * case.workers
        count = storms.tokens_needed(expected_rate, self.options.seconds if seconds is None else seconds)
        started = time.monotonic()
        minted = self.generator.mint(self._mint_spec(case.alg), count, clients)
        self.log(f"  minted {minted} distinct {case.alg} tokens in {time.monotonic() - started:.1f}s (untimed)")

    def start_fe(self, home: Path, workers: int, event_loop: str = "asyncio") -> fe_server.FeServer:
        server = fe_server.FeServer(home, workers=workers, extra_env={"FE_EVENT_LOOP": event_loop})
        if event_loop != "asyncio":
            server.log_path = home / f"fe-{workers}w-{event_loop}.log"
        fe_server.write_jwks(home, self.jwks)
        server.start()
        self._stoppers.append(server.stop)
        fe_server.create_users(server)
        self.log(
            f"fe with {workers} worker(s), event loop {event_loop}, on {server.host}:{server.port} (pid {server.pid}),"
            f" log {server.log_path}"
        )
        return server

    def run_fe(self) -> None:
        home = self.base / "fe-home"
        cases = [FE_PASSWORD, FE_TOKEN_REUSED, FE_TOKEN_FRESH_ES] + (
            [FE_TOKEN_FRESH_RS] if self.options.with_rs256 else []
        )
        server = self.start_fe(home, 1)
        try:
            for case in cases:
                self.run_case(case, server.pid, server.host, server.port)
            if self.options.profile_dir is not None:
                self.profile_token_storm(server)
        finally:
            server.stop()
        server = self.start_fe(home, 2)
        try:
            for case in (FE2_TOKEN_REUSED, FE2_TOKEN_FRESH_ES):
                self.run_case(case, server.pid, server.host, server.port)
        finally:
            server.stop()
        # For scale: the same storm with event_loop = uvloop instead of the standard library's loop (the default).
        server = self.start_fe(home, 1, event_loop="uvloop")
        try:
            self.run_case(FE_TOKEN_FRESH_ES_UVLOOP, server.pid, server.host, server.port)
        finally:
            server.stop()

    def profile_token_storm(self, server: fe_server.FeServer) -> None:
        assert self.options.profile_dir is not None
        directory = self.options.profile_dir
        directory.mkdir(parents=True, exist_ok=True)
        raw = directory / "fe-token-login.raw.txt"
        seconds = self.options.profile_seconds
        clients = self.options.target_clients
        self._mint_for(FE_TOKEN_FRESH_ES, clients)
        spy = profile.start_py_spy(server.pid, seconds, raw)
        if spy is None:
            self.result.notes.append("profile skipped: py-spy is not installed (pip install py-spy)")
            return
        time.sleep(0.5)
        self.log(f"profiling fe with py-spy during a fresh-token storm ({clients} clients, {seconds:g}s)")
        profile_case = Case("profile", "profile run", "fe", 1, "token-fresh", "ES256")
        storms.run_storm(
            self.generator,
            server.pid,
            profile_case,
            server.host,
            server.port,
            fe_server.TOKEN_USER,
            None,
            clients,
            seconds,
        )
        try:
            _, stderr = spy.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, stderr = spy.communicate()
        if raw.exists():
            summary = profile.summarize(raw)
            (directory / "fe-token-login.top.txt").write_text(summary + "\n")
            self.log(f"profile written to {directory}:\n{summary}")
        else:
            self.result.notes.append(f"py-spy wrote no profile: {stderr.decode(errors='replace')[-500:]}")

    def run_mariadb(self) -> None:
        binaries, problem = mariadb.ensure_installed(self.options.install_mariadb)
        if binaries is None:
            self.result.notes.append(f"MariaDB cases skipped: {problem}")
            self.log(problem)
            return
        server = mariadb.MariaDbServer(binaries, self.base / "mariadb")
        server.start()
        self._stoppers.append(server.stop)
        self.result.environment.mariadb = server.version
        self.log(f"MariaDB {server.version} on {server.host}:{server.port} (pid {server.pid})")
        try:
            self.run_case(MARIADB_PASSWORD, server.pid, server.host, server.port)
            if self.options.with_memory and self.options.with_mariadb_memory:
                self.log(f"MariaDB holding {self.options.memory_connections} idle TLS connections")
                run = memory.measure_idle_connections(
                    self.generator,
                    "MariaDB (thread per connection)",
                    server.pid,
                    server.host,
                    server.port,
                    mariadb.BENCH_USER,
                    Password(mariadb.BENCH_PASSWORD),
                    self.options.memory_connections,
                )
                self.result.memory.append(run)
                self.log(_memory_line(run))
        finally:
            server.stop()

    def run_interleaved(self) -> None:
        """The target comparison in rounds: fe, fe on uvloop and MariaDB all running, each round one storm
        per server at the target concurrency, taking turns, so the shared machine's drift in speed (tens of percent
        between windows minutes apart) reaches each alike. The targets use the medians."""
        rounds, seconds = self.options.interleaved_rounds, self.options.interleaved_seconds
        if rounds <= 0:
            return
        contenders: list[tuple[Case, int, str, int]] = []
        stops: list[Callable[[], None]] = []
        try:
            fe = self.start_fe(self.base / "fe-rounds-home", 1)
            stops.append(fe.stop)
            contenders.append((FE_TOKEN_FRESH_ES, fe.pid, fe.host, fe.port))
            fe_uvloop = self.start_fe(self.base / "fe-rounds-uvloop-home", 1, event_loop="uvloop")
            stops.append(fe_uvloop.stop)
            contenders.append((FE_TOKEN_FRESH_ES_UVLOOP, fe_uvloop.pid, fe_uvloop.host, fe_uvloop.port))
            if self.options.with_mariadb:
                binaries, _problem = mariadb.ensure_installed(self.options.install_mariadb)
                if binaries is not None:
                    server = mariadb.MariaDbServer(binaries, self.base / "mariadb-rounds")
                    server.start()
                    self._stoppers.append(server.stop)
                    stops.append(server.stop)
                    contenders.append((MARIADB_PASSWORD, server.pid, server.host, server.port))
            for case, _pid, host, port in contenders:
                self._warm_up(case, host, port)
            clients = self.options.target_clients
            self.log(f"interleaved rounds: {rounds} × {len(contenders)} storms of {seconds:g} s at {clients} clients")
            for index in range(rounds):
                for case, pid, host, port in contenders:
                    credential = self._credential(case)
                    if credential is None:
                        self._mint_for(case, clients, seconds)
                    run = storms.run_storm(
                        self.generator, pid, case, host, port, self._user(case), credential, clients, seconds
                    )
                    self.result.interleaved.append(run)
                    self.log(f"round {index + 1}/{rounds}" + _one_line(run))
        finally:
            for stop in stops:
                stop()

    def run_memory(self) -> None:
        count = self.options.memory_connections
        server = self.start_fe(self.base / "fe-memory-home", 1)
        try:
            storms.warm_up(
                self.generator,
                server.host,
                server.port,
                fe_server.TOKEN_USER,
                Token(self.reused_token),
                4,
                self.options.warmup_seconds,
            )
            self.generator.mint(self._mint_spec("ES256"), count)
            self.log(f"fe holding {count} idle TLS connections, each logged in with its own token")
            run = memory.measure_idle_connections(
                self.generator, "fe", server.pid, server.host, server.port, fe_server.TOKEN_USER, None, count
            )
            self.result.memory.append(run)
            self.log(_memory_line(run))
        finally:
            server.stop()


def _one_line(run: CaseRun) -> str:
    return (
        f"  {run.case.label} @ {run.clients:>2} clients: {run.logins_per_second:7.0f} logins/s, "
        f"server {run.server_cpu_ms_per_login:.3f} ms CPU/login ({run.server_cores:.2f} cores), "
        f"p50 {run.p50_ms:.1f} p99 {run.p99_ms:.1f} max {run.max_ms:.1f} ms, loadgen {run.client_cores:.2f} cores, "
        f"errors {run.errors}" + (" TOKENS RAN OUT" if run.tokens_exhausted else "")
    )


def _memory_line(run: MemoryRun) -> str:
    return (
        f"  {run.server}: {run.connections_opened}/{run.connections_wanted} connections, RSS "
        f"{run.rss_before_bytes / 2**20:.1f} → {run.rss_holding_bytes / 2**20:.1f} MiB = "
        f"{run.bytes_per_connection / 1024:.1f} KiB per connection, errors {run.errors}"
    )


def run_benchmark(options: Options, keep_files: bool = False) -> BenchmarkRun:
    procstats.raise_open_file_limit(max(4 * options.memory_connections, 20_000))
    base = Path(tempfile.mkdtemp(prefix="fe-bench-"))
    started = time.monotonic()
    bench: Bench | None = None
    try:
        with LoadGenerator(options.generator_processes) as generator:
            bench = Bench(options, base, generator)
            bench.measure_floor()
            bench.run_fe()
            if options.with_mariadb:
                bench.run_mariadb()
            bench.run_interleaved()
            if options.with_memory:
                bench.run_memory()
        bench.result.notes.append(f"whole run took {time.monotonic() - started:.0f} s of wall time")
        return bench.result
    finally:
        if bench is not None:
            bench.stop_all()
        if keep_files:
            _log(f"kept the servers' files in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
