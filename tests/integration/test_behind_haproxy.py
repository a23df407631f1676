"""fe behind a real HAProxy with `send-proxy-v2`: the client's real address (not the balancer's) is the one host
matching, CURRENT_USER(), USER() and the login log use; a PROXY header from an address not in
proxy_protocol_from is refused, and so is a listed address's connection without one."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pymysql
import pytest

from tests.conftest import ROOT_PASSWORD
from tests.support.haproxy import HAPROXY, running_haproxy
from tests.support.rawclient import RawClient
from tests.support.server import running_fe

pytestmark = pytest.mark.skipif(
    HAPROXY is None and not os.environ.get("FE_TESTS_REQUIRE_HAPROXY"), reason="haproxy is not installed"
)
TLS = {"check_hostname": False, "verify_mode": 0}
CLIENT_ADDRESS = "127.0.0.2"  # the client's own address; HAProxy reaches fe from 127.0.0.1


def _connect_from(address: str, port: int, user: str, password: str) -> pymysql.Connection:  # type: ignore[type-arg]
    return pymysql.connect(
        host="127.0.0.1", port=port, user=user, password=password, ssl=TLS, connect_timeout=10,
        bind_address=address,
    )  # fmt: skip


def test_the_clients_real_address_reaches_fe_through_haproxy(tmp_path: Path) -> None:
    env = {"FE_ROOT_PASSWORD": ROOT_PASSWORD, "FE_PROXY_PROTOCOL_FROM": "127.0.0.1/32"}
    with running_fe(tmp_path / "fe", env=env) as server, running_haproxy(tmp_path, [(server.port, None)]) as port:
        # root administers fe directly from a non-balancer address (127.0.0.3 is not in proxy_protocol_from).
        admin = _connect_from("127.0.0.3", server.port, "root", ROOT_PASSWORD)
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE USER 'near'@'{CLIENT_ADDRESS}' IDENTIFIED BY 'Near-pw-1'")
            cursor.execute("CREATE USER 'far'@'127.0.0.1' IDENTIFIED BY 'Far-pw-1'")
        admin.close()
        connection = _connect_from(CLIENT_ADDRESS, port, "near", "Near-pw-1")
        with connection.cursor() as cursor:
            cursor.execute("SELECT CURRENT_USER(), USER()")
            assert cursor.fetchone() == (f"near@{CLIENT_ADDRESS}", f"near@{CLIENT_ADDRESS}")
        connection.close()
        line = server.wait_for_log(rf"login user=near client={CLIENT_ADDRESS}:\d+ .*outcome=success")
        assert "via=127.0.0.1" in line
        # An account for the balancer's own address does not match a client behind it.
        with pytest.raises(pymysql.err.OperationalError) as refused:
            _connect_from(CLIENT_ADDRESS, port, "far", "Far-pw-1")
        assert refused.value.args[0] == 1045


def test_proxy_headers_only_from_listed_balancers(tmp_path: Path) -> None:
    env = {"FE_ROOT_PASSWORD": ROOT_PASSWORD, "FE_PROXY_PROTOCOL_FROM": "127.0.0.1/32"}
    with running_fe(tmp_path, env=env) as server:
        forged = b"PROXY TCP4 10.9.8.7 127.0.0.1 5555 9030\r\n"
        # From 127.0.0.3 (not listed) a forged header is refused: closed, never greeted as 10.9.8.7.
        sock = socket.create_connection((server.host, server.port), source_address=("127.0.0.3", 0), timeout=5)
        greeting = sock.recv(4096)  # not a balancer: the greeting comes at once
        assert greeting[4:5] == b"\x0a"
        sock.sendall(forged)
        assert sock.recv(4096) == b""
        sock.close()
        server.wait_for_log(r"a PROXY header from an address not in proxy_protocol_from")
        # From 127.0.0.1 (listed) a connection without a header is refused too.
        client = RawClient(server.host, server.port)
        client.sock.sendall(b"\x20\x00\x00\x01" + b"\x00" * 32)
        assert client.closed_by_server()
        client.close()
        # And the server still serves: root from a non-balancer address.
        _connect_from("127.0.0.3", server.port, "root", ROOT_PASSWORD).close()
