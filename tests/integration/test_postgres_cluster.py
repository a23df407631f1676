"""Two real `fe serve` nodes on one PostgreSQL catalog (`catalog = postgresql://…`, the password from
FE_CATALOG_PASSWORD): a user created through node A logs in through node B within a second, a dropped one is
refused by B within a second; PostgreSQL stopped: logins of accounts the nodes know go on, account statements get a
clear ERR, and once it is back they work again with no restart; kill -9 of a node during a stream of CREATE USER
loses no OK'd statement.

Skipped while `fe serve` does not open the catalog the settings name (fe/server/app.py calls
fe.catalog.backends.open_catalog_from_settings), and when PostgreSQL is not installed (unless
FE_TESTS_REQUIRE_POSTGRES is set: then failed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest

from tests.conftest import ROOT_PASSWORD, root_connection, root_execute
from tests.support.haproxy import running_haproxy
from tests.support.postgres_server import PostgresServer, shared_postgres
from tests.support.server import FeProcess, running_fe

WITHIN = 1.0


@dataclass
class Cluster:
    postgres: PostgresServer
    database: str
    a: FeProcess
    b: FeProcess


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    postgres = shared_postgres()
    database = postgres.create_database("cluster")
    env = {
        "FE_CATALOG": postgres.url(database),
        "FE_CATALOG_PASSWORD": postgres.test_password,
        "FE_ROOT_PASSWORD": ROOT_PASSWORD,
    }
    try:
        with running_fe(tmp_path_factory.mktemp("node-a"), env=env) as a:
            # fe serve really opened the PostgreSQL catalog (not a SQLite file of its own)
            assert postgres.execute("SELECT to_regclass('fe_schema_version') IS NOT NULL", dbname=database)[0][0]
            with running_fe(tmp_path_factory.mktemp("node-b"), env=env) as b:
                yield Cluster(postgres, database, a, b)
    finally:
        if postgres.alive:
            postgres.drop_database(database)


def connect(node: FeProcess, user: str, password: str) -> pymysql.connections.Connection:
    return pymysql.connect(
        host=node.host, port=node.port, user=user, password=password,
        ssl={"check_hostname": False, "verify_mode": 0}, connect_timeout=5,
    )  # fmt: skip


def logs_in(node: FeProcess, user: str, password: str) -> bool:
    try:
        connect(node, user, password).close()
    except pymysql.err.OperationalError as exc:
        assert exc.args[0] == 1045, exc
        return False
    return True


def seconds_until(condition: Callable[[], bool], limit: float = 10.0) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < limit, "the condition never came true"
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_user_created_on_a_logs_in_on_b_within_a_second_and_a_drop_is_refused_as_fast(cluster: Cluster) -> None:
    assert not logs_in(cluster.b, "tom", "tom-pw")
    root_execute(cluster.a, "CREATE USER tom IDENTIFIED BY 'tom-pw'")
    assert seconds_until(lambda: logs_in(cluster.b, "tom", "tom-pw")) < WITHIN
    root_execute(cluster.a, "DROP USER tom")
    assert seconds_until(lambda: not logs_in(cluster.b, "tom", "tom-pw")) < WITHIN


def test_postgres_down_cached_logins_go_on_writes_refused_then_back_without_restart(cluster: Cluster) -> None:
    root_execute(cluster.a, "CREATE USER kim IDENTIFIED BY 'kim-pw'")
    assert seconds_until(lambda: logs_in(cluster.b, "kim", "kim-pw")) < WITHIN
    # Both nodes take in every change (by notification, or the 1 s check): what they look up after stays cached.
    time.sleep(1.5)
    for node in (cluster.a, cluster.b):
        assert logs_in(node, "kim", "kim-pw") and logs_in(node, "root", ROOT_PASSWORD)
    admin = root_connection(cluster.a)  # a session opened before the outage
    cluster.postgres.stop()
    try:
        time.sleep(0.5)
        for node in (cluster.a, cluster.b):
            assert logs_in(node, "kim", "kim-pw"), node.log
            assert not logs_in(node, "kim", "wrong")
        with admin.cursor() as cursor, pytest.raises(pymysql.err.OperationalError) as refused:
            cursor.execute("CREATE USER lee IDENTIFIED BY 'x'")
        assert refused.value.args[0] == 1205 and "the catalog is unavailable" in refused.value.args[1]
    finally:
        cluster.postgres.start()
        admin.close()

    def writes() -> bool:
        try:
            root_execute(cluster.a, "CREATE USER IF NOT EXISTS lee IDENTIFIED BY 'lee-pw'")
        except pymysql.err.OperationalError:
            return False
        return True

    assert seconds_until(writes) < 5.0
    assert seconds_until(lambda: logs_in(cluster.b, "lee", "lee-pw")) < WITHIN


def test_kill_9_of_a_node_during_a_stream_of_create_user_loses_no_ok(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    acknowledged: list[str] = []
    stop = threading.Event()

    def stream(index: int) -> None:
        try:
            connection = root_connection(cluster.a)
            with connection.cursor() as cursor:
                for number in range(100_000):
                    if stop.is_set():
                        return
                    name = f"s{index}_{number}"
                    cursor.execute(f"CREATE USER {name} IDENTIFIED BY 'x'")
                    acknowledged.append(name)
        except (pymysql.err.OperationalError, pymysql.err.InterfaceError, OSError):
            return  # the node died under it

    threads = [threading.Thread(target=stream, args=(index,), daemon=True) for index in range(3)]
    for thread in threads:
        thread.start()
    seconds_until(lambda: len(acknowledged) >= 60)
    cluster.a.kill()
    stop.set()
    for thread in threads:
        thread.join(10)
    users = {row[0] for row in cluster.postgres.execute("SELECT name FROM users", dbname=cluster.database)}
    assert set(acknowledged) <= users
    # The survivor serves them at once; a node started again on the catalog has them all.
    assert logs_in(cluster.b, acknowledged[-1], "x")
    env = cluster.a.env
    with running_fe(Path(tmp_path_factory.mktemp("node-a2")), env=env) as again:
        rows = root_execute(again, "SHOW USERS")
        assert set(acknowledged) <= {str(row[0]).split("'")[1] for row in rows}


def test_two_nodes_behind_haproxy_with_the_clients_real_address(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The deployment of docs/cluster.md: two nodes on one PostgreSQL, HAProxy in front with send-proxy-v2 and a
    health check on /readyz. An account restricted to the client's own address, created through one node, logs in
    through the balancer whichever node takes it, and each node's log names the real address."""
    postgres = shared_postgres()
    database = postgres.create_database("balanced")
    balancer_address, client_address = "127.0.0.5", "127.0.0.2"
    env = {
        "FE_CATALOG": postgres.url(database),
        "FE_CATALOG_PASSWORD": postgres.test_password,
        "FE_ROOT_PASSWORD": ROOT_PASSWORD,
        "FE_PROXY_PROTOCOL_FROM": f"{balancer_address}/32",
        "FE_HTTP_PORT": "0",
    }
    try:
        with (
            running_fe(tmp_path_factory.mktemp("lb-a"), env=env) as a,
            running_fe(tmp_path_factory.mktemp("lb-b"), env=env) as b,
        ):
            ports = [(node.port, node.http_port()) for node in (a, b)]
            home = tmp_path_factory.mktemp("haproxy")
            with running_haproxy(home, ports, source=balancer_address) as port:
                admin = connect(a, "root", ROOT_PASSWORD)  # directly, from 127.0.0.1: not a balancer
                with admin.cursor() as cursor:
                    cursor.execute(f"CREATE USER 'near'@'{client_address}' IDENTIFIED BY 'Near-pw-1'")
                admin.close()
                for _ in range(4):  # round robin: both nodes serve it
                    connection = pymysql.connect(
                        host="127.0.0.1", port=port, user="near", password="Near-pw-1", bind_address=client_address,
                        ssl={"check_hostname": False, "verify_mode": 0}, connect_timeout=10,
                    )  # fmt: skip
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT CURRENT_USER()")
                        assert cursor.fetchone() == (f"near@{client_address}",)
                    connection.close()
                for node in (a, b):
                    line = node.wait_for_log(rf"login user=near client={client_address}:\d+ .*outcome=success")
                    assert f"via={balancer_address}" in line
    finally:
        if postgres.alive:
            postgres.drop_database(database)
