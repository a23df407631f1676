"""Several writers at once, and `kill -9` in the middle of writing: every acknowledged change is kept."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from fe.catalog import CACHING_SHA2, Catalog, Credentials

REPO_ROOT = Path(__file__).resolve().parents[2]
PASSWORD = Credentials(CACHING_SHA2, "", "CACHING_SHA2_PASSWORD")

# Creates prefix0, prefix1, ... (granting `user_admin` to every third), drops every odd one, and prints each
# name right after the catalog acknowledged its creation.
WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from fe.catalog import (
        CACHING_SHA2, Catalog, CatalogBusyError, Credentials, UserExistsError, UserNotFoundError,
    )

    def until_acknowledged(change, done_already):
        # A busy catalog (another writer held the lock past the busy timeout, as on a loaded machine) acknowledged
        # nothing: try again, as a client would after ERR 1205. A retry that finds its change done was acknowledged.
        while True:
            try:
                change()
                return
            except done_already:
                return
            except CatalogBusyError:
                continue

    path, prefix, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    credentials = Credentials(CACHING_SHA2, "", "CACHING_SHA2_PASSWORD")
    catalog = Catalog.open(path)
    for number in range(count):
        name = f"{prefix}{number}"
        roles = ["user_admin"] if number % 3 == 0 else []
        until_acknowledged(lambda: catalog.create_user(name, "%", credentials, default_roles=roles), UserExistsError)
        print(name, flush=True)
        if number % 2:
            until_acknowledged(lambda: catalog.drop_user(name, "%"), UserNotFoundError)
            print("dropped", name, flush=True)
    catalog.close()
    """
)


def _writer(path: Path, prefix: str, count: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), prefix, str(count)], stdout=subprocess.PIPE, text=True, env=env
    )


def _assert_consistent(path: Path) -> None:
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()


def _expected_users(prefix: str, count: int) -> set[str]:
    return {f"{prefix}{number}" for number in range(count) if number % 2 == 0}


def test_concurrent_threads_leave_a_consistent_catalog(catalog: Catalog, catalog_path: Path) -> None:
    errors: list[BaseException] = []

    def work(prefix: str, shared: bool) -> None:
        try:
            target = catalog if shared else Catalog.open(catalog_path)
            for number in range(30):
                name = f"{prefix}{number}"
                target.create_user(name, "%", PASSWORD, default_roles=["user_admin"] if number % 3 == 0 else [])
                if number % 2:
                    target.drop_user(name, "%")
            if not shared:
                target.close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"t{index}_", index % 2 == 0)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    names = {account.name for account in catalog.list_accounts()}
    expected = set().union(*(_expected_users(f"t{index}_", 30) for index in range(6)))
    assert names == expected | {"root"}
    admins = {a.name for a in catalog.list_accounts() if "user_admin" in a.roles}
    assert admins == {name for name in expected if int(name.split("_")[1]) % 3 == 0}
    _assert_consistent(catalog_path)


def test_concurrent_processes_leave_a_consistent_catalog(catalog: Catalog, catalog_path: Path) -> None:
    writers = [_writer(catalog_path, f"p{index}_", 25) for index in range(4)]
    for writer in writers:
        writer.communicate(timeout=60)
        assert writer.returncode == 0
    names = {account.name for account in catalog.list_accounts()}
    expected = set().union(*(_expected_users(f"p{index}_", 25) for index in range(4)))
    assert names == expected | {"root"}
    _assert_consistent(catalog_path)


def test_every_acknowledged_change_survives_kill_9(catalog: Catalog, catalog_path: Path) -> None:
    catalog.close()
    writers = [_writer(catalog_path, f"k{index}_", 10_000) for index in range(2)]
    created: set[str] = set()
    dropped: set[str] = set()
    for writer in writers:
        assert writer.stdout is not None
        for _ in range(40):
            words = writer.stdout.readline().split()
            if words[0] == "dropped":
                dropped.add(words[1])
            else:
                created.add(words[0])
    for writer in writers:
        writer.send_signal(signal.SIGKILL)
    for writer in writers:
        assert writer.stdout is not None
        # Lines already written before the kill were acknowledged too.
        for line in writer.stdout.read().splitlines():
            words = line.split()
            if words and words[0] == "dropped":
                dropped.add(words[1])
            elif words:
                created.add(words[0])
        writer.wait()
        assert writer.returncode == -signal.SIGKILL

    with Catalog.open(catalog_path) as reopened:
        present = {account.name for account in reopened.list_accounts()}
    assert created - dropped <= present
    assert not (dropped & present)
    _assert_consistent(catalog_path)
