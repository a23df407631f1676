"""JWKS over HTTP(S) against a real server on 127.0.0.1: caching, single-flight, the unknown-kid token bucket,
rotation picked up at once, background refresh, stale serving while the key server is down, and bounded failures."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from fe.auth.jwks_http import RefetchBucket
from fe.auth.token_spec import TokenAuthSpec
from fe.auth.verifier import TokenRejected, TokenVerifier
from tests.auth.jose_helpers import FakeClock, claims_for, forge, jwk_with, jwks, mint
from tests.auth.jwks_server import JwksServer

COOLDOWN = 30.0
REFRESH = 300.0
MAX_STALE = 3600.0


@pytest.fixture
def verifier(make_verifier: Callable[..., TokenVerifier]) -> TokenVerifier:
    return make_verifier(
        unknown_kid_cooldown_seconds=COOLDOWN,
        refresh_seconds=REFRESH,
        max_stale_seconds=MAX_STALE,
        fetch_timeout_seconds=0.5,
    )


@pytest.fixture
def spec(jwks_server: JwksServer) -> TokenAuthSpec:
    return TokenAuthSpec(jwks_server.serve("/jwks", jwks(jwk_with("ES256"), jwk_with("RS256"))))


async def reason_of(verifier: TokenVerifier, token: str, spec: TokenAuthSpec, user: str = "tom") -> str:
    with pytest.raises(TokenRejected) as info:
        await verifier.verify(token, user, spec)
    return info.value.reason


async def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def random_kid_token(clock: FakeClock) -> str:
    return forge({"alg": "ES256", "kid": secrets.token_urlsafe(12)}, claims_for("tom", clock.now), b"\x01" * 64)


async def test_keys_are_fetched_once_and_cached(
    jwks_server: JwksServer, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    for index in range(5):
        clock.advance(10)
        assert await verifier.verify(mint("ES256", claims_for("tom", clock.now, jti=str(index))), "tom", spec)
    assert await verifier.verify(mint("RS256", claims_for("tom", clock.now)), "tom", spec)
    assert jwks_server.requests["/jwks"] == 1
    assert verifier.stats["jwks_fetches"] == {spec.jwks_url: 1}
    assert verifier.stats["jwks_key_age_seconds"] == {spec.jwks_url: 40.0}  # fetched at the first login


async def test_single_flight_for_1000_concurrent_first_logins(
    jwks_server: JwksServer, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    jwks_server.delay = 0.2
    tokens = [mint("ES256", claims_for("tom", clock.now, jti=str(i))) for i in range(50)]
    results = await asyncio.gather(*(verifier.verify(tokens[i % 50], "tom", spec) for i in range(1000)))
    assert len(results) == 1000 and all(r["sub"] == "tom" for r in results)
    assert jwks_server.requests["/jwks"] == 1


async def test_unknown_kid_flood_costs_at_most_two_fetches_per_cooldown(
    jwks_server: JwksServer, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    good = mint("ES256", claims_for("tom", clock.now, ttl=3600))
    assert await verifier.verify(good, "tom", spec)
    assert jwks_server.requests["/jwks"] == 1

    # Right after the first fetch, the first unknown kid refetches at once; the rest of the flood shares it.
    jwks_server.delay = 0.1
    reasons = await asyncio.gather(*(reason_of(verifier, random_kid_token(clock), spec) for _ in range(1000)))
    assert set(reasons) == {"unknown_kid"}
    assert jwks_server.requests["/jwks"] == 2
    # Then nothing until a cooldown has passed since that refetch.
    reasons = await asyncio.gather(*(reason_of(verifier, random_kid_token(clock), spec) for _ in range(1000)))
    clock.advance(COOLDOWN - 1)
    reasons += await asyncio.gather(*(reason_of(verifier, random_kid_token(clock), spec) for _ in range(1000)))
    assert set(reasons) == {"unknown_kid"}
    assert jwks_server.requests["/jwks"] == 2
    clock.advance(1)
    reasons = await asyncio.gather(*(reason_of(verifier, random_kid_token(clock), spec) for _ in range(1000)))
    assert jwks_server.requests["/jwks"] == 3
    assert verifier.stats["jwks_unknown_kid_refetches"] == {spec.jwks_url: 2}

    # The good keys survived the flood.
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now)), "tom", spec)


async def test_a_steady_kid_flood_never_exceeds_two_fetches_in_any_cooldown_window(
    jwks_server: JwksServer, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    fetched_at: list[float] = []

    async def note_fetches(attempt: Awaitable[str]) -> None:
        before = jwks_server.requests["/jwks"]
        assert await attempt == "unknown_kid"
        fetched_at.extend([clock.now] * (jwks_server.requests["/jwks"] - before))

    await note_fetches(reason_of(verifier, random_kid_token(clock), spec))  # the first fetch, then a refetch
    for _ in range(int(10 * COOLDOWN / 2.5)):  # ten cooldowns, 20 random kids every 2.5 s
        clock.advance(2.5)
        for _ in range(20):
            await note_fetches(reason_of(verifier, random_kid_token(clock), spec))
    assert len(fetched_at) == 2 + 10  # one initial fetch, one refetch at once, then one per cooldown
    for start in fetched_at:
        assert len([t for t in fetched_at if start <= t < start + COOLDOWN]) <= 2
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now)), "tom", spec)


async def test_unknown_kid_refetch_failure_keeps_good_keys(
    jwks_server: JwksServer, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now)), "tom", spec)
    jwks_server.mode = "garbage"
    assert await reason_of(verifier, random_kid_token(clock), spec) == "unknown_kid"
    assert jwks_server.requests["/jwks"] == 2
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now, jti="2")), "tom", spec)


async def test_after_a_failed_fetch_a_kid_miss_waits_for_the_retry_interval(
    jwks_server: JwksServer, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now)), "tom", spec)
    clock.advance(REFRESH + 1)
    jwks_server.mode, jwks_server.status = "status", 503
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now, jti="1")), "tom", spec)
    await wait_until(lambda: verifier.stats["jwks_fetch_failures"].get(spec.jwks_url) == 1)
    # The refresh just failed: an unknown kid does not hit the ailing server again before the interval.
    assert await reason_of(verifier, random_kid_token(clock), spec) == "unknown_kid"
    assert jwks_server.requests["/jwks"] == 2
    jwks_server.mode = "ok"
    jwks_server.documents["/jwks"] = jwks(jwk_with("ES256"), jwk_with("ES256-late"))
    clock.advance(COOLDOWN)
    assert await verifier.verify(mint("ES256-late", claims_for("tom", clock.now)), "tom", spec)
    assert jwks_server.requests["/jwks"] == 3


async def test_a_key_published_right_after_a_fetch_is_used_at_once(
    jwks_server: JwksServer, verifier: TokenVerifier, clock: FakeClock
) -> None:
    spec = TokenAuthSpec(jwks_server.serve("/rot", jwks(jwk_with("ES256"))))
    old = mint("ES256", claims_for("tom", clock.now, ttl=3600))
    assert await verifier.verify(old, "tom", spec)

    # The identity provider rotates and signs with the new key straight away: no cooldown to sit out.
    jwks_server.documents["/rot"] = jwks(jwk_with("ES256-new"))
    clock.advance(1)
    new = mint("ES256-new", claims_for("tom", clock.now, ttl=3600))
    assert await verifier.verify(new, "tom", spec)
    assert jwks_server.requests["/rot"] == 2
    # The server dropped the old key: a successful fetch replaces the set, even for a cached token.
    assert await reason_of(verifier, old, spec) == "unknown_kid"

    # A second rotation within the cooldown of that refetch waits for the bucket to refill.
    jwks_server.documents["/rot"] = jwks(jwk_with("ES256-newer"))
    newer = mint("ES256-newer", claims_for("tom", clock.now, ttl=3600))
    assert await reason_of(verifier, newer, spec) == "unknown_kid"
    assert jwks_server.requests["/rot"] == 2
    clock.advance(COOLDOWN)
    assert await verifier.verify(newer, "tom", spec)
    assert jwks_server.requests["/rot"] == 3


async def test_a_key_published_right_after_a_background_refresh_is_used_at_once(
    jwks_server: JwksServer, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now)), "tom", spec)
    clock.advance(REFRESH + 1)
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now, jti="1")), "tom", spec)
    await wait_until(lambda: jwks_server.requests["/jwks"] == 2)
    await wait_until(lambda: verifier.key_store.remote._states[spec.jwks_url].inflight is None)

    jwks_server.documents["/jwks"] = jwks(jwk_with("ES256"), jwk_with("ES256-rotated"))
    clock.advance(1)
    assert await verifier.verify(mint("ES256-rotated", claims_for("tom", clock.now)), "tom", spec)
    assert jwks_server.requests["/jwks"] == 3


def test_refetch_bucket_holds_one_and_refills_one_per_interval() -> None:
    bucket = RefetchBucket(30.0)
    assert bucket.take(1000.0)
    assert not bucket.take(1000.0)
    assert not bucket.take(1029.0)  # refused takes do not delay the refill
    assert bucket.take(1030.0)
    assert not bucket.take(1031.0)
    assert bucket.take(5000.0)  # a long pause refills one, not many
    assert not bucket.take(5000.0)
    assert not bucket.take(4000.0)  # a clock stepped back refills nothing
    assert bucket.take(5030.0)


def test_refetch_bucket_without_an_interval_never_limits() -> None:
    bucket = RefetchBucket(0.0)
    assert all(bucket.take(1.0) for _ in range(5))


async def test_soft_refresh_happens_in_the_background(
    jwks_server: JwksServer, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now)), "tom", spec)
    clock.advance(REFRESH + 1)
    jwks_server.delay = 0.3
    jwks_server.documents["/jwks"] = jwks(jwk_with("ES256"), jwk_with("ES256-added"))
    started = time.monotonic()
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now, jti="x")), "tom", spec)
    assert time.monotonic() - started < 0.2, "a login must not wait for the refresh"
    await wait_until(lambda: verifier.stats["jwks_fetches"][spec.jwks_url] == 2 and jwks_server.requests["/jwks"] == 2)
    await wait_until(lambda: verifier.key_store.remote._states[spec.jwks_url].inflight is None)
    assert await verifier.verify(mint("ES256-added", claims_for("tom", clock.now)), "tom", spec)
    assert jwks_server.requests["/jwks"] == 2


async def test_stale_keys_are_served_while_the_server_is_down_then_expire(
    jwks_server: JwksServer,
    spec: TokenAuthSpec,
    verifier: TokenVerifier,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now)), "tom", spec)
    await jwks_server.stop()

    clock.advance(REFRESH + 1)
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now, jti="1")), "tom", spec)
    await wait_until(lambda: verifier.stats["jwks_fetch_failures"].get(spec.jwks_url) == 1)

    caplog.set_level(logging.WARNING, logger="fe.auth.jwks")
    clock.advance(COOLDOWN + 1)
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now, jti="2")), "tom", spec)
    assert verifier.stats["jwks_stale_serves"][spec.jwks_url] >= 1
    assert any("serving stale JWKS" in record.message for record in caplog.records)

    clock.advance(MAX_STALE)  # well past the hard limit after the last successful fetch
    with pytest.raises(TokenRejected) as info:
        await verifier.verify(mint("ES256", claims_for("tom", clock.now, jti="3")), "tom", spec)
    assert info.value.reason == "key_server_unreachable"
    assert spec.jwks_url in info.value.message and "expired" in info.value.message

    # The key server comes back: once the retry interval has passed, the next login fetches and succeeds.
    await jwks_server.start()
    clock.advance(COOLDOWN + 1)
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now, jti="4")), "tom", spec)
    assert jwks_server.requests["/jwks"] == 2  # the first fetch and this one; the two failures never connected
    assert verifier.stats["jwks_fetch_failures"][spec.jwks_url] == 2


def many_keys(count: int) -> dict[str, Any]:
    """`count` small (unusable) keys: small enough to pass the byte limit, so the key-count limit trips."""
    return jwks(*({"kty": "EC", "kid": str(i)} for i in range(count)))


BAD_RESPONSES: list[tuple[str, dict[str, Any], str]] = [
    ("status 500", {"mode": "status", "status": 500}, "key_server_unreachable"),
    ("status 404", {"mode": "status", "status": 404}, "key_server_unreachable"),
    ("redirect", {"mode": "redirect"}, "key_server_unreachable"),
    ("not JSON", {"mode": "garbage"}, "key_set_invalid"),
    ("10 MB", {"mode": "huge"}, "key_set_invalid"),
    ("10 MB, no length", {"mode": "huge_unsized"}, "key_set_invalid"),
    ("10,000 keys", {"document": many_keys(10_000)}, "key_set_invalid"),
    (
        "no usable key",
        {"document": jwks({"kty": "oct", "k": "c2VjcmV0"}, {"kty": "EC", "crv": "P-256"})},
        "key_set_invalid",
    ),
    ("not a JWKS", {"document": {"kty": "EC"}}, "key_set_invalid"),
    ("keys not a list", {"document": {"keys": {"a": 1}}}, "key_set_invalid"),
    ("hang", {"mode": "hang"}, "key_server_unreachable"),
    ("slow", {"delay": 5.0}, "key_server_unreachable"),
    ("reset", {"mode": "reset"}, "key_server_unreachable"),
]


def misbehave(server: JwksServer, how: dict[str, Any]) -> None:
    for name, value in how.items():
        if name == "document":
            server.documents["/jwks"] = value
        else:
            setattr(server, name, value)


@pytest.mark.parametrize(
    ("how", "reason"), [(h, r) for _n, h, r in BAD_RESPONSES], ids=[n for n, _h, _r in BAD_RESPONSES]
)
async def test_bad_first_response_fails_bounded(
    how: dict[str, Any],
    reason: str,
    jwks_server: JwksServer,
    spec: TokenAuthSpec,
    verifier: TokenVerifier,
    clock: FakeClock,
) -> None:
    misbehave(jwks_server, how)
    started = time.monotonic()
    with pytest.raises(TokenRejected) as info:
        await verifier.verify(mint("ES256", claims_for("tom", clock.now)), "tom", spec)
    assert time.monotonic() - started < 1.5
    assert info.value.reason == reason
    assert spec.jwks_url in info.value.message
    assert jwks_server.requests["/jwks"] == 1


@pytest.mark.parametrize("how", [h for _n, h, _r in BAD_RESPONSES], ids=[n for n, _h, _r in BAD_RESPONSES])
async def test_bad_refresh_keeps_serving_good_keys(
    how: dict[str, Any], jwks_server: JwksServer, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now)), "tom", spec)
    misbehave(jwks_server, how)
    clock.advance(REFRESH + 1)
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now, jti="1")), "tom", spec)
    await wait_until(lambda: verifier.stats["jwks_fetch_failures"].get(spec.jwks_url) == 1)
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now, jti="2")), "tom", spec)
    assert await verifier.verify(mint("RS256", claims_for("tom", clock.now, jti="3")), "tom", spec)


async def test_key_count_limit(
    jwks_server: JwksServer, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    jwks_server.documents["/jwks"] = jwks(*(jwk_with("ES256", kid=f"k{i}") for i in range(101)))
    with pytest.raises(TokenRejected) as info:
        await verifier.verify(mint("ES256", claims_for("tom", clock.now), kid="k1"), "tom", spec)
    assert info.value.reason == "key_set_invalid"
    assert "101 keys, more than the limit of 100" in info.value.message
    jwks_server.documents["/jwks"] = many_keys(10_000)
    clock.advance(COOLDOWN + 1)
    with pytest.raises(TokenRejected) as info:
        await verifier.verify(mint("ES256", claims_for("tom", clock.now), kid="k1"), "tom", spec)
    assert "10000 keys" in info.value.message


async def test_redirect_is_not_followed(
    jwks_server: JwksServer, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    jwks_server.serve("/elsewhere", jwks(jwk_with("ES256")))
    jwks_server.mode = "redirect"
    jwks_server.redirect_to = jwks_server.url("/elsewhere")
    with pytest.raises(TokenRejected) as info:
        await verifier.verify(mint("ES256", claims_for("tom", clock.now)), "tom", spec)
    assert "redirect" in info.value.message
    assert jwks_server.requests["/elsewhere"] == 0


async def test_failed_first_fetch_is_retried_only_after_the_interval(
    jwks_server: JwksServer, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    jwks_server.mode, jwks_server.status = "status", 503
    token = mint("ES256", claims_for("tom", clock.now, ttl=3600))
    for _ in range(20):
        assert await reason_of(verifier, token, spec) == "key_server_unreachable"
    assert jwks_server.requests["/jwks"] == 1
    jwks_server.mode = "ok"
    clock.advance(COOLDOWN + 1)
    assert await verifier.verify(token, "tom", spec)
    assert jwks_server.requests["/jwks"] == 2


async def test_unreachable_server(verifier: TokenVerifier, clock: FakeClock) -> None:
    probe = JwksServer()
    await probe.start()
    await probe.stop()  # a port nothing listens on
    spec = TokenAuthSpec(probe.url("/jwks"))
    with pytest.raises(TokenRejected) as info:
        await verifier.verify(mint("ES256", claims_for("tom", clock.now)), "tom", spec)
    assert info.value.reason == "key_server_unreachable"
    assert info.value.message.startswith(f"key server unreachable: {spec.jwks_url} (")


async def test_bad_keys_inside_a_jwks_are_skipped(
    jwks_server: JwksServer, verifier: TokenVerifier, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="fe.auth.jwks")
    document = jwks(
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {"kty": "RSA", "kid": "broken", "n": "!!!", "e": "AQAB"},
        {"kty": "EC", "kid": "offcurve", "crv": "P-256", "x": "AA" * 21 + "A", "y": "AA" * 21 + "A"},
        {"kty": "XYZ", "kid": "odd"},
        jwk_with("ES256", use="enc", kid="encryption"),
        jwk_with("ES256"),
    )
    spec = TokenAuthSpec(jwks_server.serve("/mixed", document))
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now)), "tom", spec)
    skipped = [r.message for r in caplog.records if "skipped" in r.message]
    assert len(skipped) == 5


async def test_key_sets_of_different_urls_never_mix(
    jwks_server: JwksServer, verifier: TokenVerifier, clock: FakeClock
) -> None:
    spec_a = TokenAuthSpec(jwks_server.serve("/a", jwks(jwk_with("ES256"))), required_issuer=("https://a",))
    spec_b = TokenAuthSpec(jwks_server.serve("/b", jwks(jwk_with("ES256-b"))), required_issuer=("https://b",))
    token_b_keys = mint("ES256-b", claims_for("tom", clock.now, iss="https://a"))
    assert await verifier.verify(mint("ES256-b", claims_for("tom", clock.now, iss="https://b")), "tom", spec_b)
    assert await reason_of(verifier, token_b_keys, spec_a) == "unknown_kid"
    assert jwks_server.requests == {"/a": 2, "/b": 1}  # the kid miss refetched A's set, never B's


async def test_a_cancelled_login_does_not_cancel_the_shared_fetch(
    jwks_server: JwksServer, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    jwks_server.delay = 0.2
    token = mint("ES256", claims_for("tom", clock.now))
    first = asyncio.create_task(verifier.verify(token, "tom", spec))
    second = asyncio.create_task(verifier.verify(token, "tom", spec))
    await asyncio.sleep(0.05)
    first.cancel()
    assert (await second)["sub"] == "tom"
    with pytest.raises(asyncio.CancelledError):
        await first
    assert jwks_server.requests["/jwks"] == 1


async def test_aclose_stops_background_refreshes(
    jwks_server: JwksServer, spec: TokenAuthSpec, make_verifier: Callable[..., TokenVerifier], clock: FakeClock
) -> None:
    verifier = make_verifier(refresh_seconds=REFRESH)
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now)), "tom", spec)
    jwks_server.mode = "hang"
    clock.advance(REFRESH + 1)
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now, jti="1")), "tom", spec)
    await wait_until(lambda: jwks_server.requests["/jwks"] == 2)
    started = time.monotonic()
    await verifier.aclose()
    assert time.monotonic() - started < 0.5
    assert not verifier.key_store.remote._background


# ---- TLS ----


async def test_https_with_configured_ca_bundle(
    tls_jwks_server: JwksServer, make_verifier: Callable[..., TokenVerifier], clock: FakeClock, home: Path
) -> None:
    spec = TokenAuthSpec(tls_jwks_server.serve("/jwks", jwks(jwk_with("ES256"))))
    assert spec.jwks_url.startswith("https://127.0.0.1:")
    verifier = make_verifier(ca_bundle=home / "conf/tls/test-ca.pem")
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now)), "tom", spec)
    assert tls_jwks_server.requests["/jwks"] == 1


async def test_https_with_an_untrusted_certificate_fails(
    tls_jwks_server: JwksServer, make_verifier: Callable[..., TokenVerifier], clock: FakeClock
) -> None:
    spec = TokenAuthSpec(tls_jwks_server.serve("/jwks", jwks(jwk_with("ES256"))))
    verifier = make_verifier()  # system CAs only: our test CA is unknown
    with pytest.raises(TokenRejected) as info:
        await verifier.verify(mint("ES256", claims_for("tom", clock.now)), "tom", spec)
    assert info.value.reason == "key_server_unreachable"
    assert "CERTIFICATE_VERIFY_FAILED" in info.value.message or "certificate" in info.value.message.lower()


async def test_missing_ca_bundle_is_a_failed_fetch(
    tls_jwks_server: JwksServer, make_verifier: Callable[..., TokenVerifier], clock: FakeClock, home: Path
) -> None:
    spec = TokenAuthSpec(tls_jwks_server.serve("/jwks", jwks(jwk_with("ES256"))))
    verifier = make_verifier(ca_bundle=home / "conf/tls/missing.pem")
    assert await reason_of(verifier, mint("ES256", claims_for("tom", clock.now)), spec) == "key_server_unreachable"


async def test_injected_client_is_used_and_still_refuses_redirects(
    jwks_server: JwksServer, spec: TokenAuthSpec, home: Path, clock: FakeClock
) -> None:
    import httpx

    async with httpx.AsyncClient(follow_redirects=True) as client:
        verifier = TokenVerifier(home / "conf", clock=clock, http_client=client)
        assert await verifier.verify(mint("ES256", claims_for("tom", clock.now)), "tom", spec)
        jwks_server.serve("/elsewhere", jwks(jwk_with("ES256")))
        jwks_server.mode, jwks_server.redirect_to = "redirect", jwks_server.url("/elsewhere")
        other = TokenAuthSpec(jwks_server.url("/other"))
        assert await reason_of(verifier, mint("ES256", claims_for("tom", clock.now)), other) == "key_server_unreachable"
        assert jwks_server.requests["/elsewhere"] == 0
        await verifier.aclose()
        assert not client.is_closed  # not ours to close
