"""A token is a password, for every MySQL client: over TLS, with no client flag, a token user logs in with the
token given as the password — the MariaDB CLI, PyMySQL, Connector/Python (pure and C extension, and
libmysqlclient's mysql_clear_password), node's mysql2 — and never over plain TCP or with a bad token."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest

from fe.auth.devtools import generate_signing_key, mint_token
from tests.conftest import ROOT_PASSWORD, root_execute
from tests.support.clients import ALL_CLIENTS, Outcome, node_mysql2
from tests.support.scripted_client import SHA2, scripted_login
from tests.support.server import FeProcess, running_fe

ISSUER = "https://idp.example"
CLIENTS = {**ALL_CLIENTS, "node_mysql2": node_mysql2}
TLS = {"check_hostname": False, "verify_mode": 0}


@dataclass
class Lab:
    server: FeProcess
    key: object
    kid: str

    def token(self, sub: str, **claims: object) -> str:
        body = {"iss": ISSUER, "aud": "fe", "sub": sub, "exp": int(time.time()) + 600, **claims}
        return mint_token(self.key, "ES256", self.kid, body)  # type: ignore[arg-type]


def _start(home: Path, env: dict[str, str]) -> Iterator[Lab]:
    (home / "conf").mkdir()
    key, jwk = generate_signing_key("ES256")
    (home / "conf" / "idp.jwks").write_text(json.dumps({"keys": [jwk]}))
    spec = {"jwks_url": "idp.jwks", "required_issuer": ISSUER, "required_audience": "fe"}
    closed = {**spec, "token_as_password": False}
    with running_fe(home, env={"FE_ROOT_PASSWORD": ROOT_PASSWORD, **env}) as server:
        root_execute(
            server,
            f"CREATE USER tom IDENTIFIED WITH authentication_jwt AS '{json.dumps(spec)}'",
            f"CREATE USER ann IDENTIFIED WITH authentication_openid_connect AS '{json.dumps(spec)}'",
            f"CREATE USER norm IDENTIFIED WITH authentication_jwt AS '{json.dumps(closed)}'",
        )
        yield Lab(server, key, jwk["kid"])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from _start(tmp_path_factory.mktemp("fe-token-pw"), {})


def _login(lab: Lab, client: str, user: str, password: str, tls: bool = True, **extra: object) -> Outcome:
    statements = ("SELECT CURRENT_USER()",)
    return CLIENTS[client](lab.server.host, lab.server.port, user, password, tls=tls, statements=statements, **extra)


@pytest.mark.parametrize("client", sorted(CLIENTS))
@pytest.mark.parametrize("user", ["tom", "ann"])
def test_any_client_logs_in_with_the_token_as_its_password(lab: Lab, client: str, user: str) -> None:
    outcome = _login(lab, client, user, lab.token(user))
    assert outcome.ok, outcome.message
    assert str(outcome.rows[0][0][0]) == f"{user}@%"


def test_libmysqlclient_mysql_clear_password_sends_it_as_it_is(lab: Lab) -> None:
    outcome = _login(lab, "connector_cext", "tom", lab.token("tom"), auth_plugin="mysql_clear_password")
    assert outcome.ok, outcome.message
    lab.server.wait_for_log(r"login user=tom .*plugin=authentication_jwt tls=yes outcome=success")


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_never_over_plain_tcp(lab: Lab, client: str) -> None:
    try:
        outcome = _login(lab, client, "tom", lab.token("tom"), tls=False)
    except ValueError:
        return  # PyMySQL cannot fit a token into the server's RSA key: it never leaves the client
    # Either the client will not send a cleartext password there, or fe refuses it as it would any password.
    assert not outcome.ok, outcome


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_a_bad_token_is_refused_without_detail(lab: Lab, client: str) -> None:
    outcome = _login(lab, client, "tom", "not-a-token")
    assert outcome.errno == 1045
    assert outcome.message.endswith("(using password: YES)"), outcome.message


def test_a_token_for_someone_else_is_refused_with_the_reason(lab: Lab) -> None:
    """The signature verified against tom's own keys: the holder is told why."""
    outcome = _login(lab, "pymysql", "tom", lab.token("ann"))
    assert outcome.errno == 1045 and "does not match user 'tom'" in outcome.message


