"""OpenID Connect Discovery against a real HTTPS server on 127.0.0.1 (a private CA in jwks_ca_bundle): a spec with
required_issuer and no jwks_url finds its keys through `<iss>/.well-known/openid-configuration`. The token's iss is
checked before anything is fetched; the document must name that issuer exactly and an https jwks_uri; documents
are cached, refreshed, served stale and refetched for unknown kids by the rules of key sets."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fe.auth.discovery import discovery_url
from fe.auth.token_spec import TokenAuthSpec
from fe.auth.verifier import TokenRejected, TokenVerifier
from tests.auth.jose_helpers import FakeClock, claims_for, forge, jwk_with, jwks, mint, resign
from tests.auth.jwks_server import JwksServer

COOLDOWN = 30.0
REFRESH = 300.0
MAX_STALE = 3600.0
WELL_KNOWN = "/.well-known/openid-configuration"


class Idp:
    """An identity provider under `prefix` on the test server: a discovery document and a JWKS."""

    def __init__(self, server: JwksServer, prefix: str = "/idp", key: str = "ES256") -> None:
        self.server = server
        self.prefix = prefix
        self.issuer = server.url(prefix)
        self.key = key
        self.publish(jwks(jwk_with(key)))

    @property
    def discovery_path(self) -> str:
        return self.prefix + WELL_KNOWN

    @property
    def certs_path(self) -> str:
        return self.prefix + "/certs"

    def publish(self, key_set: dict[str, Any], certs_path: str | None = None, **document: Any) -> None:
        """Serve `key_set` at `certs_path` and a discovery document naming it (fields in `document` override)."""
        path = certs_path or self.certs_path
        self.server.serve(path, key_set)
        doc = {"issuer": self.issuer, "jwks_uri": self.server.url(path), "response_types_supported": ["id_token"]}
        self.server.serve(self.discovery_path, {**doc, **document})

    def spec(self, *issuers: str) -> TokenAuthSpec:
        return TokenAuthSpec("", required_issuer=issuers or (self.issuer,), required_audience=("fe",))

    def token(self, clock: FakeClock, key: str | None = None, ttl: float = 600, **claims: Any) -> str:
        body = {**claims_for("tom", clock.now, ttl, iss=self.issuer, aud="fe", jti=secrets.token_hex(4)), **claims}
        return mint(key or self.key, body)

    @property
    def fetches(self) -> tuple[int, int]:
        """(discovery document fetches, JWKS fetches)."""
        return self.server.requests[self.discovery_path], self.server.requests[self.certs_path]


@pytest.fixture
def verifier(make_verifier: Callable[..., TokenVerifier], home: Path) -> TokenVerifier:
    return make_verifier(
        ca_bundle=home / "conf/tls/test-ca.pem",
        unknown_kid_cooldown_seconds=COOLDOWN,
        refresh_seconds=REFRESH,
        max_stale_seconds=MAX_STALE,
        fetch_timeout_seconds=0.5,
    )


@pytest.fixture
def idp(tls_jwks_server: JwksServer) -> Idp:
    return Idp(tls_jwks_server)


async def rejection(verifier: TokenVerifier, token: str, spec: TokenAuthSpec) -> TokenRejected:
    with pytest.raises(TokenRejected) as info:
        await verifier.verify(token, "tom", spec)
    assert not info.value.signature_verified  # so the login side tells the client nothing of it
    return info.value


async def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def test_the_discovery_url_drops_a_trailing_slash_of_the_issuer() -> None:
    assert discovery_url("https://idp.example") == "https://idp.example/.well-known/openid-configuration"
    assert discovery_url("https://idp.example/realms/main/") == (
        "https://idp.example/realms/main/.well-known/openid-configuration"
    )


async def test_keys_are_discovered_from_the_issuer(idp: Idp, verifier: TokenVerifier, clock: FakeClock) -> None:
    claims = await verifier.verify(idp.token(clock), "tom", idp.spec())
    assert claims["iss"] == idp.issuer
    assert idp.fetches == (1, 1)
    assert idp.server.headers[0]["accept"] == "application/json"
    stats = verifier.stats
    assert stats["discovery_fetches"] == {idp.issuer: 1}
    assert stats["jwks_fetches"] == {idp.server.url(idp.certs_path): 1}


async def test_many_logins_cost_one_discovery_fetch(idp: Idp, verifier: TokenVerifier, clock: FakeClock) -> None:
    idp.server.delay = 0.1
    tokens = [idp.token(clock) for _ in range(20)]
    results = await asyncio.gather(*(verifier.verify(tokens[i % 20], "tom", idp.spec()) for i in range(500)))
    assert len(results) == 500
    for _ in range(20):
        clock.advance(5)
        assert await verifier.verify(idp.token(clock), "tom", idp.spec())
    assert idp.fetches == (1, 1)


@pytest.mark.parametrize(
    "iss",
    [
        "https://127.0.0.1:1/evil",  # anyone's issuer
        "{issuer}/",  # a trailing slash
        "{issuer}x",  # a superstring
        "{prefix}",  # a prefix
        "{upper}",  # a different case
        ["{issuer}"],  # an array
        None,  # none
        42,
    ],
)
async def test_an_issuer_not_in_required_issuer_fetches_nothing(
    iss: Any, idp: Idp, verifier: TokenVerifier, clock: FakeClock
) -> None:
    def fill(value: Any) -> Any:
        if isinstance(value, list):
            return [fill(v) for v in value]
        if not isinstance(value, str):
            return value
        return value.format(issuer=idp.issuer, prefix=idp.issuer[:-1], upper=idp.issuer.upper())

    idp.server.serve(idp.prefix + "x" + WELL_KNOWN, {"issuer": idp.issuer + "x", "jwks_uri": idp.server.url("/x")})
    header = {"alg": "ES256", "kid": jwk_with("ES256")["kid"]}
    token = resign("ES256", header, claims_for("tom", clock.now, aud="fe", iss=fill(iss)))
    error = await rejection(verifier, token, idp.spec())
    assert error.reason == "wrong_issuer"
    assert not idp.server.requests


async def test_a_document_for_another_issuer_is_refused(idp: Idp, verifier: TokenVerifier, clock: FakeClock) -> None:
    other = idp.server.url("/other")
    idp.publish(jwks(jwk_with("ES256")), issuer=other)
    error = await rejection(verifier, idp.token(clock), idp.spec())
    assert error.reason == "key_set_invalid"
    where = f"discovery document of {idp.issuer} ({idp.issuer}{WELL_KNOWN})"
    assert error.message == f"{where} says issuer {other!r}, not {idp.issuer!r}"
    assert idp.fetches == (1, 0)  # its keys were never fetched


async def test_the_issuer_must_match_exactly_even_a_trailing_slash(
    idp: Idp, verifier: TokenVerifier, clock: FakeClock
) -> None:
    slashed = idp.issuer + "/"
    token = idp.token(clock, iss=slashed)
    assert (await rejection(verifier, token, idp.spec(slashed))).reason == "key_set_invalid"
    assert idp.fetches == (1, 0)  # the same document URL (no double slash), naming the issuer without the slash

    idp.issuer = slashed
    idp.publish(jwks(jwk_with("ES256")))
    clock.advance(COOLDOWN)
    assert await verifier.verify(token, "tom", idp.spec(slashed))


async def test_a_plain_http_jwks_uri_is_refused(
    idp: Idp, verifier: TokenVerifier, clock: FakeClock, jwks_server: JwksServer
) -> None:
    plain = jwks_server.serve("/certs", jwks(jwk_with("ES256")))
    idp.publish(jwks(jwk_with("ES256")), jwks_uri=plain)
    error = await rejection(verifier, idp.token(clock), idp.spec())
    assert error.reason == "key_set_invalid"
    assert f"gives jwks_uri {plain!r}, which is plain http://" in error.message
    assert "discovery_allow_http" in error.message
    assert not jwks_server.requests


async def test_a_plain_http_issuer_is_not_contacted(
    verifier: TokenVerifier, clock: FakeClock, jwks_server: JwksServer
) -> None:
    plain = Idp(jwks_server)
    error = await rejection(verifier, plain.token(clock), plain.spec())
    assert error.reason == "key_set_invalid" and "is plain http://" in error.message
    assert not jwks_server.requests


async def test_discovery_allow_http_allows_plain_http_for_labs(
    make_verifier: Callable[..., TokenVerifier], clock: FakeClock, jwks_server: JwksServer
) -> None:
    plain = Idp(jwks_server)
    verifier = make_verifier(discovery_allow_http=True)
    assert await verifier.verify(plain.token(clock), "tom", plain.spec())
    assert plain.fetches == (1, 1)


def many(count: int) -> dict[str, Any]:
    return {"issuer": "x", "pad": ["y"] * count}


BAD_DOCUMENTS: list[tuple[str, dict[str, Any], str, str]] = [
    ("status 500", {"mode": "status", "status": 500}, "key_server_unreachable", "unreachable: "),
    ("status 404", {"mode": "status", "status": 404}, "key_server_unreachable", "(HTTP 404)"),
    ("redirect", {"mode": "redirect"}, "key_server_unreachable", "redirect to"),
    ("not JSON", {"mode": "garbage"}, "key_set_invalid", "is not valid JSON"),
    ("10 MB", {"mode": "huge"}, "key_set_invalid", "is unusable: response of 10485760 bytes exceeds"),
    ("10 MB, no length", {"mode": "huge_unsized"}, "key_set_invalid", "is unusable: response exceeds"),
    ("hang", {"mode": "hang"}, "key_server_unreachable", "timeout"),
    ("reset", {"mode": "reset"}, "key_server_unreachable", "unreachable: "),
    ("an array", {"document": [1, 2]}, "key_set_invalid", "is not a JSON object"),
    ("no issuer", {"document": {"jwks_uri": "https://127.0.0.1/certs"}}, "key_set_invalid", "has no 'issuer'"),
    ("no jwks_uri", {"document": {"issuer": "{issuer}"}}, "key_set_invalid", "has no 'jwks_uri'"),
    ("jwks_uri a number", {"document": {"issuer": "{issuer}", "jwks_uri": 7}}, "key_set_invalid", "has no 'jwks_uri'"),
    (
        "jwks_uri with credentials",
        {"document": {"issuer": "{issuer}", "jwks_uri": "https://u:p@127.0.0.1/certs"}},
        "key_set_invalid",
        "carries credentials",
    ),
    (
        "jwks_uri a file",
        {"document": {"issuer": "{issuer}", "jwks_uri": "file:///etc/passwd"}},
        "key_set_invalid",
        "is not an https:// URL",
    ),
]


def misbehave(idp: Idp, how: dict[str, Any]) -> None:
    for name, value in how.items():
        if name == "document":
            if isinstance(value, dict):
                value = {k: v.format(issuer=idp.issuer) if isinstance(v, str) else v for k, v in value.items()}
            idp.server.documents[idp.discovery_path] = value
        elif name == "mode":
            idp.server.path_modes[idp.discovery_path] = value
        else:
            setattr(idp.server, name, value)


@pytest.mark.parametrize(
    ("how", "reason", "says"), [(h, r, s) for _n, h, r, s in BAD_DOCUMENTS], ids=[n for n, *_ in BAD_DOCUMENTS]
)
async def test_a_bad_first_document_fails_bounded_and_says_why(
    how: dict[str, Any], reason: str, says: str, idp: Idp, verifier: TokenVerifier, clock: FakeClock
) -> None:
    idp.server.serve("/elsewhere", {"issuer": idp.issuer, "jwks_uri": idp.server.url(idp.certs_path)})
    idp.server.redirect_to = idp.server.url("/elsewhere")
    misbehave(idp, how)
    token = idp.token(clock, ttl=3600)
    started = time.monotonic()
    error = await rejection(verifier, token, idp.spec())
    assert time.monotonic() - started < 1.5
    assert (error.reason, error.message.startswith(f"discovery document of {idp.issuer} ")) == (reason, True)
    assert says in error.message
    assert idp.fetches == (1, 0) and idp.server.requests["/elsewhere"] == 0  # no redirect followed, no keys
    # Retried only after the interval, like a key set.
    for _ in range(5):
        assert (await rejection(verifier, token, idp.spec())).reason == reason
    assert idp.fetches == (1, 0)


@pytest.mark.parametrize("how", [h for _n, h, *_ in BAD_DOCUMENTS], ids=[n for n, *_ in BAD_DOCUMENTS])
async def test_a_bad_refresh_keeps_the_last_good_document(
    how: dict[str, Any], idp: Idp, verifier: TokenVerifier, clock: FakeClock
) -> None:
    assert await verifier.verify(idp.token(clock), "tom", idp.spec())
    misbehave(idp, how)
    idp.server.redirect_to = idp.server.url("/elsewhere")
    clock.advance(REFRESH + 1)
    assert await verifier.verify(idp.token(clock), "tom", idp.spec())
    await wait_until(lambda: verifier.stats["discovery_fetch_failures"].get(idp.issuer) == 1)
    assert await verifier.verify(idp.token(clock), "tom", idp.spec())
    assert verifier.stats["discovery_stale_serves"][idp.issuer] >= 1


async def test_the_document_is_refreshed_in_the_background(idp: Idp, verifier: TokenVerifier, clock: FakeClock) -> None:
    assert await verifier.verify(idp.token(clock), "tom", idp.spec())
    clock.advance(REFRESH + 1)
    idp.server.delay = 0.3
    started = time.monotonic()
    assert await verifier.verify(idp.token(clock), "tom", idp.spec())
    assert time.monotonic() - started < 0.2, "a login must not wait for a refresh"
    await wait_until(lambda: idp.fetches == (2, 2))
    await wait_until(lambda: not verifier.key_store.discovery._background and not verifier.key_store.remote._background)
    idp.server.delay = 0
    for _ in range(5):
        assert await verifier.verify(idp.token(clock), "tom", idp.spec())
    assert idp.fetches == (2, 2)
    assert verifier.stats["discovery_age_seconds"] == {idp.issuer: 0.0}


async def test_stale_document_served_while_the_issuer_is_down_then_expires(
    idp: Idp, verifier: TokenVerifier, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="fe.auth.jwks")
    assert await verifier.verify(idp.token(clock), "tom", idp.spec())
    idp.server.path_modes[idp.discovery_path] = "status"
    for _ in range(4):
        clock.advance(REFRESH + 1)
        assert await verifier.verify(idp.token(clock), "tom", idp.spec())
        await wait_until(lambda: not verifier.key_store.discovery._background)
        await wait_until(lambda: not verifier.key_store.remote._background)
    assert verifier.stats["discovery_stale_serves"][idp.issuer] >= 2
    assert any("serving stale discovery document for" in r.message for r in caplog.records)

    clock.advance(MAX_STALE)
    error = await rejection(verifier, idp.token(clock), idp.spec())
    assert error.reason == "key_server_unreachable"
    assert "discovery document expired" in error.message and f"{idp.issuer}{WELL_KNOWN}" in error.message

    del idp.server.path_modes[idp.discovery_path]
    clock.advance(COOLDOWN)
    assert await verifier.verify(idp.token(clock), "tom", idp.spec())


async def test_a_rotated_key_is_used_at_once_without_refetching_the_document(
    idp: Idp, verifier: TokenVerifier, clock: FakeClock
) -> None:
    assert await verifier.verify(idp.token(clock), "tom", idp.spec())
    idp.publish(jwks(jwk_with("ES256-rotated")))
    assert await verifier.verify(idp.token(clock, key="ES256-rotated"), "tom", idp.spec())
    assert idp.fetches == (1, 2)


async def test_keys_moved_to_another_jwks_uri_are_found_through_the_document(
    idp: Idp, verifier: TokenVerifier, clock: FakeClock
) -> None:
    assert await verifier.verify(idp.token(clock), "tom", idp.spec())
    idp.publish(jwks(jwk_with("ES256-moved")), certs_path="/idp/v2/certs")
    assert await verifier.verify(idp.token(clock, key="ES256-moved"), "tom", idp.spec())
    assert idp.fetches == (2, 2) and idp.server.requests["/idp/v2/certs"] == 1
    for _ in range(3):
        assert await verifier.verify(idp.token(clock, key="ES256-moved"), "tom", idp.spec())
    assert idp.server.requests["/idp/v2/certs"] == 1


async def test_an_unknown_kid_flood_costs_at_most_two_fetches_of_each_per_cooldown(
    idp: Idp, verifier: TokenVerifier, clock: FakeClock
) -> None:
    assert await verifier.verify(idp.token(clock), "tom", idp.spec())

    def random_kid() -> str:
        header = {"alg": "ES256", "kid": secrets.token_urlsafe(12)}
        return forge(header, claims_for("tom", clock.now, iss=idp.issuer, aud="fe"), b"\x01" * 64)

    idp.server.delay = 0.05
    for _ in range(3):
        errors = await asyncio.gather(*(rejection(verifier, random_kid(), idp.spec()) for _ in range(300)))
        assert {e.reason for e in errors} == {"unknown_kid"}
        clock.advance(COOLDOWN / 3)
    assert idp.fetches == (2, 2)
    clock.advance(COOLDOWN)
    await asyncio.gather(*(rejection(verifier, random_kid(), idp.spec()) for _ in range(300)))
    assert idp.fetches == (3, 3)
    assert verifier.stats["discovery_unknown_kid_refetches"] == {idp.issuer: 2}
    assert await verifier.verify(idp.token(clock), "tom", idp.spec())


async def test_each_issuer_of_a_spec_has_its_own_keys(
    idp: Idp, tls_jwks_server: JwksServer, verifier: TokenVerifier, clock: FakeClock
) -> None:
    second = Idp(tls_jwks_server, "/second", key="ES256-second")
    spec = idp.spec(idp.issuer, second.issuer)
    assert await verifier.verify(idp.token(clock), "tom", spec)
    assert await verifier.verify(second.token(clock), "tom", spec)
    # A token naming one issuer but signed with the other's key: the named issuer's set does not have it.
    error = await rejection(verifier, idp.token(clock, key="ES256-second"), spec)
    assert error.reason == "unknown_kid"
    assert second.fetches == (1, 1)


async def test_a_verified_token_is_remembered_and_its_issuer_still_picks_the_keys(
    idp: Idp, verifier: TokenVerifier, clock: FakeClock
) -> None:
    token = idp.token(clock)
    for _ in range(3):
        assert await verifier.verify(token, "tom", idp.spec())
    assert verifier.stats["token_cache_hits"] == 2
    idp.publish(jwks(jwk_with("ES256-other")))
    clock.advance(REFRESH + 1)
    await verifier.verify(idp.token(clock), "tom", idp.spec())  # starts the background refresh
    await wait_until(lambda: not verifier.key_store.remote._background and idp.fetches[1] == 2)
    # The key that verified the remembered token is gone from the issuer's set: it is verified afresh, and fails.
    assert (await rejection(verifier, token, idp.spec())).reason == "unknown_kid"
