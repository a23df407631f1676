"""`fe serve` fetching a token user's keys through a real forward proxy (tinyproxy) set with jwks_https_proxy: the
key fetch is a CONNECT tunnel through it, the login succeeds, and an HTTPS_PROXY in fe's environment is ignored.

Skipped when tinyproxy is not installed, unless FE_TESTS_REQUIRE_TINYPROXY is set (then failed)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fe.auth.devtools import generate_signing_key, mint_token
from tests.auth.jwks_server import make_tls_material
from tests.conftest import ROOT_PASSWORD, root_execute
from tests.support.clients import connector_pure
from tests.support.jwks_https import JwksHttpsServer
from tests.support.server import FeProcess, running_fe
from tests.support.tinyproxy import Tinyproxy

ISSUER = "https://idp.example/realms/main"


@dataclass
class Setup:
    server: FeProcess
    keys: JwksHttpsServer
    proxy: Tinyproxy
    home: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    proxy = Tinyproxy().start()
    home = tmp_path_factory.mktemp("fe-proxy-home")
    (home / "conf").mkdir()
    tls_context, ca_file = make_tls_material(home / "conf" / "ca")
    keys = JwksHttpsServer(tls_context).start()
    env = {
        "FE_ROOT_PASSWORD": ROOT_PASSWORD,
        "FE_JWKS_CA_BUNDLE": str(ca_file),
        "FE_JWKS_HTTPS_PROXY": proxy.url,
        # Were these used, every fetch would fail: nothing listens on port 9.
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "ALL_PROXY": "http://127.0.0.1:9",
    }
    try:
        with running_fe(home, env=env) as server:
            yield Setup(server, keys, proxy, home)
    finally:
        keys.stop()
        proxy.stop()


def test_keys_are_fetched_through_the_configured_proxy(setup: Setup) -> None:
    private, jwk = generate_signing_key("RS256")
    url = setup.keys.serve("/realms/main/certs", {"keys": [jwk]})
    spec = {"jwks_url": url, "principal_field": "/realm/user", "required_issuer": ISSUER, "required_audience": "fe"}
    root_execute(setup.server, f"CREATE USER jerry IDENTIFIED WITH authentication_jwt AS '{json.dumps(spec)}'")
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "fe", "iat": now, "exp": now + 600, "realm": {"user": "jerry"}}
    token_file = setup.home / "jerry.token"
    token_file.write_text(mint_token(private, "RS256", jwk["kid"], claims))

    outcome = connector_pure(
        setup.server.host,
        setup.server.port,
        "jerry",
        "",
        tls=True,
        openid_token_file=str(token_file),
        statements=("SELECT CURRENT_USER()",),
    )
    assert outcome.ok, outcome.message
    assert outcome.rows == [[["jerry@%"]]]
    assert setup.keys.requests["/realms/main/certs"] == 1
    setup.proxy.wait_for_request(f"CONNECT 127.0.0.1:{setup.keys.port} ")
