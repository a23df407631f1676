"""The command phase with real clients: COM_CHANGE_USER, COM_RESET_CONNECTION, COM_INIT_DB, shutdown."""

from __future__ import annotations

import signal
import time

import mysql.connector
import pymysql
import pytest

from tests.conftest import ROOT_PASSWORD, root_execute
from tests.support.clients import ALL_CLIENTS
from tests.support.rawclient import RawClient, error_of
from tests.support.server import FeProcess, running_fe


@pytest.fixture(scope="module")
def server(fe_server: FeProcess) -> FeProcess:
    root_execute(
        fe_server,
        "CREATE USER IF NOT EXISTS sam IDENTIFIED BY 'Sam-pw-1'",
        "CREATE USER IF NOT EXISTS nat IDENTIFIED WITH mysql_native_password BY 'Nat-pw-1'",
    )
    return fe_server


def connector(server: FeProcess, user: str = "root", password: str = ROOT_PASSWORD):
    return mysql.connector.connect(
        host=server.host, port=server.port, user=user, password=password, use_pure=True, ssl_verify_cert=False
    )


@pytest.mark.parametrize(("user", "password"), [("sam", "Sam-pw-1"), ("nat", "Nat-pw-1")])
def test_change_user(server: FeProcess, user: str, password: str) -> None:
    connection = connector(server)
    try:
        connection.cmd_change_user(username=user, password=password)
        cursor = connection.cursor()
        cursor.execute("SELECT CURRENT_USER()")
        assert cursor.fetchall() == [(f"{user}@%",)]
    finally:
        connection.close()


def test_failed_change_user_closes_the_connection(server: FeProcess) -> None:
    connection = connector(server)
    with pytest.raises(mysql.connector.Error) as failure:
        connection.cmd_change_user(username="sam", password="wrong")
    assert failure.value.errno == 1045
    with pytest.raises(mysql.connector.Error):
        connection.cmd_query("SELECT 1")
    server.wait_for_log(r"login user=sam .*outcome=failure reason=bad_password")


def test_reset_connection_resets_session_state(server: FeProcess) -> None:
    client = RawClient(server.host, server.port)
    try:
        assert client.login("root", ROOT_PASSWORD, tls=True)[:1] == b"\x00"
        assert client.query("SET autocommit = 0")[:1] == b"\x00"
        assert client.query("SET @@session.wait_timeout = 33")[:1] == b"\x00"
        assert client.query_rows("SELECT @@autocommit, @@wait_timeout") == [[b"0", b"33"]]
        assert client.command(0x1F)[:1] == b"\x00"  # COM_RESET_CONNECTION
        assert client.query_rows("SELECT @@autocommit, @@wait_timeout") == [[b"1", b"28800"]]
        assert client.query_rows("SELECT CURRENT_USER()") == [[b"root@%"]]
    finally:
        client.close()


def test_init_db_and_database(server: FeProcess) -> None:
    connection = pymysql.connect(
        host=server.host,
        port=server.port,
        user="root",
        password=ROOT_PASSWORD,
        database="information_schema",
        ssl={"check_hostname": False, "verify_mode": 0},
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT DATABASE()")
            assert cursor.fetchall() == (("information_schema",),)
        with pytest.raises(pymysql.err.OperationalError) as failure:
            connection.select_db("no_such_db")
        assert failure.value.args[0] == 1049
    finally:
        connection.close()


def test_mariadb_cli_interactive_start(server: FeProcess) -> None:
    """The statements the mariadb client sends on its own (version comment, status) work."""
    outcome = ALL_CLIENTS["mariadb_cli"](
        server.host,
        server.port,
        "root",
        ROOT_PASSWORD,
        statements=("select @@version_comment limit 1", "status", "SHOW WARNINGS"),
    )
    assert outcome.ok, outcome.message


def test_oversized_token_is_refused_before_parsing(server: FeProcess) -> None:
    root_execute(
        server,
        'CREATE USER IF NOT EXISTS big IDENTIFIED WITH authentication_jwt AS \'{"jwks_url": "nothing-here.jwks"}\'',
    )
    client = RawClient(server.host, server.port)
    code, message = error_of(client.token_login("big", b"e" * (16 * 1024 + 1)))
    assert code == 1045 and "16384" not in message  # the stranger is not told; the log is
    assert client.closed_by_server()
    server.wait_for_log(r"login user=big .*outcome=failure reason=too_large")


def test_sigterm_with_open_sessions_exits_cleanly(tmp_path) -> None:
    with running_fe(tmp_path, env={"FE_ROOT_PASSWORD": ROOT_PASSWORD, "FE_SHUTDOWN_GRACE_SECONDS": "2"}) as server:
        idle = [connector(server) for _ in range(3)]
        half_open = RawClient(server.host, server.port)  # greeted, never answers
        half_open.read_greeting()
        started = time.monotonic()
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(10) == 0
        assert time.monotonic() - started < 5
        assert half_open.closed_by_server()
        for connection in idle:
            with pytest.raises(mysql.connector.Error):
                connection.cmd_query("SELECT 1")
