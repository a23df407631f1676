"""The servers of one gateway benchmark run: a private MariaDB (scripts/bench/mariadb.py: a temporary datadir, a
loopback port, TLS on with a fresh self-signed certificate, the user `bench_pw` with `REQUIRE SSL`) and one or
more `fe serve` processes in front of it (scripts/bench/fe_server.py), each in its own temporary home, set up
through the environment as an operator would (FE_UPSTREAM, FE_UPSTREAM_TLS=verify_identity with FE_UPSTREAM_CA,
FE_UPSTREAM_USER, FE_UPSTREAM_PASSWORD); fe-socket reaches MariaDB over its Unix socket instead.

fe checks MariaDB's certificate and its name: the certificate is self-signed for localhost and 127.0.0.1 and is
its own CA (FE_UPSTREAM_CA points at it).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from scripts.bench.fe_server import REPO_ROOT, FeServer
from scripts.bench.gateway.results import FE, FE_2W, FE_ASYNCIO, FE_FRESH, FE_SOCKET
from scripts.bench.mariadb import BENCH_PASSWORD, BENCH_USER, MariaDbServer, ensure_installed

DATABASE = "gwbench"  # holds nothing: MariaDB's sequence engine answers seq_1_to_N in any database
FE_USER = "gw_user"  # fe's own password user (caching_sha2_password); its sessions reach MariaDB as BENCH_USER
FE_PASSWORD = "gw-password-1"
# The upstream account of fe-socket: bench_pw's twin for connections over the Unix socket, which REQUIRE SSL
# would refuse (MariaDB counts only TLS for it).
SOCKET_USER = "bench_local"

# What each fe target changes from fe's defaults (besides the upstream settings every one of them has).
FE_SETTINGS: dict[str, dict[str, str]] = {
    FE: {},
    FE_ASYNCIO: {"FE_EVENT_LOOP": "asyncio"},
    # An idle connection is expired as soon as it is back in the pool: every login opens a fresh one (the pool
    # cannot be turned off: upstream_pool_size = 0 stops fe at start, see docs/gateway.md).
    FE_FRESH: {"FE_UPSTREAM_POOL_IDLE_SECONDS": "0"},
    FE_2W: {},  # two workers, on the default loop
    FE_SOCKET: {"FE_UPSTREAM_USER": SOCKET_USER},  # and FE_UPSTREAM = the socket's path (fe_environment)
}
WORKERS = {FE_2W: 2}


@dataclass
class Stack:
    mariadb: MariaDbServer
    fe: dict[str, FeServer] = field(default_factory=dict)
    _processes: dict[int, psutil.Process] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def port(self, target: str) -> int:
        return self.fe[target].port if target in self.fe else self.mariadb.port

    def fe_pid(self, target: str) -> int | None:
        return self.fe[target].pid if target in self.fe else None

    def credentials(self, target: str) -> tuple[str, str]:
        return (FE_USER, FE_PASSWORD) if target in self.fe else (BENCH_USER, BENCH_PASSWORD)

    def _process(self, pid: int) -> psutil.Process:
        process = self._processes.get(pid)
        if process is None:
            process = self._processes[pid] = psutil.Process(pid)
        return process

    def cpu_seconds(self, pid: int | None) -> float:
        """User + system CPU of a process and its children (fe's workers), all their threads (0 for None)."""
        if pid is None:
            return 0.0
        root = self._process(pid)
        total = 0.0
        for process in [root, *root.children(recursive=True)]:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def rss(self, pid: int) -> int:
        return int(self._process(pid).memory_info().rss)


def reset_peak_rss(pid: int) -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of a process to its current RSS; False if not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss(pid: int) -> int | None:
    """VmHWM: the process's highest RSS since it started or since reset_peak_rss."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _mariadb_as_root(server: MariaDbServer, statements: list[str]) -> None:
    """Run statements as MariaDB's root over its Unix socket, with the command-line client."""
    client = shutil.which("mariadb") or shutil.which("mysql")
    if client is None:
        raise RuntimeError("the MariaDB command-line client (mariadb) is missing: apt-get install -y mariadb-client")
    subprocess.run(
        [client, "--no-defaults", f"--socket={server.base / 'mysqld.sock'}", "-u", "root", "-e", ";".join(statements)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=60,
    )


def export_committed_fe(repository: Path, commit: str, directory: Path) -> Path:
    """fe/ as committed (`git archive <commit> fe`) in `directory`: the servers then run code that a commit names,
    whatever is being edited in the work tree meanwhile. Returns the directory to put on PYTHONPATH."""
    directory.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "fe"], cwd=repository, capture_output=True, timeout=60, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive.stdout, check=True, timeout=60)
    return directory


def fe_environment(server: MariaDbServer, target: str, fe_source: Path | None = None) -> dict[str, str]:
    source = {"PYTHONPATH": str(fe_source)} if fe_source is not None else {}
    return {
        **source,
        "FE_UPSTREAM": str(server.base / "mysqld.sock") if target == FE_SOCKET else f"{server.host}:{server.port}",
        "FE_UPSTREAM_TLS": "verify_identity",
        "FE_UPSTREAM_CA": str(server.base / "server-cert.pem"),
        "FE_UPSTREAM_USER": BENCH_USER,
        "FE_UPSTREAM_PASSWORD": BENCH_PASSWORD,
        **FE_SETTINGS[target],
    }


@contextlib.contextmanager
def running_stack(
    fe_targets: list[str], *, commit: str | None = None, install: bool = True, keep: bool = False
) -> Iterator[Stack]:
    """MariaDB and one fe per target, stopped (and their temporary homes removed, unless `keep`) on exit. fe runs
    as committed in `commit` (None: as it is in the work tree)."""
    binaries, problem = ensure_installed(install)
    if binaries is None:
        raise RuntimeError(problem)
    base = Path(tempfile.mkdtemp(prefix="fe-gateway-bench-"))
    mariadb = MariaDbServer(binaries, base / "mariadb")
    stack = Stack(mariadb)
    try:
        fe_source = export_committed_fe(REPO_ROOT, commit, base / "fe-source") if commit else None
        mariadb.start()
        _mariadb_as_root(
            mariadb,
            [
                f"CREATE DATABASE {DATABASE}",
                f"GRANT SELECT ON {DATABASE}.* TO '{BENCH_USER}'@'%'",
                f"CREATE USER '{SOCKET_USER}'@'localhost' IDENTIFIED BY '{BENCH_PASSWORD}'",
                f"GRANT SELECT ON {DATABASE}.* TO '{SOCKET_USER}'@'localhost'",
            ],
        )
        for target in fe_targets:
            environment = fe_environment(mariadb, target, fe_source)
            server = FeServer(base / target, WORKERS.get(target, 1), environment).start()
            stack.fe[target] = server
            asyncio.run(server.run_as_root([f"CREATE USER {FE_USER} IDENTIFIED BY '{FE_PASSWORD}'"]))
        yield stack
    finally:
        for server in stack.fe.values():
            server.stop()
        mariadb.stop()
        if keep:
            print(f"kept the servers' homes and logs in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
