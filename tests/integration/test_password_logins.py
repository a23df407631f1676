"""Password logins through every real client, over TLS and plain TCP, against a real `fe serve` process."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT_PASSWORD, root_execute
from tests.support.clients import ALL_CLIENTS
from tests.support.server import FeProcess, running_fe

CLIENTS = sorted(ALL_CLIENTS)


@pytest.fixture(scope="module")
def users(fe_server: FeProcess) -> FeProcess:
    root_execute(
        fe_server,
        "CREATE USER alice IDENTIFIED BY 'Alice-pw-1'",
        "CREATE USER 'bob'@'%' IDENTIFIED WITH mysql_native_password BY 'Bob-pw-2'",
        "CREATE USER carol",
    )
    return fe_server


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "plain"])
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    ("user", "password"),
    [("root", ROOT_PASSWORD), ("alice", "Alice-pw-1"), ("bob", "Bob-pw-2"), ("carol", "")],
)
def test_login_and_query(users: FeProcess, client: str, tls: bool, user: str, password: str) -> None:
    if not tls and client.startswith("connector"):
        # Connector/Python has no RSA key exchange by default: like MySQL, a plain-TCP caching_sha2 login only
        # succeeds on the fast path, after one full authentication over TLS (test_plain_tcp_needs_tls_first).
        assert ALL_CLIENTS[client](users.host, users.port, user, password, tls=True).ok
    outcome = ALL_CLIENTS[client](
        users.host, users.port, user, password, tls=tls, statements=("SELECT 1", "SELECT CURRENT_USER()")
    )
    assert outcome.ok, outcome.message
    assert [str(v) for v in outcome.rows[0][0]] == ["1"]
    assert outcome.rows[1][0][0] == f"{user}@%"


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "plain"])
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("user", ["alice", "bob", "nobody"])
def test_wrong_password_and_unknown_user_get_the_same_reply(
    users: FeProcess, client: str, tls: bool, user: str
) -> None:
    outcome = ALL_CLIENTS[client](users.host, users.port, user, "wrong-password", tls=tls)
    if client == "connector_cext" and not tls:
        # libmysqlclient will not send a password that failed the fast path over plain TCP (CR 2061), for
        # existing and unknown users alike, mysql_native_password ones too: the server never sees it.
        assert outcome.errno == 2061 and "requires secure connection" in outcome.message
        return
    assert outcome.errno == 1045
    assert f"Access denied for user '{user}'@'127.0.0.1' (using password: YES)" in outcome.message
    assert users.alive


def test_plain_tcp_needs_tls_first(fe_server: FeProcess) -> None:
    root_execute(fe_server, "CREATE USER erin IDENTIFIED BY 'Erin-pw'")
    cold = ALL_CLIENTS["connector_pure"](fe_server.host, fe_server.port, "erin", "Erin-pw", tls=False)
    assert cold.errno == 1045 and "send the password over TLS" in cold.message
    # PyMySQL fetches the server's RSA public key and encrypts the password: works cold over plain TCP.
    assert ALL_CLIENTS["pymysql"](fe_server.host, fe_server.port, "erin", "Erin-pw", tls=False).ok
    assert ALL_CLIENTS["connector_pure"](fe_server.host, fe_server.port, "erin", "Erin-pw", tls=False).ok


def test_login_log_line(users: FeProcess) -> None:
    ALL_CLIENTS["pymysql"](users.host, users.port, "alice", "nope")
    line = users.wait_for_log(r"login user=alice .*outcome=failure reason=bad_password")
    assert "plugin=caching_sha2_password" in line and "client=127.0.0.1:" in line


def test_users_survive_restart(tmp_path) -> None:
    with running_fe(tmp_path, env={"FE_ROOT_PASSWORD": ROOT_PASSWORD}) as server:
        root_execute(server, "CREATE USER dave IDENTIFIED BY 'Dave-pw'")
    # A different root password on the second start must be ignored: it applies to the first start only.
    with running_fe(tmp_path, env={"FE_ROOT_PASSWORD": "other"}) as server:
        assert ALL_CLIENTS["pymysql"](server.host, server.port, "dave", "Dave-pw").ok
        assert ALL_CLIENTS["pymysql"](server.host, server.port, "root", ROOT_PASSWORD).ok


def test_require_secure_transport(tmp_path) -> None:
    with running_fe(
        tmp_path, extra_args=["--require-secure-transport"], env={"FE_ROOT_PASSWORD": ROOT_PASSWORD}
    ) as server:
        plain = ALL_CLIENTS["pymysql"](server.host, server.port, "root", ROOT_PASSWORD, tls=False)
        assert plain.errno == 3159
        assert ALL_CLIENTS["pymysql"](server.host, server.port, "root", ROOT_PASSWORD, tls=True).ok


def test_empty_root_password_refuses_public_address(tmp_path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "fe.cli", "serve", "--home", str(tmp_path), "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "root has an empty password" in done.stderr


def test_first_start_layout(tmp_path) -> None:
    with running_fe(tmp_path) as server:
        assert ALL_CLIENTS["pymysql"](server.host, server.port, "root", "").ok
    tls_dir = tmp_path / "meta" / "tls"
    assert (tmp_path / "meta" / "catalog.db").exists()
    assert (tls_dir / "server-key.pem").stat().st_mode & 0o777 == 0o600
    cert_before = (tls_dir / "server-cert.pem").read_bytes()
    with running_fe(tmp_path):
        pass
    assert (tls_dir / "server-cert.pem").read_bytes() == cert_before
