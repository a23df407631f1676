"""Strangers cannot lock everyone out: sockets that never log in fill only their own pool (with a share per
address), and administrators keep reserved sessions when the server is full."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pymysql

from tests.conftest import ROOT_PASSWORD, root_execute
from tests.support.rawclient import RawClient, error_of
from tests.support.server import FeProcess, running_fe

TLS = {"check_hostname": False, "verify_mode": 0}


def _login(server: FeProcess, user: str, password: str) -> pymysql.Connection:  # type: ignore[type-arg]
    return pymysql.connect(
        host=server.host, port=server.port, user=user, password=password, ssl=TLS, connect_timeout=10
    )


@contextlib.contextmanager
def _idle_sockets(server: FeProcess, count: int) -> Iterator[list[RawClient]]:
    clients = [RawClient(server.host, server.port) for _ in range(count)]
    try:
        yield clients
    finally:
        for client in clients:
            client.close()


def test_idle_sockets_that_never_log_in_do_not_keep_root_out(tmp_path: Path) -> None:
    env = {"FE_ROOT_PASSWORD": ROOT_PASSWORD, "FE_MAX_CONNECTIONS": "100"}
    with running_fe(tmp_path, env=env) as server, _idle_sockets(server, 150) as idle:
        connection = _login(server, "root", ROOT_PASSWORD)
        with connection.cursor() as cursor:
            cursor.execute("SELECT CURRENT_USER()")
            assert cursor.fetchone() == ("root@%",)
        connection.close()
        # The address keeps only its share (32) of unfinished logins: the oldest were closed for the newest, and
        # root's own connection took the place of one more.
        assert all(client.closed_by_server(timeout=2) for client in idle[:100])
        for client in idle[-5:]:
            client.read_greeting()
            assert not client.closed_by_server(timeout=0.2)


def test_a_full_server_still_admits_administrators(tmp_path: Path) -> None:
    env = {"FE_ROOT_PASSWORD": ROOT_PASSWORD, "FE_MAX_CONNECTIONS": "3", "FE_ADMIN_RESERVED_CONNECTIONS": "2"}
    with running_fe(tmp_path, env=env) as server:
        root_execute(
            server,
            "CREATE USER ann IDENTIFIED BY 'a1'",
            "CREATE USER boss IDENTIFIED BY 'b1'",
            "GRANT user_admin TO boss",
        )
        sessions = [_login(server, "ann", "a1") for _ in range(3)]
        try:
            try:
                _login(server, "ann", "a1")
            except pymysql.err.OperationalError as exc:
                assert exc.args[0] == 1040 and exc.args[1] == "Too many connections"
            else:
                raise AssertionError("a fourth ordinary session was admitted past max_connections")
            server.wait_for_log(r"login user=ann .*outcome=failure reason=too_many_connections")
            admins = [_login(server, "root", ROOT_PASSWORD), _login(server, "boss", "b1")]
            try:
                _login(server, "root", ROOT_PASSWORD)
            except pymysql.err.OperationalError as exc:
                assert exc.args[0] == 1040  # the reserve is bounded too
            else:
                raise AssertionError("an administrator got past the reserved sessions")
            for connection in admins:
                connection.close()
        finally:
            for connection in sessions:
                connection.close()


def test_when_the_login_pool_is_full_a_new_socket_is_refused_before_the_greeting(tmp_path: Path) -> None:
    env = {
        "FE_ROOT_PASSWORD": ROOT_PASSWORD,
        "FE_MAX_UNAUTHENTICATED_CONNECTIONS": "4",
        "FE_MAX_UNAUTHENTICATED_PER_ADDRESS": "4",
    }
    with running_fe(tmp_path, env=env) as server, _idle_sockets(server, 4) as idle:
        for client in idle:
            client.read_greeting()
        extra = RawClient(server.host, server.port)
        code, message = error_of(extra.read_packet())
        assert code == 1040 and message == "Too many connections"
        extra.close()
        for client in idle:  # the pool frees as soon as they go
            client.close()
        _login(server, "root", ROOT_PASSWORD).close()
