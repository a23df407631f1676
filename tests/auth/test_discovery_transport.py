"""Discovery documents travel like key sets: through the configured forward proxy (a real tinyproxy), with the
CA bundle checked end to end, on the same client; and the setting discovery_allow_http reaches the verifier.

The proxy tests skip when tinyproxy is not installed, unless FE_TESTS_REQUIRE_TINYPROXY is set (then fail)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fe.auth.token_spec import TokenAuthSpec
from fe.auth.verifier import TokenRejected, TokenVerifier
from fe.config import Settings, load_settings
from fe.server import app
from tests.auth.jose_helpers import FakeClock, claims_for, jwk_with, jwks, mint
from tests.auth.jwks_server import JwksServer
from tests.support.tinyproxy import Tinyproxy

SHIPPED_CONF = Path(__file__).resolve().parents[2] / "conf" / "fe.conf"
WELL_KNOWN = "/.well-known/openid-configuration"


@pytest.fixture
def proxy() -> Iterator[Tinyproxy]:
    started = Tinyproxy().start()
    yield started
    started.stop()


def publish(server: JwksServer) -> TokenAuthSpec:
    issuer = server.url("/idp")
    server.serve("/idp/certs", jwks(jwk_with("ES256")))
    server.serve("/idp" + WELL_KNOWN, {"issuer": issuer, "jwks_uri": server.url("/idp/certs")})
    return TokenAuthSpec("", required_issuer=(issuer,))


def token(spec: TokenAuthSpec, clock: FakeClock) -> str:
    assert spec.required_issuer is not None
    return mint("ES256", claims_for("tom", clock.now, iss=spec.required_issuer[0]))


async def test_https_discovery_goes_through_a_connect_tunnel_with_the_certificate_checked(
    proxy: Tinyproxy,
    tls_jwks_server: JwksServer,
    make_verifier: Callable[..., TokenVerifier],
    clock: FakeClock,
    home: Path,
) -> None:
    spec = publish(tls_jwks_server)
    verifier = make_verifier(https_proxy=proxy.url, ca_bundle=home / "conf/tls/test-ca.pem")
    assert await verifier.verify(token(spec, clock), "tom", spec)
    tunnels = [line for line in proxy.requests() if line.startswith(f"CONNECT 127.0.0.1:{tls_jwks_server.port} ")]
    assert len(tunnels) >= 1 and not any(line.startswith("GET") for line in proxy.requests())
    assert tls_jwks_server.requests == {"/idp" + WELL_KNOWN: 1, "/idp/certs": 1}

    untrusting = make_verifier(https_proxy=proxy.url)  # no CA bundle: the test CA is not trusted
    with pytest.raises(TokenRejected) as info:
        await untrusting.verify(token(spec, clock), "tom", spec)
    assert info.value.reason == "key_server_unreachable"
    assert info.value.message.startswith(f"discovery document of {tls_jwks_server.url('/idp')} unreachable")
    assert "CERTIFICATE_VERIFY_FAILED" in info.value.message
    assert tls_jwks_server.requests["/idp" + WELL_KNOWN] == 1  # nothing was asked over the unverified connection


async def test_plain_http_discovery_for_labs_goes_through_the_http_proxy(
    proxy: Tinyproxy, jwks_server: JwksServer, make_verifier: Callable[..., TokenVerifier], clock: FakeClock
) -> None:
    spec = publish(jwks_server)
    verifier = make_verifier(http_proxy=proxy.url, discovery_allow_http=True)
    assert await verifier.verify(token(spec, clock), "tom", spec)
    proxy.wait_for_request(f"GET {jwks_server.url('/idp' + WELL_KNOWN)} ")
    proxy.wait_for_request(f"GET {jwks_server.url('/idp/certs')} ")
    assert all("tinyproxy" in headers.get("via", "") for headers in jwks_server.headers)


async def test_one_http_client_serves_both_kinds(
    tls_jwks_server: JwksServer, make_verifier: Callable[..., TokenVerifier], clock: FakeClock, home: Path
) -> None:
    spec = publish(tls_jwks_server)
    verifier = make_verifier(ca_bundle=home / "conf/tls/test-ca.pem")
    assert await verifier.verify(token(spec, clock), "tom", spec)
    store = verifier.key_store
    assert store.discovery._fetcher is store.remote._fetcher
    await verifier.aclose()
    assert store.remote._fetcher._client is None  # closed once, by the key store


def test_discovery_allow_http_is_off_by_default_and_documented() -> None:
    assert Settings().discovery_allow_http is False
    match = re.search(r"^# discovery_allow_http =(.*)$", SHIPPED_CONF.read_text(), re.MULTILINE)
    assert match and match.group(1).strip() == "false"


def test_discovery_allow_http_is_read_and_passed_to_the_verifier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "fe.conf").write_text("discovery_allow_http = true\n")
    assert load_settings(tmp_path, environ={}).discovery_allow_http is True
    assert load_settings(tmp_path, environ={"FE_DISCOVERY_ALLOW_HTTP": "false"}).discovery_allow_http is False

    made: list[dict[str, Any]] = []
    monkeypatch.setattr(app, "TokenVerifier", lambda *args, **kwargs: made.append(kwargs))
    app.make_token_verifier(Settings(home=tmp_path, discovery_allow_http=True))
    assert made[0]["key_fetch"].discovery_allow_http is True
