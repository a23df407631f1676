"""A private PostgreSQL server for tests: Debian's `postgresql`, its own data directory under /tmp, 127.0.0.1 and a
free port, scram-sha-256 password authentication for every connection.

PostgreSQL refuses to run as root: when the tests run as root, initdb and the server run as the `postgres` user
the package creates (or `nobody`), which owns the directory. The server is the test process's child and gets
SIGKILL if the test process dies (PR_SET_PDEATHSIG), so a crashed test run leaves no server behind.

`shared_postgres()` starts one server per test session (the first test that needs it), stopped when the session's
process exits. Tests keep apart in schemas of one database (`create_schema()`, a few milliseconds; a database
takes a few hundred), or in a database of their own (`create_database()`). `stop()` is a fast shutdown (SIGINT,
what `pg_ctl stop -m fast` sends) and `start()` starts it again on the same port and data, so tests can take the
catalog away and give it back.

When the binaries are missing the tests that need them skip, unless FE_TESTS_REQUIRE_POSTGRES is set (as the full
test run sets it): then they fail.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import die_with_parent, free_port, unprivileged_account

REQUIRE_ENV = "FE_TESTS_REQUIRE_POSTGRES"
INSTALL_HINT = "apt-get install -y --no-install-recommends postgresql"
ADMIN_USER = "fe_admin"
TEST_USER = "fe_test"
TEST_DATABASE = "fe_tests"


@dataclass(frozen=True)
class Binaries:
    initdb: str
    postgres: str


def find_binaries() -> Binaries | None:
    """initdb and postgres from PATH, else from Debian's /usr/lib/postgresql/<version>/bin (newest first)."""
    initdb, postgres = shutil.which("initdb"), shutil.which("postgres")
    if initdb and postgres:
        return Binaries(initdb, postgres)
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: _version_key(Path(p).parent.name))
    for bindir in reversed(versions):
        initdb, postgres = f"{bindir}/initdb", f"{bindir}/postgres"
        if os.access(initdb, os.X_OK) and os.access(postgres, os.X_OK):
            return Binaries(initdb, postgres)
    return None


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def require_binaries() -> Binaries:
    """The binaries; skips the test when missing (fails under FE_TESTS_REQUIRE_POSTGRES)."""
    found = find_binaries()
    if found is None:
        message = f"PostgreSQL is not installed ({INSTALL_HINT})"
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{message}, and {REQUIRE_ENV} is set")
        pytest.skip(message)
    return found


