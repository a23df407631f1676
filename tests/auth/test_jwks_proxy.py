"""Key fetches through a real forward proxy (tinyproxy): http:// through jwks_http_proxy, https:// in a CONNECT
tunnel through jwks_https_proxy with the server's certificate still checked, jwks_no_proxy going direct, and the
HTTP(S)_PROXY environment variables never used.

Skipped when tinyproxy is not installed, unless FE_TESTS_REQUIRE_TINYPROXY is set (then failed)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fe.auth.token_spec import TokenAuthSpec
from fe.auth.verifier import TokenRejected, TokenVerifier
from tests.auth.jose_helpers import FakeClock, claims_for, jwk_with, jwks, mint
from tests.auth.jwks_server import JwksServer
from tests.support.tinyproxy import Tinyproxy


@pytest.fixture
def proxy() -> Iterator[Tinyproxy]:
    started = Tinyproxy().start()
    yield started
    started.stop()


def proxied(server: JwksServer) -> list[dict[str, str]]:
    """The requests the key server received from a proxy (tinyproxy adds `Via` to what it forwards)."""
    return [headers for headers in server.headers if "tinyproxy" in headers.get("via", "")]


async def login(verifier: TokenVerifier, spec: TokenAuthSpec, clock: FakeClock) -> None:
    assert (await verifier.verify(mint("ES256", claims_for("tom", clock.now)), "tom", spec))["sub"] == "tom"


async def test_http_key_url_goes_through_the_http_proxy(
    proxy: Tinyproxy, jwks_server: JwksServer, make_verifier: Callable[..., TokenVerifier], clock: FakeClock
) -> None:
    spec = TokenAuthSpec(jwks_server.serve("/jwks", jwks(jwk_with("ES256"))))
    verifier = make_verifier(http_proxy=proxy.url)
    await login(verifier, spec, clock)
    assert proxy.wait_for_request(f"GET {spec.jwks_url} ").startswith("GET http://127.0.0.1:")
    assert len(proxied(jwks_server)) == jwks_server.requests["/jwks"] == 1


async def test_https_key_url_goes_through_a_connect_tunnel_and_the_certificate_is_checked(
    proxy: Tinyproxy,
    tls_jwks_server: JwksServer,
    make_verifier: Callable[..., TokenVerifier],
    clock: FakeClock,
    home: Path,
) -> None:
    spec = TokenAuthSpec(tls_jwks_server.serve("/jwks", jwks(jwk_with("ES256"))))
    verifier = make_verifier(https_proxy=proxy.url, ca_bundle=home / "conf/tls/test-ca.pem")
    await login(verifier, spec, clock)
    proxy.wait_for_request(f"CONNECT 127.0.0.1:{tls_jwks_server.port} ")
    assert not any(line.startswith("GET") for line in proxy.requests())  # the proxy saw a tunnel, not the request
    assert tls_jwks_server.requests["/jwks"] == 1 and not proxied(tls_jwks_server)

    # The same tunnel to a server whose certificate the client does not trust: refused, end to end.
    untrusting = make_verifier(https_proxy=proxy.url)
    with pytest.raises(TokenRejected) as info:
        await login(untrusting, spec, clock)
    assert info.value.reason == "key_server_unreachable"
    assert "CERTIFICATE_VERIFY_FAILED" in info.value.message
    assert len([line for line in proxy.requests() if line.startswith("CONNECT")]) == 2
    assert tls_jwks_server.requests["/jwks"] == 1  # no request was sent over the unverified connection


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "127.0.0.0/8", "*", "other.example, 127.0.0.1"])
async def test_no_proxy_goes_direct(
    no_proxy: str,
    proxy: Tinyproxy,
    jwks_server: JwksServer,
    tls_jwks_server: JwksServer,
    make_verifier: Callable[..., TokenVerifier],
    clock: FakeClock,
    home: Path,
) -> None:
    plain = TokenAuthSpec(jwks_server.serve("/jwks", jwks(jwk_with("ES256"))))
    tls = TokenAuthSpec(tls_jwks_server.serve("/jwks", jwks(jwk_with("ES256"))))
    verifier = make_verifier(
        http_proxy=proxy.url, https_proxy=proxy.url, no_proxy=no_proxy, ca_bundle=home / "conf/tls/test-ca.pem"
    )
    await login(verifier, plain, clock)
    await login(verifier, tls, clock)
    assert jwks_server.requests["/jwks"] == tls_jwks_server.requests["/jwks"] == 1
    assert not proxied(jwks_server)
    assert proxy.requests() == []


async def test_no_proxy_for_another_host_still_proxies(
    proxy: Tinyproxy, jwks_server: JwksServer, make_verifier: Callable[..., TokenVerifier], clock: FakeClock
) -> None:
    spec = TokenAuthSpec(jwks_server.serve("/jwks", jwks(jwk_with("ES256"))))
    verifier = make_verifier(http_proxy=proxy.url, no_proxy="localhost, 10.0.0.0/8, 127.0.0.2")
    await login(verifier, spec, clock)
    assert len(proxied(jwks_server)) == 1


async def test_each_scheme_has_its_own_proxy(
    proxy: Tinyproxy,
    jwks_server: JwksServer,
    tls_jwks_server: JwksServer,
    make_verifier: Callable[..., TokenVerifier],
    clock: FakeClock,
    home: Path,
) -> None:
    """Only jwks_http_proxy set: https:// key URLs go direct (and the other way round)."""
    plain = TokenAuthSpec(jwks_server.serve("/jwks", jwks(jwk_with("ES256"))))
    tls = TokenAuthSpec(tls_jwks_server.serve("/jwks", jwks(jwk_with("ES256"))))
    ca_bundle = home / "conf/tls/test-ca.pem"
    await login(make_verifier(http_proxy=proxy.url, ca_bundle=ca_bundle), tls, clock)
    assert proxy.requests() == []
    await login(make_verifier(https_proxy=proxy.url, ca_bundle=ca_bundle), plain, clock)
    assert proxy.requests() == [] and not proxied(jwks_server)


async def test_proxy_variables_in_the_environment_are_ignored(
    proxy: Tinyproxy,
    jwks_server: JwksServer,
    make_verifier: Callable[..., TokenVerifier],
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, proxy.url)
    monkeypatch.setenv("NO_PROXY", "")
    spec = TokenAuthSpec(jwks_server.serve("/jwks", jwks(jwk_with("ES256"))))
    await login(make_verifier(), spec, clock)
    assert not proxied(jwks_server) and proxy.requests() == []


async def test_a_dead_proxy_is_a_failed_fetch(
    proxy: Tinyproxy, jwks_server: JwksServer, make_verifier: Callable[..., TokenVerifier], clock: FakeClock
) -> None:
    dead = proxy.url
    proxy.stop()
    spec = TokenAuthSpec(jwks_server.serve("/jwks", jwks(jwk_with("ES256"))))
    with pytest.raises(TokenRejected) as info:
        await login(make_verifier(http_proxy=dead), spec, clock)
    assert info.value.reason == "key_server_unreachable"
    assert jwks_server.requests["/jwks"] == 0
