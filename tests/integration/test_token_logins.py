"""Token logins with the real client plugins: Connector/Python pure, and the C extension running Oracle's own
libmysqlclient `authentication_openid_connect_client`, against keys in a local file and on a real HTTPS server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fe.auth.devtools import generate_signing_key, mint_token
from tests.auth.jwks_server import make_tls_material
from tests.conftest import EVENT_LOOPS, ROOT_PASSWORD, root_execute
from tests.support.clients import ALL_CLIENTS
from tests.support.jwks_https import JwksHttpsServer
from tests.support.server import FeProcess, running_fe

TOKEN_CLIENTS = ["connector_pure", "connector_cext"]
LOCAL_ISSUER = "https://issuer.local"
REMOTE_ISSUER = "https://idp.example/realms/main"
KID_COOLDOWN = 1.0


@dataclass
class Setup:
    server: FeProcess
    keys: JwksHttpsServer
    tokens_dir: Path
    local_key: object
    local_kid: str
    remote_key: object
    remote_kid: str

    def token_file(self, name: str, token: str) -> str:
        path = self.tokens_dir / f"{name}-{time.monotonic_ns()}.token"
        path.write_text(token)
        return str(path)

    def local_token(self, sub: str = "tom", **claims: object) -> str:
        now = int(time.time())
        body = {"iss": LOCAL_ISSUER, "aud": "fe", "sub": sub, "iat": now, "exp": now + 600, **claims}
        return mint_token(self.local_key, "ES256", self.local_kid, {k: v for k, v in body.items() if v is not None})

    def remote_token(self, username: str = "jerry", **claims: object) -> str:
        now = int(time.time())
        body = {
            "iss": REMOTE_ISSUER,
            "aud": ["account", "fe"],
            "sub": "f81d4fae-7dec",
            "iat": now,
            "exp": now + 600,
            "preferred_username": username,
            **claims,
        }
        return mint_token(self.remote_key, "RS256", self.remote_kid, body)


@pytest.fixture(scope="module", params=EVENT_LOOPS)
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    home = tmp_path_factory.mktemp("fe-token-home")
    (home / "conf").mkdir()
    tls_context, ca_file = make_tls_material(home / "conf" / "ca")
    keys = JwksHttpsServer(tls_context).start()
    local_key, local_jwk = generate_signing_key("ES256")
    (home / "conf" / "local.jwks").write_text(json.dumps({"keys": [local_jwk]}))
    remote_key, remote_jwk = generate_signing_key("RS256")
    jwks_url = keys.serve("/realms/main/certs", {"keys": [remote_jwk]})
    env = {
        "FE_ROOT_PASSWORD": ROOT_PASSWORD,
        "FE_JWKS_CA_BUNDLE": str(ca_file),
        "FE_JWKS_UNKNOWN_KID_COOLDOWN_SECONDS": str(KID_COOLDOWN),
        "FE_EVENT_LOOP": request.param,
    }
    tokens_dir = tmp_path_factory.mktemp("tokens")
    with running_fe(home, env=env) as server:
        local_spec = {
            "jwks_url": "local.jwks",
            "principal_field": "sub",
            "required_issuer": LOCAL_ISSUER,
            "required_audience": "fe",
        }
        remote_spec = {
            "jwks_url": jwks_url,
            "principal_field": "preferred_username",
            "required_issuer": REMOTE_ISSUER,
            "required_audience": "fe",
        }
        root_execute(
            server,
            f"CREATE USER tom IDENTIFIED WITH authentication_openid_connect AS '{json.dumps(local_spec)}'",
            f"CREATE USER jerry IDENTIFIED WITH authentication_jwt AS '{json.dumps(remote_spec)}'",
            f"CREATE USER spike IDENTIFIED WITH AUTHENTICATION_JWT AS '{json.dumps(local_spec)}'",
            "CREATE USER pat IDENTIFIED BY 'Pat-pw-1'",
        )
        yield Setup(server, keys, tokens_dir, local_key, local_jwk["kid"], remote_key, remote_jwk["kid"])
    keys.stop()


def login(setup: Setup, client: str, user: str, token: str, **extra: object):
    return ALL_CLIENTS[client](
        setup.server.host,
        setup.server.port,
        user,
        "",
        tls=True,
        openid_token_file=setup.token_file(user, token),
        statements=("SELECT CURRENT_USER()", "SELECT USER()"),
        **extra,
    )


@pytest.mark.parametrize("client", TOKEN_CLIENTS)
@pytest.mark.parametrize("user", ["tom", "jerry", "spike"])
def test_token_login(setup: Setup, client: str, user: str) -> None:
    token = setup.remote_token(user) if user == "jerry" else setup.local_token(user)
    outcome = login(setup, client, user, token)
    assert outcome.ok, outcome.message
    assert outcome.rows[0][0][0] == f"{user}@%"
    assert outcome.rows[1][0][0] == f"{user}@127.0.0.1"


@pytest.mark.parametrize("client", TOKEN_CLIENTS)
def test_token_in_the_handshake_response(setup: Setup, client: str) -> None:
    """The client names the OIDC plugin up front: the token rides in HandshakeResponse41, no switch."""
    outcome = login(setup, client, "tom", setup.local_token(), auth_plugin="authentication_openid_connect_client")
    assert outcome.ok, outcome.message


def test_login_log_line_for_tokens(setup: Setup) -> None:
    assert login(setup, "connector_pure", "jerry", setup.remote_token()).ok
    line = setup.server.wait_for_log(r"login user=jerry .*plugin=authentication_jwt tls=yes outcome=success")
    assert "reason=ok" in line


REJECTIONS = [
    ("expired", {"exp": int(time.time()) - 3600}, "expired"),
    ("not_yet_valid", {"nbf": int(time.time()) + 3600}, "not_yet_valid"),
    ("wrong_issuer", {"iss": LOCAL_ISSUER + "/"}, "wrong_issuer"),
    ("wrong_audience", {"aud": "FE"}, "wrong_audience"),
    ("principal_case", {"sub": "Tom"}, "principal_mismatch"),
    ("no_exp", {"exp": None}, "exp_missing"),
]


@pytest.mark.parametrize("client", TOKEN_CLIENTS)
@pytest.mark.parametrize(("name", "claims", "reason"), REJECTIONS, ids=[r[0] for r in REJECTIONS])
def test_rejected_tokens_name_the_reason(setup: Setup, client: str, name: str, claims: dict, reason: str) -> None:
    claims = dict(claims)
    sub = claims.pop("sub", "tom")
    outcome = login(setup, client, "tom", setup.local_token(sub, **claims))
    assert outcome.errno == 1045
    assert outcome.message.startswith("Access denied for user 'tom'@'127.0.0.1' (using password: YES): ")
    setup.server.wait_for_log(rf"login user=tom .*outcome=failure reason={reason}\b")


def test_token_signed_by_another_users_key_is_refused(setup: Setup) -> None:
    """jerry's key set (remote) must not verify a token meant for tom's (local) set, and vice versa."""
    forged = setup.remote_token("tom", iss=LOCAL_ISSUER, aud="fe", sub="tom")
    outcome = login(setup, "connector_pure", "tom", forged)
    # Its signature never verified: the client learns nothing of tom's keys; the log has the reason.
    assert outcome.errno == 1045 and outcome.message == "Access denied for user 'tom'@'127.0.0.1' (using password: YES)"
    setup.server.wait_for_log(r"login user=tom .*outcome=failure reason=unknown_kid .*detail=.*unknown key id")


def test_token_without_tls_is_refused(setup: Setup) -> None:
    outcome = ALL_CLIENTS["connector_pure"](
        setup.server.host,
        setup.server.port,
        "tom",
        "",
        tls=False,
        openid_token_file=setup.token_file("tom", setup.local_token()),
    )
    # The client plugin sends no token over plain TCP; the refusal is an unknown user's (using password: NO), and
    # the log says why.
    assert outcome.errno == 1045 and "(using password: NO)" in outcome.message
    setup.server.wait_for_log(r"login user=tom .*tls=no outcome=failure reason=insecure_transport")


def test_password_user_sending_a_token_is_refused(setup: Setup) -> None:
    outcome = login(
        setup, "connector_pure", "pat", setup.local_token("pat"), auth_plugin="authentication_openid_connect_client"
    )
    assert outcome.errno == 1045


@pytest.mark.parametrize("client", ["connector_pure", "pymysql", "mariadb_cli"])
def test_token_user_sending_a_password_is_refused(setup: Setup, client: str) -> None:
    outcome = ALL_CLIENTS[client](setup.server.host, setup.server.port, "tom", "some-password", tls=True)
    assert outcome.errno == 1045


def test_change_user_to_a_token_user(setup: Setup) -> None:
    import mysql.connector

    connection = mysql.connector.connect(
        host=setup.server.host,
        port=setup.server.port,
        user="pat",
        password="Pat-pw-1",
        use_pure=True,
        ssl_verify_cert=False,
    )
    try:
        connection.cmd_change_user(username="tom", openid_token_file=setup.token_file("tom", setup.local_token()))
        cursor = connection.cursor()
        cursor.execute("SELECT CURRENT_USER()")
        assert cursor.fetchall() == [("tom@%",)]
    finally:
        connection.close()


def test_key_rotation_and_key_server_outage(setup: Setup) -> None:
    assert login(setup, "connector_pure", "jerry", setup.remote_token()).ok
    # The identity provider rotates to a new key: a token with the new kid triggers one refetch.
    new_key, new_jwk = generate_signing_key("RS256")
    setup.keys.serve("/realms/main/certs", {"keys": [new_jwk]})
    setup.remote_key, setup.remote_kid = new_key, new_jwk["kid"]
    rotated = setup.remote_token()
    time.sleep(KID_COOLDOWN)  # an unknown kid refetches at most once per cooldown since the last fetch
    before = setup.keys.requests["/realms/main/certs"]
    assert login(setup, "connector_pure", "jerry", rotated).ok
    assert setup.keys.requests["/realms/main/certs"] == before + 1
    # The key server goes down: the keys already fetched keep working.
    setup.keys.down = True
    try:
        assert login(setup, "connector_cext", "jerry", setup.remote_token()).ok
    finally:
        setup.keys.down = False


def test_unknown_kid_flood_costs_one_fetch(setup: Setup) -> None:
    import secrets
    from concurrent.futures import ThreadPoolExecutor

    from tests.support.rawclient import RawClient, error_of

    time.sleep(KID_COOLDOWN)
    before = setup.keys.requests["/realms/main/certs"]
    now = int(time.time())

    def attempt(_: int) -> int:
        forged = mint_token(
            setup.remote_key,
            "RS256",
            secrets.token_urlsafe(12),
            {"iss": REMOTE_ISSUER, "aud": "fe", "exp": now + 600, "preferred_username": "jerry"},
        )
        client = RawClient(setup.server.host, setup.server.port)
        try:
            return error_of(client.token_login("jerry", forged.encode()))[0]
        finally:
            client.close()

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(attempt, range(64)))
    assert codes == [1045] * 64
    assert setup.keys.requests["/realms/main/certs"] - before <= 1
    assert login(setup, "connector_pure", "jerry", setup.remote_token()).ok  # the good keys survived the flood


def test_show_status_counts_logins_and_key_fetches(setup: Setup) -> None:
    assert login(setup, "connector_pure", "jerry", setup.remote_token()).ok
    assert login(setup, "connector_pure", "tom", setup.local_token(exp=int(time.time()) - 3600)).errno == 1045
    status = dict(root_execute(setup.server, "SHOW GLOBAL STATUS"))
    assert int(status["Fe_logins_succeeded"]) >= 2  # jerry, and root running this statement
    assert int(status["Fe_login_failures_expired"]) >= 1
    assert int(status["Fe_jwks_fetches"]) >= 1 and int(status["Threads_connected"]) >= 1
    # COM_CHANGE_USER logs in again on the same connection, so logins may outnumber connections.
    assert int(status["Connections"]) >= 3 and int(status["Aborted_connects"]) == int(status["Fe_logins_failed"])
