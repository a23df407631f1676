"""Catalog writes and password hashing run off the event loop: while one session's statement waits for the
catalog's SQLite write lock (held here by another connection to meta/catalog.db, as another worker process
might), other sessions still log in and run statements promptly; once the lock is released the write completes."""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time

import pymysql
import pytest

from tests.conftest import ROOT_PASSWORD
from tests.support.server import FeProcess
from tests.support.sessions import Session

_names = itertools.count()


def catalog_lock(server: FeProcess) -> sqlite3.Connection:
    """Another connection holding the catalog's write lock (BEGIN IMMEDIATE), until rolled back."""
    holder = sqlite3.connect(server.home / "meta" / "catalog.db", isolation_level=None, timeout=10)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def login_and_select(server: FeProcess, user: str, password: str) -> float:
    started = time.monotonic()
    connection = pymysql.connect(
        host=server.host,
        port=server.port,
        user=user,
        password=password,
        ssl={"check_hostname": False, "verify_mode": 0},
        connect_timeout=10,
        read_timeout=10,
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchall() == ((1,),)
    finally:
        connection.close()
    return time.monotonic() - started


@pytest.mark.parametrize(
    "write",
    [
        "CREATE USER {name} IDENTIFIED BY 'Off-loop-pw-1'",
        "ALTER USER {target} IDENTIFIED BY 'Off-loop-pw-2'",
        "SET PASSWORD FOR {target} = 'Off-loop-pw-3'",
        "GRANT user_admin TO {target}",
    ],
)
def test_a_write_waiting_for_the_catalog_lock_stalls_no_other_session(fe_server: FeProcess, write: str) -> None:
    n = next(_names)
    name, target = f"offloop_new_{n}", f"offloop_target_{n}"
    with Session(fe_server, "root", ROOT_PASSWORD) as root:
        root.run(f"CREATE USER {target} IDENTIFIED BY 'Target-pw-1'")
        root.run("CREATE USER IF NOT EXISTS offloop_reader IDENTIFIED BY 'Reader-pw-1'")
    writer = Session(fe_server, "root", ROOT_PASSWORD)  # logged in before the lock is taken
    outcome: dict[str, object] = {}

    def run_write() -> None:
        try:
            outcome["reply"] = writer.run(write.format(name=name, target=target))
        except Exception as exc:
            outcome["error"] = exc

    holder = catalog_lock(fe_server)
    try:
        thread = threading.Thread(target=run_write)
        thread.start()
        time.sleep(0.3)  # the statement is now waiting for the lock inside fe
        assert thread.is_alive(), outcome
        # Other sessions, full logins (a password check each) and a statement, while the write waits.
        latencies = [login_and_select(fe_server, "offloop_reader", "Reader-pw-1") for _ in range(3)]
        latencies.append(login_and_select(fe_server, "root", ROOT_PASSWORD))
        assert thread.is_alive(), "the write finished before the lock was released"
        assert max(latencies) < 2.0, latencies
    finally:
        holder.rollback()
        holder.close()
    thread.join(15)
    writer.close()
    assert not thread.is_alive()
    assert "error" not in outcome, outcome
    # The write is in the catalog.
    with Session(fe_server, "root", ROOT_PASSWORD) as root:
        if write.startswith("CREATE"):
            assert f"'{name}'@'%'" in {row[0] for row in root.rows("SHOW USERS")}
        elif write.startswith("GRANT"):
            assert root.rows(f"SHOW GRANTS FOR {target}") == [
                (f"'{target}'@'%'", None, f"GRANT 'user_admin' TO '{target}'@'%'")
            ]
    if "Off-loop-pw" in write:
        login_and_select(fe_server, name if write.startswith("CREATE") else target, write.split("'")[1])
    with Session(fe_server, "root", ROOT_PASSWORD) as root:
        root.run(f"DROP USER IF EXISTS {name}")
        root.run(f"DROP USER IF EXISTS {target}")