class PostgresServer:
    def __init__(self, binaries: Binaries, base: Path) -> None:
        self.binaries = binaries
        self.base = base
        self.datadir = base / "data"
        self.log_file = base / "postgres.log"
        self.host = "127.0.0.1"
        self.port = 0
        self.admin_password = secrets.token_urlsafe(16)
        self.test_password = secrets.token_urlsafe(16)
        self.process: subprocess.Popen[bytes] | None = None
        self._account = unprivileged_account("postgres", server="PostgreSQL")
        self._names = itertools.count(1)

    def _run_as(self) -> dict[str, object]:
        if self._account is None:
            return {}
        return {"user": self._account.pw_uid, "group": self._account.pw_gid, "extra_groups": []}

    def initialise(self) -> PostgresServer:
        self.base.chmod(0o700)
        password_file = self.base / "admin-password"
        password_file.write_text(self.admin_password + "\n")
        if self._account is not None:
            for path in (self.base, password_file):
                os.chown(path, self._account.pw_uid, self._account.pw_gid)
        subprocess.run(
            [
                self.binaries.initdb,
                f"--pgdata={self.datadir}",
                f"--username={ADMIN_USER}",
                f"--pwfile={password_file}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-instructions",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
            cwd=self.base,
            **self._run_as(),  # type: ignore[call-overload]
        )
        password_file.unlink()
        self.port = free_port()
        return self

    def start(self, timeout: float = 60.0) -> PostgresServer:
        """Start (or start again) the server on its port; returns once it accepts connections."""
        log = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child, closed here once it has it
        self.process = subprocess.Popen(
            [
                self.binaries.postgres,
                "-D",
                str(self.datadir),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"port={self.port}",
                "-c",
                f"unix_socket_directories={self.base}",
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=32MB",
                "-c",
                "logging_collector=off",
                "-c",
                "log_min_messages=warning",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=self.base,
            preexec_fn=die_with_parent,
            **self._run_as(),  # type: ignore[call-overload]
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self._accepts_connections():
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"postgres did not start:\n{self.log_tail()}")

    def _accepts_connections(self) -> bool:
        import psycopg

        try:
            psycopg.connect(self.admin_conninfo(), connect_timeout=2).close()
        except psycopg.OperationalError as exc:
            if "starting up" in str(exc) or "Connection refused" in str(exc) or "recovery" in str(exc):
                return False
            raise
        return True

    def create_test_role(self) -> None:
        self.execute(
            f"CREATE ROLE {TEST_USER} LOGIN CREATEDB PASSWORD '{self.test_password}'",
            f"CREATE DATABASE {TEST_DATABASE} OWNER {TEST_USER}",
        )

    def admin_conninfo(self, dbname: str = "postgres") -> str:
        return f"host={self.host} port={self.port} dbname={dbname} user={ADMIN_USER} password={self.admin_password}"

    def url(self, dbname: str = TEST_DATABASE, *, schema: str | None = None, with_password: bool = False) -> str:
        """A postgresql:// URL for the test role (in `schema`, when given); no password unless asked for."""
        password = f":{self.test_password}" if with_password else ""
        options = f"?options=-csearch_path%3D{schema}" if schema else ""
        return f"postgresql://{TEST_USER}{password}@{self.host}:{self.port}/{dbname}{options}"

    def execute(
        self, *statements: str, dbname: str = "postgres", schema: str | None = None
    ) -> list[tuple[object, ...]]:
        """Run statements as the superuser (autocommit; in `schema`, when given); the rows of the last one."""
        import psycopg

        rows: list[tuple[object, ...]] = []
        with psycopg.connect(self.admin_conninfo(dbname), autocommit=True, connect_timeout=10) as conn:
            if schema:
                conn.execute(f"SET search_path TO {schema}")
            for statement in statements:
                cursor = conn.execute(statement)
                rows = list(cursor.fetchall()) if cursor.description else []
        return rows

    def create_schema(self, prefix: str = "s") -> str:
        """A new schema in TEST_DATABASE, owned by the test role."""
        name = f"{prefix}_{next(self._names)}"
        self.execute(f"CREATE SCHEMA {name} AUTHORIZATION {TEST_USER}", dbname=TEST_DATABASE)
        return name

    def drop_schema(self, name: str) -> None:
        self.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE", dbname=TEST_DATABASE)

    def create_database(self, prefix: str = "d") -> str:
        name = f"{prefix}_{next(self._names)}"
        self.execute(f"CREATE DATABASE {name} OWNER {TEST_USER}")
        return name

    def drop_database(self, name: str) -> None:
        self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        """A fast shutdown: open sessions are ended, committed work is kept."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


@contextlib.contextmanager
def running_postgres(binaries: Binaries) -> Iterator[PostgresServer]:
    base = Path(tempfile.mkdtemp(prefix="fe-postgres-"))
    server = PostgresServer(binaries, base)
    try:
        server.initialise().start()
        server.create_test_role()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


_shared: PostgresServer | None = None


def shared_postgres() -> PostgresServer:
    """The session's server, started on first use (skips or fails as `require_binaries` says when missing)."""
    global _shared
    if _shared is None:
        binaries = require_binaries()
        base = Path(tempfile.mkdtemp(prefix="fe-postgres-"))
        server = PostgresServer(binaries, base)
        try:
            server.initialise().start()
            server.create_test_role()
        except BaseException:
            server.stop()
            shutil.rmtree(base, ignore_errors=True)
            raise
        atexit.register(_stop_shared, server)
        _shared = server
    if not _shared.alive:  # a test that stopped it failed before starting it again
        _shared.start()
    return _shared


def _stop_shared(server: PostgresServer) -> None:
    server.stop()
    shutil.rmtree(server.base, ignore_errors=True)
