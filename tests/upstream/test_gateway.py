"""The gateway end to end: a real `fe serve` in front of the real MariaDB (TLS, certificate and host name
verified). Password and token users log in through fe with real clients and reach the database as the upstream
account their roles map to, carrying their identity in session_connect_attrs; fe's own statements stay with fe;
the upstream's faults become clear errors."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import mysql.connector
import pymysql
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fe.auth.devtools import generate_signing_key, mint_token
from tests.conftest import ROOT_PASSWORD, root_execute
from tests.support.clients import ALL_CLIENTS
from tests.support.mariadb_server import MariaDbServer
from tests.support.rawclient import RawClient
from tests.support.server import FeProcess, running_fe

TLS = {"check_hostname": False, "verify_mode": 0}
ISSUER = "https://idp.example"
UPSTREAM_DEFAULT = ("gw_default", "Gw-default-1")
UPSTREAM_READER = ("gw_reader", "Gw-reader-1")


@dataclass
class Gateway:
    fe: FeProcess
    mariadb: MariaDbServer
    key: object
    kid: str

    def token(self, sub: str) -> str:
        claims = {"iss": ISSUER, "aud": "fe", "sub": sub, "exp": int(time.time()) + 600}
        return mint_token(self.key, "ES256", self.kid, claims)  # type: ignore[arg-type]

    def connect(self, user: str, password: str, **extra: object) -> pymysql.Connection:  # type: ignore[type-arg]
        return connect_over_tls(self.fe, user, password, **extra)


def connect_over_tls(fe: FeProcess, user: str, password: str, **extra: object) -> pymysql.Connection:  # type: ignore[type-arg]
    return pymysql.connect(
        host=fe.host, port=fe.port, user=user, password=password, ssl=TLS, connect_timeout=10, **extra
    )  # type: ignore[arg-type]


def _rows(connection: pymysql.Connection, sql: str) -> list[tuple[object, ...]]:  # type: ignore[type-arg]
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())


def _start_fe(home: Path, mariadb: MariaDbServer, extra_env: dict[str, str] | None = None) -> Iterator[FeProcess]:
    assert mariadb.certificates is not None
    env = {
        "FE_ROOT_PASSWORD": ROOT_PASSWORD,
        "FE_UPSTREAM": f"{mariadb.host}:{mariadb.port}",
        "FE_UPSTREAM_TLS": "verify_identity",
        "FE_UPSTREAM_CA": str(mariadb.certificates.ca),
        "FE_UPSTREAM_USER": UPSTREAM_DEFAULT[0],
        "FE_UPSTREAM_PASSWORD": UPSTREAM_DEFAULT[1],
        "FE_UPSTREAM_ROLE_ACCOUNTS": f"analysts:{UPSTREAM_READER[0]}",
        f"FE_UPSTREAM_PASSWORD_{UPSTREAM_READER[0].upper()}": UPSTREAM_READER[1],
        **(extra_env or {}),
    }
    with running_fe(home, env=env) as server:
        yield server


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def gateway(
    mariadb: MariaDbServer, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Gateway]:
    """fe in front of MariaDB, on each event loop (the relay runs in the transports' callbacks, which differ)."""
    mariadb.execute(
        "CREATE DATABASE IF NOT EXISTS gw",
        f"CREATE USER IF NOT EXISTS '{UPSTREAM_DEFAULT[0]}'@'%' IDENTIFIED BY '{UPSTREAM_DEFAULT[1]}'",
        f"CREATE USER IF NOT EXISTS '{UPSTREAM_READER[0]}'@'%' IDENTIFIED BY '{UPSTREAM_READER[1]}'",
        f"GRANT ALL ON gw.* TO '{UPSTREAM_DEFAULT[0]}'@'%'",
        f"GRANT SELECT ON gw.* TO '{UPSTREAM_READER[0]}'@'%'",
        *(f"GRANT SELECT ON performance_schema.* TO '{user}'@'%'" for user, _ in (UPSTREAM_DEFAULT, UPSTREAM_READER)),
        "CREATE TABLE IF NOT EXISTS gw.notes (id INT PRIMARY KEY, body TEXT)",
    )
    home = tmp_path_factory.mktemp("fe-gateway")
    (home / "conf").mkdir()
    key, jwk = generate_signing_key("ES256")
    (home / "conf" / "idp.jwks").write_text(json.dumps({"keys": [jwk]}))
    spec = {"jwks_url": "idp.jwks", "required_issuer": ISSUER, "required_audience": "fe"}
    for server in _start_fe(home, mariadb, {"FE_EVENT_LOOP": request.param}):
        root_execute(
            server,
            "CREATE USER pat IDENTIFIED BY 'Pat-pw-1'",
            f"CREATE USER tom IDENTIFIED WITH authentication_jwt AS '{json.dumps(spec)}'",
            "CREATE ROLE analysts",
            "CREATE USER ana IDENTIFIED BY 'Ana-pw-1'",
            "GRANT analysts TO ana",
        )
        yield Gateway(server, mariadb, key, jwk["kid"])


@pytest.mark.parametrize("client", sorted(ALL_CLIENTS))
def test_a_password_user_reaches_the_database_through_fe(gateway: Gateway, client: str) -> None:
    table = f"gw.t_{client}"
    outcome = ALL_CLIENTS[client](
        gateway.fe.host, gateway.fe.port, "pat", "Pat-pw-1", tls=True,
        statements=(
            f"DROP TABLE IF EXISTS {table}",
            f"CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR(20))",
            f"INSERT INTO {table} VALUES (1, 'a'), (2, 'b')",
            f"SELECT id, v FROM {table} ORDER BY id",
            "SELECT CURRENT_USER()",
        ),
    )  # fmt: skip
    assert outcome.ok, outcome.message
    assert [[str(v) for v in row] for row in outcome.rows[3]] == [["1", "a"], ["2", "b"]]
    assert str(outcome.rows[4][0][0]).startswith(f"{UPSTREAM_DEFAULT[0]}@")


def test_the_identity_reaches_session_connect_attrs(gateway: Gateway) -> None:
    connection = gateway.connect("tom", gateway.token("tom"))  # a token user, with the token as the password
    try:
        attrs = dict(
            _rows(
                connection,
                "SELECT ATTR_NAME, ATTR_VALUE FROM performance_schema.session_connect_attrs "
                "WHERE PROCESSLIST_ID = CONNECTION_ID()",
            )
        )
    finally:
        connection.close()
    assert attrs["program_name"] == "fe"
    assert attrs["fe_user"] == "tom"
    assert attrs["fe_client_address"] == "127.0.0.1"
    assert attrs["fe_token_sub"] == "tom" and attrs["fe_token_iss"] == ISSUER
    assert "public" in attrs["fe_roles"]


def test_roles_pick_the_upstream_account_and_its_privileges_apply(gateway: Gateway) -> None:
    connection = gateway.connect("ana", "Ana-pw-1")
    try:
        assert str(_rows(connection, "SELECT CURRENT_USER()")[0][0]).startswith(f"{UPSTREAM_READER[0]}@")
        assert _rows(connection, "SELECT COUNT(*) FROM gw.notes")[0][0] >= 0
        with pytest.raises(pymysql.err.OperationalError) as refused:
            _rows(connection, "INSERT INTO gw.notes VALUES (99, 'not allowed')")
        assert refused.value.args[0] == 1142  # the database's own privilege check (INSERT command denied)
    finally:
        connection.close()


def test_fe_answers_its_own_statements(gateway: Gateway) -> None:
    connection = gateway.connect("root", ROOT_PASSWORD)
    try:
        _rows(connection, "CREATE USER IF NOT EXISTS carl IDENTIFIED BY 'Carl-pw-1'")
        _rows(connection, "GRANT analysts TO carl")
        users = [row[0] for row in _rows(connection, "SHOW USERS")]
        assert "'carl'@'%'" in users
        grants = _rows(connection, "SHOW GRANTS FOR carl")  # fe's roles, not the database's privileges
        assert any("analysts" in str(row) for row in grants)
        assert [row[0] for row in _rows(connection, "SHOW GLOBAL STATUS LIKE 'Fe_logins%'")]
    finally:
        connection.close()
    # ... and the database never saw an account named carl
    assert not gateway.mariadb.execute("SELECT user FROM mysql.user WHERE user = 'carl'")


def test_prepared_statements_transactions_and_a_large_result(gateway: Gateway) -> None:
    connection = mysql.connector.connect(
        host=gateway.fe.host, port=gateway.fe.port, user="pat", password="Pat-pw-1", use_pure=True,
        ssl_verify_cert=False, database="gw", autocommit=True,
    )  # fmt: skip
    try:
        cursor = connection.cursor(prepared=True)
        cursor.execute("DELETE FROM notes WHERE id >= 100")
        cursor.execute("INSERT INTO notes VALUES (?, ?)", (100, "prepared"))
        cursor.execute("SELECT body FROM notes WHERE id = ?", (100,))
        assert cursor.fetchall() == [("prepared",)]
        connection.start_transaction()
        cursor.execute("INSERT INTO notes VALUES (?, ?)", (101, "rolled back"))
        connection.rollback()
        cursor.execute("SELECT COUNT(*) FROM notes WHERE id = ?", (101,))
        assert cursor.fetchall() == [(0,)]
        plain = connection.cursor()
        plain.execute("SELECT REPEAT('x', 1000000) FROM seq_1_to_40")  # 40 MB through fe
        rows = plain.fetchall()
        assert len(rows) == 40 and all(len(row[0]) == 1_000_000 for row in rows)
    finally:
        connection.close()


def test_a_pooled_connection_carries_no_state_into_the_next_session(gateway: Gateway) -> None:
    first = gateway.connect("pat", "Pat-pw-1")
    _rows(first, "SET @secret = 'left behind'")
    _rows(first, "CREATE TEMPORARY TABLE gw.scratch (x INT)")
    first_id = _rows(first, "SELECT CONNECTION_ID()")[0][0]
    first.close()
    time.sleep(0.3)  # the released connection is reset and back in the pool
    second = gateway.connect("pat", "Pat-pw-1")
    try:
        assert _rows(second, "SELECT @secret") == [(None,)]
        with pytest.raises(pymysql.err.ProgrammingError):
            _rows(second, "SELECT * FROM gw.scratch")
        second_id = _rows(second, "SELECT CONNECTION_ID()")[0][0]
    finally:
        second.close()
    assert second_id == first_id  # it really was the same upstream connection, reused


def test_change_user_gets_its_own_upstream_connection(gateway: Gateway) -> None:
    connection = mysql.connector.connect(
        host=gateway.fe.host, port=gateway.fe.port, user="pat", password="Pat-pw-1", use_pure=True,
        ssl_verify_cert=False,
    )  # fmt: skip
    try:
        connection.cmd_change_user(username="ana", password="Ana-pw-1")
        cursor = connection.cursor()
        cursor.execute("SELECT CURRENT_USER()")
        assert str(cursor.fetchall()[0][0]).startswith(f"{UPSTREAM_READER[0]}@")
    finally:
        connection.close()


def test_an_upstream_connection_killed_mid_session_is_a_clear_error(gateway: Gateway) -> None:
    victim = gateway.connect("pat", "Pat-pw-1")
    upstream_id = _rows(victim, "SELECT CONNECTION_ID()")[0][0]
    gateway.mariadb.execute(f"KILL {upstream_id}")
    with pytest.raises(pymysql.err.OperationalError):
        _rows(victim, "SELECT 1")
    victim.close()
    survivor = gateway.connect("pat", "Pat-pw-1")  # other sessions go on
    assert _rows(survivor, "SELECT 1") == [(1,)]
    survivor.close()
    assert gateway.fe.alive


def test_the_database_over_its_unix_socket(gateway: Gateway, tmp_path: Path) -> None:
    """`upstream = <the database's Unix socket>`: no TCP and no TLS on fe's leg to a database on the same host
    (upstream_tls, verify_identity here, does not apply); the relay, the identity and the pool work as over TCP."""
    query = (
        "SELECT CURRENT_USER(), HOST, CONNECTION_ID() FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()"
    )
    socket_upstream = {"FE_UPSTREAM": str(gateway.mariadb.socket_path), "FE_HTTP_PORT": "0"}
    for server in _start_fe(tmp_path, gateway.mariadb, socket_upstream):
        server.wait_for_log(r"upstream .*mysqld\.sock: 5\.5\.5-.*MariaDB.* \(its Unix socket, no TLS\)")
        root_execute(server, "CREATE USER pat IDENTIFIED BY 'Pat-pw-1'")
        pool_metrics(server, until=lambda m: m["idle"] == 1)  # root's session's connection, back in the pool
        seen = []
        for _ in range(2):
            connection = connect_over_tls(server, "pat", "Pat-pw-1", database="gw")  # autocommit off (PyMySQL)
            try:
                seen.extend(_rows(connection, query))
                attrs = dict(
                    _rows(
                        connection,
                        "SELECT ATTR_NAME, ATTR_VALUE FROM performance_schema.session_connect_attrs "
                        "WHERE PROCESSLIST_ID = CONNECTION_ID()",
                    )
                )
                assert attrs["fe_user"] == "pat" and attrs["program_name"] == "fe"
                assert _rows(connection, "SELECT COUNT(*) FROM gw.notes WHERE id < 0") == [(0,)]
            finally:
                connection.close()
            pool_metrics(server, until=lambda m: m["idle"] == 1 and m["leased"] == 0)  # reset and back
        (user, host, first_id), (_, _, second_id) = seen
        assert (user, host) == (f"{UPSTREAM_DEFAULT[0]}@%", "localhost")  # MariaDB saw a socket connection
        assert second_id == first_id  # the pooled connection, handed over with COM_CHANGE_USER
        # One connection served root and both of pat's sessions: fe's metrics say so too.
        assert pool_metrics(server, until=lambda m: True) == {"idle": 1, "leased": 0, "opened": 1, "reused": 2}


def pool_metrics(server: FeProcess, until: Callable[[dict[str, float]], bool]) -> dict[str, float]:
    """fe's upstream pool metrics from /metrics, polled until `until` holds (at most 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        text = httpx.get(f"http://127.0.0.1:{server.http_port()}/metrics", timeout=5).text
        samples = {
            (sample.name, sample.labels.get("state", "")): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name.startswith("fe_upstream")
        }
        found = {
            "idle": samples[("fe_upstream_connections", "idle")],
            "leased": samples[("fe_upstream_connections", "leased")],
            "opened": samples[("fe_upstream_connections_opened_total", "")],
            "reused": samples[("fe_upstream_connections_reused_total", "")],
        }
        if until(found):
            return found
        assert time.monotonic() < deadline, f"the pool never got there: {found}"
        time.sleep(0.05)


@pytest.mark.parametrize("upstream", ["127.0.0.1:1", "absent.sock"])
def test_an_upstream_that_is_down_at_login_is_the_logins_error(
    mariadb: MariaDbServer, tmp_path: Path, upstream: str
) -> None:
    assert mariadb.certificates is not None
    if upstream.endswith(".sock"):
        upstream = str(tmp_path / upstream)
    for server in _start_fe(tmp_path, mariadb, {"FE_UPSTREAM": upstream}):
        with pytest.raises(pymysql.err.OperationalError) as refused:
            pymysql.connect(host=server.host, port=server.port, user="root", password=ROOT_PASSWORD, ssl=TLS)
        assert refused.value.args[0] == 1045 and "upstream" in refused.value.args[1]
        server.wait_for_log(r"login user=root .*outcome=failure reason=upstream_down")


def test_an_upstream_at_its_connection_limit_refuses_the_login_clearly(gateway: Gateway) -> None:
    """MAX_USER_CONNECTIONS 1 on the mapped account: a second concurrent session cannot get its upstream leg."""
    gateway.mariadb.execute(f"ALTER USER '{UPSTREAM_READER[0]}'@'%' WITH MAX_USER_CONNECTIONS 1")
    try:
        first = gateway.connect("ana", "Ana-pw-1")
        try:
            with pytest.raises(pymysql.err.OperationalError) as refused:
                gateway.connect("ana", "Ana-pw-1")
            assert refused.value.args[0] == 1045 and "upstream" in refused.value.args[1]
            gateway.fe.wait_for_log(r"login user=ana .*outcome=failure reason=upstream_refused")
            assert _rows(first, "SELECT 1") == [(1,)]  # the first session goes on
        finally:
            first.close()
    finally:
        gateway.mariadb.execute(f"ALTER USER '{UPSTREAM_READER[0]}'@'%' WITH MAX_USER_CONNECTIONS 0")


def test_a_client_that_vanishes_mid_result_frees_its_upstream_connection(gateway: Gateway) -> None:
    def upstream_sessions() -> int:
        rows = gateway.mariadb.execute(
            f"SELECT COUNT(*) FROM information_schema.processlist WHERE user = '{UPSTREAM_DEFAULT[0]}'"
        )
        return int(rows[0][0])  # type: ignore[arg-type]

    client = RawClient(gateway.fe.host, gateway.fe.port)
    assert client.login("pat", "Pat-pw-1", tls=True)[:1] == b"\x00"
    baseline = upstream_sessions()
    client.send_packet(b"\x03SELECT REPEAT('x', 1000000) FROM gw.seq_1_to_200", seq=0)  # 200 MB, streamed
    client.read_packet()  # the column count: the result is on its way
    client.sock.shutdown(socket.SHUT_RDWR)  # gone mid-result, without a word
    client.close()
    deadline = time.monotonic() + 10
    while upstream_sessions() >= baseline and time.monotonic() < deadline:
        time.sleep(0.1)
    assert upstream_sessions() < baseline, "the upstream connection of a vanished client was kept"
    survivor = gateway.connect("pat", "Pat-pw-1")
    assert _rows(survivor, "SELECT 1") == [(1,)]
    survivor.close()


def test_load_data_local_infile_only_when_the_client_allowed_it(gateway: Gateway, tmp_path: Path) -> None:
    gateway.mariadb.execute("SET GLOBAL local_infile = 1")
    data = tmp_path / "notes.tsv"
    data.write_text("200\tfrom a file\n201\tand another\n")
    load = f"LOAD DATA LOCAL INFILE '{data}' INTO TABLE gw.notes"
    allowed = gateway.connect("pat", "Pat-pw-1", local_infile=True)
    try:
        _rows(allowed, "DELETE FROM gw.notes WHERE id >= 200")
        _rows(allowed, load)
        allowed.commit()
        assert _rows(allowed, "SELECT COUNT(*) FROM gw.notes WHERE id >= 200") == [(2,)]
    finally:
        allowed.close()
    refused = gateway.connect("pat", "Pat-pw-1")
    try:
        with pytest.raises(pymysql.err.MySQLError):
            _rows(refused, load)
        assert _rows(refused, "SELECT 1") == [(1,)]
    finally:
        refused.close()
