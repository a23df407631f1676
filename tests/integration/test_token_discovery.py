"""From outside, against `fe serve` and a real HTTPS identity provider stand-in (its own CA in jwks_ca_bundle):
a token user created with only required_issuer finds its keys through OpenID Connect Discovery, and logs in with
Connector/Python's openid_token_file and with the token as PyMySQL's password. Many logins cost one discovery
fetch; a token from an issuer the user does not list makes fe fetch nothing; a discovery document for another
issuer refuses the login, saying so in the log only; an http:// issuer is refused at CREATE USER."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest

from fe.auth.devtools import generate_signing_key, mint_token
from tests.auth.jwks_server import make_tls_material
from tests.conftest import ROOT_PASSWORD, root_execute
from tests.support.clients import Outcome, connector_pure, pymysql_client
from tests.support.jwks_https import JwksHttpsServer
from tests.support.server import FeProcess, running_fe

WELL_KNOWN = "/.well-known/openid-configuration"
GENERIC = "Access denied for user '{user}'@'127.0.0.1' (using password: YES)"


@dataclass
class Provider:
    """An issuer at `prefix` on the HTTPS server: its discovery document, its JWKS and its signing key."""

    server: JwksHttpsServer
    prefix: str
    says_issuer: str | None = None  # what its discovery document claims; None: itself

    def __post_init__(self) -> None:
        self.private, jwk = generate_signing_key("RS256")
        self.kid = jwk["kid"]
        self.server.serve(f"{self.prefix}/certs", {"keys": [jwk]})
        document = {"issuer": self.says_issuer or self.issuer, "jwks_uri": self.server.url(f"{self.prefix}/certs")}
        self.server.serve(self.prefix + WELL_KNOWN, document)

    @property
    def issuer(self) -> str:
        return self.server.url(self.prefix)

    def token(self, sub: str, **claims: object) -> str:
        now = int(time.time())
        body = {"iss": self.issuer, "sub": sub, "iat": now, "exp": now + 600, **claims}
        return mint_token(self.private, "RS256", self.kid, body)

    @property
    def fetches(self) -> tuple[int, int]:
        return self.server.requests[self.prefix + WELL_KNOWN], self.server.requests[f"{self.prefix}/certs"]


@dataclass
class Setup:
    server: FeProcess
    https: JwksHttpsServer
    tokens: Path

    def plugin_login(self, user: str, token: str) -> Outcome:
        token_file = self.tokens / f"{user}-{time.monotonic_ns()}.token"
        token_file.write_text(token)
        return connector_pure(
            self.server.host,
            self.server.port,
            user,
            tls=True,
            openid_token_file=str(token_file),
            statements=("SELECT CURRENT_USER()",),
        )

    def password_login(self, user: str, token: str) -> Outcome:
        return pymysql_client(self.server.host, self.server.port, user, token, statements=("SELECT CURRENT_USER()",))

    def create_user(self, name: str, spec: dict[str, object]) -> list[tuple]:
        return root_execute(
            self.server,
            f"CREATE USER {name} IDENTIFIED WITH authentication_openid_connect AS '{json.dumps(spec)}'",
            "SHOW WARNINGS",
        )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    home = tmp_path_factory.mktemp("fe-discovery-home")
    (home / "conf").mkdir()
    tls_context, ca_file = make_tls_material(home / "conf" / "ca")
    https = JwksHttpsServer(tls_context).start()
    env = {"FE_ROOT_PASSWORD": ROOT_PASSWORD, "FE_JWKS_CA_BUNDLE": str(ca_file)}
    try:
        with running_fe(home, env=env) as server:
            yield Setup(server, https, tmp_path_factory.mktemp("tokens"))
    finally:
        https.stop()


def test_a_user_with_only_required_issuer_logs_in_through_discovery(setup: Setup) -> None:
    idp = Provider(setup.https, "/realms/main")
    warnings = setup.create_user("tom", {"required_issuer": idp.issuer})
    assert [w[2] for w in warnings] == [
        "'required_audience' is not set: a token this identity provider issued to any other application will be "
        "accepted for this user"
    ]
    [row] = root_execute(setup.server, "SHOW AUTHENTICATION FOR tom")
    assert json.loads(row[3]) == {"principal_field": "sub", "required_issuer": [idp.issuer]}  # no jwks_url
    assert idp.fetches == (0, 0)  # nothing is fetched at CREATE USER

    outcome = setup.plugin_login("tom", idp.token("tom"))
    assert outcome.ok, outcome.message
    assert outcome.rows == [[["tom@%"]]]
    outcome = setup.password_login("tom", idp.token("tom"))
    assert outcome.ok, outcome.message
    assert outcome.rows == [[["tom@%"]]]
    for _ in range(5):
        assert setup.password_login("tom", idp.token("tom")).ok
        assert setup.plugin_login("tom", idp.token("tom")).ok
    assert idp.fetches == (1, 1)
    setup.server.wait_for_log(r"discovery document of https://127\.0\.0\.1:\d+/realms/main: jwks_uri https://")

    # Once the signature verified, the reason reaches the client.
    outcome = setup.password_login("tom", idp.token("Tom"))
    assert outcome.errno == 1045 and "does not match user 'tom'" in outcome.message


def test_an_issuer_the_user_does_not_list_is_never_contacted(setup: Setup) -> None:
    idp = Provider(setup.https, "/realms/listed")
    stranger = Provider(setup.https, "/realms/stranger")
    setup.create_user("ann", {"required_issuer": idp.issuer, "required_audience": "fe"})
    outcome = setup.plugin_login("ann", stranger.token("ann", aud="fe"))
    assert (outcome.errno, outcome.message) == (1045, GENERIC.format(user="ann"))
    setup.server.wait_for_log(r"login user=ann .*outcome=failure reason=wrong_issuer .*not fetched")
    assert stranger.fetches == (0, 0) and idp.fetches == (0, 0)
    assert setup.password_login("ann", idp.token("ann", aud="fe")).ok


def test_a_discovery_document_naming_another_issuer_refuses_the_login(setup: Setup) -> None:
    idp = Provider(setup.https, "/realms/mixed-up", says_issuer="https://idp.example/realms/other")
    setup.create_user("bob", {"required_issuer": idp.issuer, "required_audience": "fe"})
    outcome = setup.password_login("bob", idp.token("bob", aud="fe"))
    assert (outcome.errno, outcome.message) == (1045, GENERIC.format(user="bob"))
    line = setup.server.wait_for_log(r"login user=bob .*outcome=failure reason=key_set_invalid")
    assert f"discovery document of {idp.issuer}" in line and "says issuer 'https://idp.example/realms/other'" in line
    assert idp.fetches == (1, 0)  # the keys it names were never fetched


def test_an_http_issuer_is_refused_at_create_user(setup: Setup) -> None:
    with pytest.raises(pymysql.err.MySQLError) as info:
        setup.create_user("lab", {"required_issuer": "http://127.0.0.1:8080/realms/lab"})
    assert info.value.args[0] == 1210
    assert "is plain http://" in info.value.args[1] and "discovery_allow_http" in info.value.args[1]
