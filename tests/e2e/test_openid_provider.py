"""End to end with a real OpenID provider process (PyPI's oidc-provider-mock): the authorization-code flow
yields an ID token, and that token logs in to fe through both Connector/Python client plugins."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import root_execute
from tests.support.clients import ALL_CLIENTS
from tests.support.processes import free_port
from tests.support.server import FeProcess

CLIENT_ID = "fe-e2e"
CLIENT_SECRET = "fe-e2e-secret"
REDIRECT_URI = "http://127.0.0.1:9/callback"


@pytest.fixture(scope="module")
def provider() -> Iterator[dict[str, str]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                discovery = httpx.get(f"{base}/.well-known/openid-configuration", timeout=2).json()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the OpenID provider did not start") from None
                time.sleep(0.1)
        yield discovery
    finally:
        process.terminate()
        process.wait(10)


def id_token_for(discovery: dict[str, str], subject: str) -> str:
    """The authorization-code flow, as a browser and a relying party would run it."""
    state, nonce = secrets.token_urlsafe(8), secrets.token_urlsafe(8)
    params = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": "openid profile",
        "state": state,
        "nonce": nonce,
    }
    with httpx.Client(timeout=10) as browser:
        form = browser.get(discovery["authorization_endpoint"], params=params)
        assert form.status_code == 200 and 'name="sub"' in form.text
        consent = browser.post(discovery["authorization_endpoint"], params=params, data={"sub": subject})
        assert consent.status_code in (302, 303), consent.text
        callback = urlsplit(consent.headers["location"])
        query = parse_qs(callback.query)
        assert query["state"] == [state]
        token = browser.post(
            discovery["token_endpoint"],
            data={"grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": REDIRECT_URI},
            auth=(CLIENT_ID, CLIENT_SECRET),
        )
        assert token.status_code == 200, token.text
        return token.json()["id_token"]


@pytest.mark.parametrize("client", ["connector_pure", "connector_cext"])
def test_id_token_from_a_real_provider_logs_in(
    fe_server: FeProcess, provider: dict[str, str], tmp_path, client: str
) -> None:
    spec = {
        "jwks_url": provider["jwks_uri"],
        "principal_field": "sub",
        "required_issuer": provider["issuer"],
        "required_audience": CLIENT_ID,
    }
    root_execute(
        fe_server,
        f"CREATE USER IF NOT EXISTS alice IDENTIFIED WITH authentication_openid_connect AS '{json.dumps(spec)}'",
    )
    token_file = tmp_path / "id_token"
    token_file.write_text(id_token_for(provider, "alice"))
    outcome = ALL_CLIENTS[client](
        fe_server.host,
        fe_server.port,
        "alice",
        tls=True,
        openid_token_file=str(token_file),
        statements=("SELECT CURRENT_USER()",),
    )
    assert outcome.ok, outcome.message
    assert outcome.rows[0][0][0] == "alice@%"

    # The provider's token for someone else does not open alice's account.
    token_file.write_text(id_token_for(provider, "mallory"))
    outcome = ALL_CLIENTS[client](fe_server.host, fe_server.port, "alice", tls=True, openid_token_file=str(token_file))
    assert outcome.errno == 1045 and "does not match user 'alice'" in outcome.message
