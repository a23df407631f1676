"""A private MariaDB server for tests: a temporary datadir, a free loopback port, TLS with a private CA,
performance_schema on (connection attributes), run as an unprivileged user when the tests run as root (mariadbd
refuses to run as root without --user=root, and should not).

The server gets SIGKILL if the test process dies (PR_SET_PDEATHSIG, set after the switch of user so that it
survives the exec).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql

from tests.support.certificates import CertificateFiles, write_ca_and_server_certificate
from tests.support.processes import die_with_parent, free_port, unprivileged_account

REQUIRE_ENV = "FE_TESTS_REQUIRE_MARIADB"
INSTALL_HINT = "apt-get install -y mariadb-server"


@dataclass(frozen=True)
class Binaries:
    server: str
    install_db: str


def find_binaries() -> Binaries | None:
    server = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin:/usr/local/sbin")
    install_db = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    return Binaries(server, install_db) if server and install_db else None


class MariaDbServer:
    def __init__(self, binaries: Binaries, base: Path) -> None:
        self.binaries = binaries
        self.base = base
        self.datadir = base / "data"
        self.socket_path = base / "mysqld.sock"
        self.error_log = base / "error.log"
        self.host = "127.0.0.1"
        self.port = 0
        self.certificates: CertificateFiles | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._account = unprivileged_account("mysql", server="mariadbd")

    def _run_as(self) -> dict[str, object]:
        if self._account is None:
            return {}
        return {"user": self._account.pw_uid, "group": self._account.pw_gid, "extra_groups": []}

    def _give_away(self, *paths: Path) -> None:
        if self._account is not None:
            for path in paths:
                os.chown(path, self._account.pw_uid, self._account.pw_gid)

    def start(self, timeout: float = 60.0) -> MariaDbServer:
        self.base.chmod(0o700)
        self.certificates = write_ca_and_server_certificate(self.base)
        self._give_away(self.base, self.certificates.ca, self.certificates.cert, self.certificates.key)
        subprocess.run(
            [
                self.binaries.install_db,
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                "--innodb-log-file-size=8M",
                "--innodb-buffer-pool-size=32M",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
            cwd=self.base,
            **self._run_as(),  # type: ignore[call-overload]
        )
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                self.binaries.server,
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--port={self.port}",
                f"--bind-address={self.host}",
                f"--socket={self.socket_path}",
                f"--pid-file={self.base / 'mysqld.pid'}",
                f"--log-error={self.error_log}",
                f"--ssl-ca={self.certificates.ca}",
                f"--ssl-cert={self.certificates.cert}",
                f"--ssl-key={self.certificates.key}",
                "--performance-schema=ON",
                "--skip-name-resolve",
                "--skip-log-bin",
                "--local-infile=ON",
                "--max-allowed-packet=256M",
                "--innodb-log-file-size=8M",
                "--innodb-buffer-pool-size=32M",
                "--max-connections=200",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.base,
            preexec_fn=die_with_parent,
            **self._run_as(),  # type: ignore[call-overload]
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "ready for connections" in self._log():
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mariadbd did not become ready:\n{self.log_tail()}")

    def _log(self) -> str:
        try:
            return self.error_log.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self._log().splitlines()[-lines:]) or "(no error log)"

    def admin(self) -> pymysql.connections.Connection:
        """root over the Unix socket (root@localhost has no password in a fresh datadir)."""
        return pymysql.connect(unix_socket=str(self.socket_path), user="root", autocommit=True, connect_timeout=10)

    def execute(self, *statements: str) -> list[tuple[object, ...]]:
        """Run statements as root; the rows of the last one."""
        connection = self.admin()
        try:
            rows: list[tuple[object, ...]] = []
            with connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
                    rows = list(cursor.fetchall())
            return rows
        finally:
            connection.close()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@contextlib.contextmanager
def running_mariadb(binaries: Binaries) -> Iterator[MariaDbServer]:
    base = Path(tempfile.mkdtemp(prefix="fe-mariadb-"))
    server = MariaDbServer(binaries, base)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
