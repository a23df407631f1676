"""Several writers at once, and `kill -9` in the middle of writing — of the writing processes, and of PostgreSQL
itself: every acknowledged change is kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil

from fe.catalog import CACHING_SHA2, Credentials
from fe.catalog.pg import PostgresCatalog, PostgresLocation
from tests.support.postgres_server import PostgresServer

REPO_ROOT = Path(__file__).resolve().parents[3]
PASSWORD = Credentials(CACHING_SHA2, "", "CACHING_SHA2_PASSWORD")

# Creates prefix0, prefix1, ... (granting `user_admin` to every third), drops every odd one, and prints each name
# right after the catalog acknowledged its creation. Write failures (PostgreSQL gone) are printed, not fatal.
WRITER = textwrap.dedent(
    """
    import sys, time
    from fe.catalog import CACHING_SHA2, Credentials, CatalogBusyError
    from fe.catalog.pg import PostgresCatalog, PostgresLocation, parse_location

    url, password, prefix, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    credentials = Credentials(CACHING_SHA2, "", "CACHING_SHA2_PASSWORD")
    catalog = PostgresCatalog.open(parse_location(url, password))
    print("ready", flush=True)
    for number in range(count):
        name = f"{prefix}{number}"
        try:
            catalog.create_user(name, "%", credentials, default_roles=["user_admin"] if number % 3 == 0 else [])
        except CatalogBusyError as exc:
            print("failed", name, flush=True)
            time.sleep(0.05)
            continue
        print(name, flush=True)
        if number % 2:
            try:
                catalog.drop_user(name, "%")
            except CatalogBusyError:
                print("failed-drop", name, flush=True)
                continue
            print("dropped", name, flush=True)
    catalog.close()
    """
)


def _writer(postgres: PostgresServer, schema: str, prefix: str, count: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-c", WRITER, postgres.url(schema=schema), postgres.test_password, prefix, str(count)]
    writer = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    return writer


def _record(line: str, created: set[str], dropped: set[str]) -> None:
    words = line.split()
    if not words or words[0] in ("failed", "failed-drop"):
        return
    if words[0] == "dropped":
        dropped.add(words[1])
    else:
        created.add(words[0])


def _must_be_present(created: set[str], dropped: set[str]) -> set[str]:
    """Acknowledged creations never dropped. (An odd one's drop may have committed unacknowledged by the kill.)"""
    return {name for name in created - dropped if int(name.rsplit("_", 1)[1]) % 2 == 0}


def _expected_users(prefix: str, count: int) -> set[str]:
    return {f"{prefix}{number}" for number in range(count) if number % 2 == 0}


def test_concurrent_threads_and_processes_leave_a_consistent_catalog(
    catalog: PostgresCatalog, location: PostgresLocation, postgres: PostgresServer, pg_schema: str
) -> None:
    errors: list[BaseException] = []

    def work(prefix: str, shared: bool) -> None:
        try:
            target = catalog if shared else PostgresCatalog.open(location)
            for number in range(20):
                name = f"{prefix}{number}"
                target.create_user(name, "%", PASSWORD, default_roles=["user_admin"] if number % 3 == 0 else [])
                if number % 2:
                    target.drop_user(name, "%")
            if not shared:
                target.close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"t{index}_", index % 2 == 0)) for index in range(4)]
    writers = [_writer(postgres, pg_schema, f"p{index}_", 20) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for writer in writers:
        writer.communicate(timeout=60)
        assert writer.returncode == 0
    assert errors == []
    names = {account.name for account in catalog.list_accounts()}
    expected = set().union(*(_expected_users(f"{kind}{index}_", 20) for kind, index in
                             [("t", 0), ("t", 1), ("t", 2), ("t", 3), ("p", 0), ("p", 1)]))  # fmt: skip
    assert names == expected | {"root"}
    admins = {account.name for account in catalog.list_accounts() if "user_admin" in account.roles}
    assert admins == {name for name in expected if int(name.split("_")[1]) % 3 == 0}


def test_every_acknowledged_change_survives_kill_9_of_the_writers(
    catalog: PostgresCatalog, postgres: PostgresServer, pg_schema: str
) -> None:
    writers = [_writer(postgres, pg_schema, f"k{index}_", 10_000) for index in range(2)]
    created: set[str] = set()
    dropped: set[str] = set()
    try:
        for writer in writers:
            assert writer.stdout is not None
            for _ in range(40):
                _record(writer.stdout.readline(), created, dropped)
    finally:
        for writer in writers:
            writer.send_signal(signal.SIGKILL)
    for writer in writers:
        assert writer.stdout is not None
        for line in writer.stdout.read().splitlines():  # written before the kill: acknowledged too
            _record(line, created, dropped)
        writer.wait()
        assert writer.returncode == -signal.SIGKILL
    present = {account.name for account in catalog.list_accounts()}
    assert created and _must_be_present(created, dropped) <= present
    assert not (dropped & present)


def test_every_acknowledged_change_survives_kill_9_of_postgres(
    catalog: PostgresCatalog, postgres: PostgresServer, pg_schema: str
) -> None:
    """PostgreSQL killed (the postmaster and every backend, as a crash of its host would) in the middle of a stream
    of writes: after crash recovery, everything acknowledged is there."""
    writer = _writer(postgres, pg_schema, "c_", 100_000)
    created: set[str] = set()
    dropped: set[str] = set()
    assert writer.stdout is not None and postgres.process is not None
    try:
        for _ in range(60):
            _record(writer.stdout.readline(), created, dropped)
        server = psutil.Process(postgres.process.pid)
        for process in [server, *server.children(recursive=True)]:
            process.kill()
        postgres.process.wait(10)
    finally:
        writer.send_signal(signal.SIGKILL)
        for line in writer.stdout.read().splitlines():
            _record(line, created, dropped)
        writer.wait()
        if not postgres.alive:
            postgres.start()  # crash recovery replays the WAL
    deadline = time.monotonic() + 5
    while not catalog.available:  # the node that was open all along comes back by itself
        assert time.monotonic() < deadline
        time.sleep(0.01)
    present = {account.name for account in catalog.list_accounts()}
    assert created and _must_be_present(created, dropped) <= present
    assert not (dropped & present)
