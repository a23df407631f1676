"""Run a private MariaDB server for the comparison: its own temporary datadir, a loopback port, TLS on.

TLS uses a freshly generated self-signed ECDSA P-256 certificate (the same type fe generates), and the benchmark
user authenticates with mysql_native_password — MariaDB's default plugin (MariaDB has no caching_sha2_password
server plugin). The user is created with `REQUIRE SSL`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from fe.server.tls import write_self_signed_certificate
from scripts.bench.procstats import die_with_parent

BENCH_USER = "bench_pw"
BENCH_PASSWORD = "bench-password-1"
AUTH_PLUGIN = "mysql_native_password"
INSTALL_COMMAND = "apt-get install -y mariadb-server"


@dataclass(frozen=True)
class Binaries:
    server: str
    install_db: str


def find_binaries() -> Binaries | None:
    server = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin:/usr/local/sbin")
    install_db = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    if server and install_db:
        return Binaries(server, install_db)
    return None


def ensure_installed(allow_install: bool) -> tuple[Binaries | None, str]:
    """The MariaDB binaries, installing the Debian package first when allowed and running as root."""
    found = find_binaries()
    if found:
        return found, ""
    if not allow_install or os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, f"MariaDB is not installed; run `{INSTALL_COMMAND}` (as root) and rerun"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "mariadb-server"]
    for commands in ([install], [["apt-get", "update", "-q"], install]):
        for command in commands:
            subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900)
        found = find_binaries()
        if found:
            return found, ""
    return None, f"installing MariaDB failed; try `{INSTALL_COMMAND}`"


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MariaDbServer:
    def __init__(self, binaries: Binaries, base: Path) -> None:
        self.binaries = binaries
        self.base = base
        self.datadir = base / "data"
        self.host = "127.0.0.1"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.error_log = base / "mariadb-error.log"
        self.version = ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _as_root(self) -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []

    def start(self, timeout: float = 60.0) -> MariaDbServer:
        self.base.mkdir(parents=True, exist_ok=True)
        cert, key = self.base / "server-cert.pem", self.base / "server-key.pem"
        write_self_signed_certificate(cert, key, "bench mariadb")
        subprocess.run(
            [
                self.binaries.install_db,
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                *self._as_root(),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )
        init = self.base / "init.sql"
        init.write_text(
            f"CREATE USER IF NOT EXISTS '{BENCH_USER}'@'%' IDENTIFIED VIA {AUTH_PLUGIN} "
            f"USING PASSWORD('{BENCH_PASSWORD}') REQUIRE SSL;\n"
        )
        self.port = free_loopback_port()
        command = [
            self.binaries.server,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.base / 'mysqld.sock'}",
            f"--pid-file={self.base / 'mysqld.pid'}",
            f"--log-error={self.error_log}",
            f"--init-file={init}",
            f"--ssl-cert={cert}",
            f"--ssl-key={key}",
            "--skip-name-resolve",
            "--max-connections=8000",
            "--max-connect-errors=1000000000",
            "--innodb-buffer-pool-size=64M",
            *self._as_root(),
        ]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.error_log.read_text(errors="replace") if self.error_log.exists() else ""
            if "ready for connections" in log:
                self.version = _version_from_log(log)
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"mariadbd did not become ready:\n{self.error_log_tail()}")

    def error_log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.error_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no error log)"

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def _version_from_log(log: str) -> str:
    for line in log.splitlines():
        if "ready for connections" in line:
            continue
        if "Version: '" in line:
            return line.split("Version: '", 1)[1].split("'", 1)[0]
    return ""