def test_a_user_can_be_kept_to_the_token_plugin(lab: Lab) -> None:
    outcome = _login(lab, "pymysql", "norm", lab.token("norm"))
    assert outcome.errno == 1045 and outcome.message.endswith("(using password: YES)")
    lab.server.wait_for_log(r"login user=norm .*outcome=failure reason=password_for_token_user")
    token_file = lab.server.home / "norm.token"
    token_file.write_text(lab.token("norm"))
    assert _login(lab, "connector_pure", "norm", "", openid_token_file=str(token_file)).ok


def test_a_token_never_enters_the_caching_sha2_fast_path(lab: Lab) -> None:
    token = lab.token("tom").encode()
    assert scripted_login(lab.server.host, lab.server.port, "tom", token, SHA2, tls=True).final[:1] == b"\x00"
    again = scripted_login(lab.server.host, lab.server.port, "tom", token, SHA2, tls=True)
    assert again.packets[0] == b"\x01\x04", "a scramble of the token took the fast path"
    assert again.final[:1] == b"\x00"


def test_the_openid_connect_plugin_still_works_with_an_empty_password(lab: Lab) -> None:
    token_file = lab.server.home / "tom.token"
    token_file.write_text(lab.token("tom"))
    for client in ("connector_pure", "connector_cext"):
        assert _login(lab, client, "tom", "", openid_token_file=str(token_file)).ok, client


def test_an_operator_can_turn_the_password_route_off(tmp_path: Path) -> None:
    for lab in _start(tmp_path, {"FE_TOKEN_AS_PASSWORD": "false"}):
        outcome = _login(lab, "pymysql", "tom", lab.token("tom"))
        assert outcome.errno == 1045
        lab.server.wait_for_log(r"login user=tom .*outcome=failure reason=password_for_token_user")


def test_with_token_session_policy_expire_a_session_ends_with_its_token(tmp_path: Path) -> None:
    env = {"FE_TOKEN_SESSION_POLICY": "expire", "FE_JWT_LEEWAY_SECONDS": "0"}
    for lab in _start(tmp_path, env):
        short = lab.token("tom", exp=int(time.time()) + 3)
        connection = pymysql.connect(
            host=lab.server.host, port=lab.server.port, user="tom", password=short, ssl=TLS, connect_timeout=10
        )
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                time.sleep(max(0.0, json.loads(_claims(short))["exp"] - time.time()) + 0.5)
                with pytest.raises(pymysql.err.OperationalError) as ended:
                    cursor.execute("SELECT 1")
            assert ended.value.args[0] == 1045 and "expired at" in ended.value.args[1]
        finally:
            connection.close()
        lab.server.wait_for_log(r"session user=tom .*ended: its token expired")


def test_change_user_with_a_fresh_token_renews_an_expiring_session(tmp_path: Path) -> None:
    import mysql.connector

    env = {"FE_TOKEN_SESSION_POLICY": "expire", "FE_JWT_LEEWAY_SECONDS": "0"}
    for lab in _start(tmp_path, env):
        short = lab.token("tom", exp=int(time.time()) + 3)
        connection = mysql.connector.connect(
            host=lab.server.host, port=lab.server.port, user="tom", password=short, use_pure=True,
            ssl_verify_cert=False,
        )  # fmt: skip
        try:
            connection.cmd_change_user(username="tom", password=lab.token("tom"))
            time.sleep(max(0.0, json.loads(_claims(short))["exp"] - time.time()) + 0.5)
            cursor = connection.cursor()
            cursor.execute("SELECT CURRENT_USER()")
            assert cursor.fetchall() == [("tom@%",)]
        finally:
            connection.close()


def _claims(token: str) -> str:
    payload = token.split(".")[1]
    return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
