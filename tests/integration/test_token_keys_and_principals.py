"""From outside, against `fe serve` with a real HTTPS key server and the default 30 s unknown-kid cooldown:
a JSON-Pointer principal_field logs in with Connector/Python's openid_token_file; a malformed pointer and an
http:// key URL are dealt with at CREATE USER; a key the identity provider publishes right after fe fetched its
set works at once; a flood of random kids costs at most two fetches."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pymysql
import pytest

from fe.auth.devtools import generate_signing_key, mint_token
from tests.auth.jwks_server import make_tls_material
from tests.conftest import ROOT_PASSWORD, root_connection, root_execute
from tests.support.clients import Outcome, connector_pure
from tests.support.jwks_https import JwksHttpsServer
from tests.support.rawclient import RawClient, error_of
from tests.support.server import FeProcess, running_fe

ISSUER = "https://idp.example/realms/main"


@dataclass
class Idp:
    """One identity provider: its current signing key and the JWKS path it publishes."""

    keys: JwksHttpsServer
    path: str
    signing: list[tuple[object, str]] = field(default_factory=list)  # (private key, kid), newest last

    @property
    def url(self) -> str:
        return self.keys.url(self.path)

    @property
    def fetches(self) -> int:
        return self.keys.requests[self.path]

    def rotate(self) -> None:
        """Publish a new key (only it) and sign with it from now on."""
        private, jwk = generate_signing_key("RS256")
        self.signing.append((private, jwk["kid"]))
        self.keys.serve(self.path, {"keys": [jwk]})

    def token(self, kid: str | None = None, **claims: object) -> str:
        private, current_kid = self.signing[-1]
        now = int(time.time())
        body = {"iss": ISSUER, "aud": "fe", "sub": "f81d4fae", "iat": now, "exp": now + 600, **claims}
        return mint_token(private, "RS256", kid or current_kid, body)


@dataclass
class Setup:
    server: FeProcess
    keys: JwksHttpsServer
    tokens_dir: Path

    def idp(self, path: str) -> Idp:
        idp = Idp(self.keys, path)
        idp.rotate()
        return idp

    def login(self, user: str, token: str) -> Outcome:
        token_file = self.tokens_dir / f"{user}-{time.monotonic_ns()}.token"
        token_file.write_text(token)
        return connector_pure(
            self.server.host,
            self.server.port,
            user,
            "",
            tls=True,
            openid_token_file=str(token_file),
            statements=("SELECT CURRENT_USER()",),
        )

    def create_user(self, name: str, **spec: object) -> None:
        doc = {"required_issuer": ISSUER, "required_audience": "fe", **spec}
        root_execute(self.server, f"CREATE USER {name} IDENTIFIED WITH authentication_jwt AS '{json.dumps(doc)}'")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    home = tmp_path_factory.mktemp("fe-keys-home")
    (home / "conf").mkdir()
    tls_context, ca_file = make_tls_material(home / "conf" / "ca")
    keys = JwksHttpsServer(tls_context).start()
    env = {"FE_ROOT_PASSWORD": ROOT_PASSWORD, "FE_JWKS_CA_BUNDLE": str(ca_file)}  # the default 30 s cooldown
    try:
        with running_fe(home, env=env) as server:
            yield Setup(server, keys, tmp_path_factory.mktemp("tokens"))
    finally:
        keys.stop()


def test_pointer_principal_logs_in(setup: Setup) -> None:
    idp = setup.idp("/pointer/certs")
    setup.create_user("tom", jwks_url=idp.url, principal_field="/realm_access/username")
    outcome = setup.login("tom", idp.token(realm_access={"username": "tom", "roles": ["dev"]}))
    assert outcome.ok, outcome.message
    assert outcome.rows == [[["tom@%"]]]

    escaped = setup.idp("/escaped/certs")
    setup.create_user("data_eng", jwks_url=escaped.url, principal_field="/https:~1~1sts.amazonaws.com~1/tags/0")
    outcome = setup.login("data_eng", escaped.token(**{"https://sts.amazonaws.com/": {"tags": ["data_eng", "x"]}}))
    assert outcome.ok, outcome.message


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"realm_access": {"username": "Tom"}}, "principal_mismatch"),
        ({"realm_access": {"username": ["tom"]}}, "principal_mismatch"),
        ({"realm_access": {}}, "principal_missing"),
        ({"preferred_username": "tom"}, "principal_missing"),
    ],
)
def test_pointer_principal_must_match_exactly(setup: Setup, claims: dict[str, object], reason: str) -> None:
    idp = setup.idp(f"/mismatch-{reason}-{len(claims)}/certs")
    name = f"pm_{secrets.token_hex(4)}"
    setup.create_user(name, jwks_url=idp.url, principal_field="/realm_access/username")
    outcome = setup.login(name, idp.token(**claims))
    assert outcome.errno == 1045
    setup.server.wait_for_log(rf"login user={name} .*outcome=failure reason={reason}\b")


def show_warnings_after(setup: Setup, statement: str) -> list[tuple[object, ...]]:
    """SHOW WARNINGS on the root session that just ran `statement`."""
    connection = root_connection(setup.server)
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
            cursor.execute("SHOW WARNINGS")
            return list(cursor.fetchall())
    finally:
        connection.close()


def test_malformed_pointer_is_refused_at_create_user(setup: Setup) -> None:
    spec = json.dumps({"jwks_url": "https://idp.example/certs", "principal_field": "/realm_access/~2"})
    with pytest.raises(pymysql.err.OperationalError) as info:
        root_execute(setup.server, f"CREATE USER badptr IDENTIFIED WITH authentication_jwt AS '{spec}'")
    code, message = info.value.args
    assert code == 1210
    assert "'principal_field' '/realm_access/~2' is not a valid JSON Pointer: bad escape '~2'" in message
    users = root_execute(setup.server, "SHOW USERS")
    assert not any("badptr" in str(row) for row in users)


def test_plain_http_key_url_gets_a_warning(setup: Setup) -> None:
    spec = json.dumps({"jwks_url": "http://127.0.0.1:9/certs", "required_audience": "fe"})
    warnings = show_warnings_after(setup, f"CREATE USER plainhttp IDENTIFIED WITH authentication_jwt AS '{spec}'")
    ((level, code, message),) = warnings
    assert (level, code) == ("Warning", 1210)
    assert "plain http://" in message and "replaced in flight" in message


def test_a_key_published_right_after_a_fetch_works_at_once(setup: Setup) -> None:
    idp = setup.idp("/rotation/certs")
    setup.create_user("jerry", jwks_url=idp.url, principal_field="preferred_username")
    assert setup.login("jerry", idp.token(preferred_username="jerry")).ok
    assert idp.fetches == 1

    # The identity provider rotates and signs with the new key at once: fe refetches at once, well within the
    # 30 s cooldown of its last fetch.
    idp.rotate()
    outcome = setup.login("jerry", idp.token(preferred_username="jerry"))
    assert outcome.ok, outcome.message
    assert idp.fetches == 2
    setup.server.wait_for_log(r"login user=jerry .*outcome=success")

    # A second rotation inside the cooldown of that refetch waits for the bucket to refill (30 s): refused.
    idp.rotate()
    assert setup.login("jerry", idp.token(preferred_username="jerry")).errno == 1045
    setup.server.wait_for_log(r"login user=jerry .*outcome=failure reason=unknown_kid\b")
    assert idp.fetches == 2


def test_a_random_kid_flood_costs_at_most_two_fetches(setup: Setup) -> None:
    idp = setup.idp("/flood/certs")
    setup.create_user("spike", jwks_url=idp.url, principal_field="preferred_username")
    assert setup.login("spike", idp.token(preferred_username="spike")).ok

    def attempt(_: int) -> int:
        forged = idp.token(kid=secrets.token_urlsafe(12), preferred_username="spike")
        client = RawClient(setup.server.host, setup.server.port)
        try:
            return error_of(client.token_login("spike", forged.encode()))[0]
        finally:
            client.close()

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(attempt, range(64)))
    assert codes == [1045] * 64
    assert idp.fetches <= 2  # the first fetch, and one refetch for the whole flood
    assert setup.login("spike", idp.token(preferred_username="spike")).ok  # the good key survived
