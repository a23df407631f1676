"""The catalog keeps every statement that returned OK: concurrent administrator sessions create and drop users while
the server is killed with SIGKILL and restarted; a corrupt catalog file stops `fe serve` instead of starting empty."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest

from tests.conftest import ROOT_PASSWORD, root_execute
from tests.support.server import FeProcess, running_fe

SESSIONS = 4
KILLS = 3
SECONDS_BETWEEN_KILLS = 1.0
TOKEN_SPEC = '{"jwks_url": "https://idp.example/realms/main/certs", "required_audience": "fe"}'
# ERRs a statement may legitimately end with while other sessions write: the catalog was busy (nothing changed).
TRANSIENT_ERRORS = {1205}


@dataclass
class Step:
    """One statement a session sent, and what became of it: "ok", "error" (an ERR packet) or "unknown" (the
    connection died before the reply, so the change may or may not have been committed)."""

    operation: str  # "create" or "drop"
    name: str
    outcome: str
    errno: int | None = None


class AdminSession(threading.Thread):
    """Creates users (token and password-less, alternately) and drops about half of them again, reconnecting
    whenever the server goes away, until told to stop."""

    def __init__(self, index: int, server: FeProcess, stop: threading.Event) -> None:
        super().__init__(name=f"admin-{index}", daemon=True)
        self.index = index
        self.server = server
        self.stop = stop
        self.steps: list[Step] = []
        self.failure: BaseException | None = None
        self._random = random.Random(index)

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.failure = exc

    def _loop(self) -> None:
        counter = 0
        connection: pymysql.connections.Connection | None = None
        while not self.stop.is_set():
            if connection is None:
                connection = self._connect()
                if connection is None:
                    time.sleep(0.05)
                    continue
            name = f"s{self.index}_{counter}"
            counter += 1
            how = f"IDENTIFIED WITH authentication_jwt AS '{TOKEN_SPEC}'" if counter % 2 else ""
            step = self._execute(connection, "create", name, f"CREATE USER {name} {how}")
            if step.outcome == "unknown":
                connection = None
                continue
            if step.outcome == "ok" and self._random.random() < 0.5:
                step = self._execute(connection, "drop", name, f"DROP USER {name}")
                if step.outcome == "unknown":
                    connection = None
        if connection is not None:
            connection.close()

    def _connect(self) -> pymysql.connections.Connection | None:
        try:
            return pymysql.connect(
                host=self.server.host,
                port=self.server.port,
                user="root",
                password=ROOT_PASSWORD,
                ssl={"check_hostname": False, "verify_mode": 0},
                connect_timeout=2,
                read_timeout=10,
                write_timeout=10,
            )
        except (pymysql.err.MySQLError, OSError):
            return None

    def _execute(self, connection: pymysql.connections.Connection, operation: str, name: str, sql: str) -> Step:
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
            step = Step(operation, name, "ok")
        except (pymysql.err.OperationalError, pymysql.err.InterfaceError, OSError) as exc:
            errno = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
            if errno is not None and errno < 2000:  # an ERR packet from the server: it answered
                step = Step(operation, name, "error", errno)
            else:  # the client lost the connection (CR_SERVER_LOST 2013, …): the outcome is unknown
                step = Step(operation, name, "unknown", errno)
        except pymysql.err.MySQLError as exc:
            step = Step(operation, name, "error", exc.args[0] if exc.args else None)
        self.steps.append(step)
        return step


def possible_final_states(steps: list[Step]) -> dict[str, set[bool]]:
    """For each user name: whether it may exist at the end (True), may be absent (False), or either."""
    states: dict[str, set[bool]] = {}
    for step in steps:
        current = states.setdefault(step.name, {False})
        result = step.operation == "create"
        if step.outcome == "ok":
            states[step.name] = {result}
        elif step.outcome == "unknown":
            states[step.name] = current | {result}
    return states


def show_users(server: FeProcess) -> set[str]:
    return {row[0] for row in root_execute(server, "SHOW USERS")}


def test_ok_statements_survive_sigkill_during_concurrent_writes(tmp_path: Path) -> None:
    server = FeProcess(tmp_path, env={"FE_ROOT_PASSWORD": ROOT_PASSWORD}).start()
    stop = threading.Event()
    sessions = [AdminSession(index, server, stop) for index in range(SESSIONS)]
    progress_at_kills: list[int] = []
    try:
        for session in sessions:
            session.start()
        for _ in range(KILLS):
            time.sleep(SECONDS_BETWEEN_KILLS)
            progress_at_kills.append(sum(len(session.steps) for session in sessions))
            server.kill()  # SIGKILL, in the middle of the sessions' statements
            server.start(port=server.port)
        time.sleep(SECONDS_BETWEEN_KILLS)
        stop.set()
        for session in sessions:
            session.join(15)
            assert not session.is_alive(), f"{session.name} did not stop"
            assert session.failure is None, repr(session.failure)
        # A last SIGKILL with nothing in flight: what was committed must be on disk, not only in memory.
        server.kill()
        server.start(port=server.port)

        steps = [step for session in sessions for step in session.steps]
        ok_steps = [step for step in steps if step.outcome == "ok"]
        unexpected = [step for step in steps if step.outcome == "error" and step.errno not in TRANSIENT_ERRORS]
        assert not unexpected, unexpected
        # The run really did something between the kills, and kills really cut statements off.
        assert progress_at_kills == sorted(progress_at_kills) and progress_at_kills[0] > 0
        assert len(ok_steps) >= 40, f"only {len(ok_steps)} statements returned OK"
        assert sum(step.operation == "drop" for step in ok_steps) >= 10

        present = show_users(server)
        expected = possible_final_states(steps)
        wrong = {
            name: (allowed, f"'{name}'@'%'" in present)
            for name, allowed in expected.items()
            if (f"'{name}'@'%'" in present) not in allowed
        }
        assert not wrong, f"catalog disagrees with OK'd statements (allowed, present): {wrong}"
        strays = {user for user in present if user != "'root'@'%'" and user.strip("'").split("'@'")[0] not in expected}
        assert not strays, strays
        # A token user created with OK still shows its JSON, intact.
        token_users = [step.name for step in ok_steps if step.operation == "create" and expected[step.name] == {True}]
        token_users = [name for name in token_users if int(name.rsplit("_", 1)[1]) % 2 == 0]
        if token_users:
            rows = root_execute(server, f"SHOW AUTHENTICATION FOR {token_users[0]}")
            assert rows[0][2] == "AUTHENTICATION_JWT" and '"required_audience": ["fe"]' in rows[0][3]
        assert server.stop() == 0, server.log
    finally:
        stop.set()
        server.kill()

    with sqlite3.connect(tmp_path / "meta" / "catalog.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = {name for (name,) in conn.execute("SELECT name FROM users WHERE name != 'root'")}
    assert stored == {user.strip("'").split("'@'")[0] for user in present if user != "'root'@'%'"}


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan that exited may wait a while for init to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_sigkill_of_the_supervisor_takes_its_workers_down(tmp_path: Path) -> None:
    """`fe serve --workers 2` killed with SIGKILL must not leave its workers serving the port on their own: a
    restarted server would share the port (SO_REUSEPORT) with stale workers nobody supervises or stops."""
    server = FeProcess(tmp_path, extra_args=["--workers", "2"], env={"FE_ROOT_PASSWORD": ROOT_PASSWORD}).start()
    assert server.process is not None
    workers = _children(server.process.pid)
    try:
        assert len(workers) == 2, workers
        root_execute(server, "CREATE USER before_the_kill")
        server.kill()
        deadline = time.monotonic() + 5
        while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        survivors = [pid for pid in workers if _running(pid)]
        assert not survivors, f"workers {survivors} outlived their supervisor's SIGKILL, still on port {server.port}"
        # The restarted server is the only one on the port, and has what was committed.
        server.start(port=server.port)
        assert "'before_the_kill'@'%'" in show_users(server)
        assert server.stop() == 0, server.log
    finally:
        server.kill()
        for pid in workers:  # our own test's processes, if the server left them behind
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


def _garbage(path: Path) -> None:
    size = max(path.stat().st_size, 8192)
    path.write_bytes(random.Random(7).randbytes(size))


def _garbage_after_header(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:100] + random.Random(7).randbytes(len(data) - 100))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


CORRUPTIONS = {
    "garbage": (_garbage, "not a database"),
    "garbage_after_header": (_garbage_after_header, "corrupt"),
    "empty_file": (_empty, "not an fe user catalog"),
    "directory": (_directory, "catalog"),
}


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_corrupt_catalog_stops_the_server(tmp_path: Path, corruption: str, workers: int) -> None:
    with running_fe(tmp_path, env={"FE_ROOT_PASSWORD": ROOT_PASSWORD}) as server:
        root_execute(server, "CREATE USER kept IDENTIFIED BY 'Kept-pw-1'")
    catalog = tmp_path / "meta" / "catalog.db"
    for leftover in (catalog.with_name("catalog.db-wal"), catalog.with_name("catalog.db-shm")):
        leftover.unlink(missing_ok=True)
    damage, reason = CORRUPTIONS[corruption]
    damage(catalog)
    before = catalog.read_bytes() if catalog.is_file() else None

    done = subprocess.run(
        [sys.executable, "-m", "fe.cli", "serve", "--home", str(tmp_path), "--port", "0", "--workers", str(workers)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "FE_ROOT_PASSWORD": ROOT_PASSWORD},
    )
    assert done.returncode != 0, done.stderr
    assert "accepting MySQL connections" not in done.stderr
    message = done.stderr.lower()
    assert "catalog" in message and reason in message, done.stderr
    assert str(catalog) in done.stderr, done.stderr
    assert "traceback" not in message, done.stderr
    # The damaged file is left as it was for the administrator: not replaced by a new, empty catalog.
    if before is not None:
        assert catalog.read_bytes() == before
    else:
        assert catalog.is_dir()
    assert not list(catalog.parent.glob("*.tmp"))
