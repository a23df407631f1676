"""The verified-token cache is bounded by bytes as well as entries, and its size estimate is honest: never below
what an entry really holds once its claims are decoded (measured with tracemalloc)."""

from __future__ import annotations

import gc
import hashlib
import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fe.auth import b64url
from fe.auth.jwk import VerificationKey, parse_jwk
from fe.auth.jws import parse_compact
from fe.auth.token_cache import CachedVerification, VerifiedTokenCache, estimate_size
from fe.auth.token_spec import TokenAuthSpec
from fe.auth.verifier import TokenVerifier
from tests.auth.jose_helpers import FakeClock, claims_for, jwk_with, jwks, mint

MiB = 1024 * 1024
_HEADER = b64url.encode(b'{"alg":"ES256","typ":"JWT"}')
_SPEC = TokenAuthSpec("keys.jwks")


@pytest.fixture(scope="module")
def key() -> VerificationKey:
    return parse_jwk(jwk_with("ES256"))


def _token(claims: dict[str, Any] | bytes) -> bytes:
    """An unsigned compact token (the cache never looks at signatures) carrying exactly these claims."""
    payload = claims if isinstance(claims, bytes) else json.dumps(claims, ensure_ascii=False).encode()
    return f"{_HEADER}.{b64url.encode(payload)}.AAAA".encode()


def _cache_token(cache: VerifiedTokenCache, key: VerificationKey, token: bytes, user: str = "tom") -> None:
    """Decode and insert the way TokenVerifier does after a full verification."""
    parsed = parse_compact(token)
    entry = CachedVerification(parsed.claims, 2e9, key, estimate_size(parsed.payload, user))
    cache.put((hashlib.sha256(token).digest(), user, _SPEC), entry)


def test_ten_thousand_entries_of_16k_claims_stay_within_the_byte_budget(key: VerificationKey) -> None:
    cache = VerifiedTokenCache(10_000, 64 * MiB)
    token = _token({"sub": "tom", "exp": 2_000_000_000, "blob": "x" * (16 * 1024)})
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(10_000):
            _cache_token(cache, key, token, user=f"user{i}")  # one entry per user, each with its own decoded claims
            assert cache.bytes <= 64 * MiB
        gc.collect()
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert 1000 < len(cache) < 10_000  # bounded by bytes, not by count
    assert held <= 64 * MiB


def _shapes(i: int) -> dict[str, dict[str, Any] | bytes]:
    """Claims of about a dozen KB (unless noted) in shapes that make Python objects far larger than their JSON."""
    typical = {
        **claims_for("tom", 1_800_000_000 + i, iss="https://idp.example.com/realms/main", aud=["fe", "account"]),
        "jti": f"0f1e2d3c-4b5a-6978-8695-{i:012d}",
        "azp": "fe",
        "nonce": "n-0S6_WzA2Mj",
        "session_state": "6ad5c2f0-1b3a-4d8e-9f77-0e5c2a9b1d44",
        "email_verified": True,
        "name": "Tom Smith",
        "email": "tom@example.com",
        "groups": ["/eng", "/eng/db", "/oncall"],
        "realm_access": {"roles": ["offline_access", "uma_authorization", "default-roles-main"]},
    }
    return {
        "minimal": {"sub": "tom", "exp": 2_000_000_000 + i},
        "typical": typical,
        "long_string": {"sub": "tom", "exp": i, "blob": "x" * 11_000},
        "many_strings": {"sub": "tom", "exp": i, "groups": [f"g{j:05d}" for j in range(1200)]},
        "many_members": {f"k{j:04d}": j * 1000 + i for j in range(900)},
        "large_ints": {"sub": "tom", "a": list(range(10**6 + i, 10**6 + i + 1800))},
        "floats": {"sub": "tom", "exp": i, "a": [j + 0.5 for j in range(1500)]},
        "small_objects": {"sub": "tom", "exp": i, "a": [{"a": 1}] * 1300},
        "empty_objects": {"sub": "tom", "exp": i, "a": [{}] * 2500},
        "nested_arrays": {"exp": i, "a": [[[]]] * 1500},
        "deep_array": {"exp": i, "a": json.loads("[" * 900 + "]" * 900)},
        "astral_char": {"sub": "tom", "exp": i, "s": "a" * 3000 + "\U0001f600"},  # the whole str in 4-byte units
        "escaped_char": f'{{"sub":"tom","exp":{i},"s":"{"a" * 3000}\\ud83d\\ude00"}}'.encode(),
        "latin1": {"sub": "tom", "exp": i, "s": "é" * 3000},
        "constants": {"sub": "tom", "exp": i, "a": [True, None, False] * 700},
        "object_members": {"exp": i, **{f"k{j:04d}": {"x": j} for j in range(500)}},
    }


@pytest.mark.parametrize("shape", list(_shapes(0)))
def test_estimate_is_never_below_what_an_entry_holds(shape: str, key: VerificationKey) -> None:
    tokens = [_token(_shapes(i)[shape]) for i in range(20)]
    cache = VerifiedTokenCache(1000, 1 << 40)
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for token in tokens:
            _cache_token(cache, key, token)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    held = after - before
    assert len(cache) == len(tokens)
    assert cache.bytes >= held, f"{shape}: estimated {cache.bytes} bytes, entries hold {held}"
    if shape == "typical":
        assert cache.bytes <= 1.5 * held  # not so pessimistic that the count limit never applies


async def test_verifier_keeps_its_cache_within_cache_bytes(
    home: Path, make_verifier: Callable[..., TokenVerifier], clock: FakeClock
) -> None:
    (home / "conf" / "keys.jwks").write_text(json.dumps(jwks(jwk_with("ES256"))))
    verifier = make_verifier(cache_bytes=40_000, max_token_bytes=64 * 1024)
    big = "x" * 15_000
    for i in range(5):
        await verifier.verify(mint("ES256", claims_for("tom", clock.now, jti=str(i), blob=big)), "tom", _SPEC)
        assert verifier.stats["token_cache_bytes"] <= 40_000
    assert verifier.stats["token_cache_size"] == 2
    huge = mint("ES256", claims_for("tom", clock.now, blob="y" * 45_000))
    await verifier.verify(huge, "tom", _SPEC)  # verified, but heavier than the whole cache: not kept
    await verifier.verify(huge, "tom", _SPEC)
    assert verifier.stats["token_cache_hits"] == 0
