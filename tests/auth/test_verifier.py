"""TokenVerifier against local key files: every algorithm, and the negative cases of token-verification.md."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from fe.auth.token_spec import TokenAuthSpec
from fe.auth.verifier import TokenRejected, TokenVerifier
from tests.auth.jose_helpers import (
    ALL_ALGORITHMS,
    FakeClock,
    b64,
    b64json,
    claims_for,
    forge,
    jwk_with,
    jwks,
    mint,
    resign,
    signing_key,
)

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def write_keys(home: Path, name: str, *keys: dict[str, Any]) -> TokenAuthSpec:
    (home / "conf" / name).write_text(json.dumps(jwks(*keys)))
    return TokenAuthSpec(name)


async def rejected(verifier: TokenVerifier, token: str | bytes, spec: TokenAuthSpec, user: str = "tom") -> str:
    with pytest.raises(TokenRejected) as info:
        await verifier.verify(token, user, spec)
    assert info.value.message
    return info.value.reason


@pytest.fixture
def spec(home: Path) -> TokenAuthSpec:
    """A set with one RSA, one P-256 and one Ed25519 key, each with a kid."""
    return write_keys(home, "mixed.jwks", jwk_with("RS256"), jwk_with("ES256"), jwk_with("EdDSA"))


# ---- positive: every algorithm ----


@pytest.mark.parametrize("alg", [*ALL_ALGORITHMS, "Ed448"])
async def test_every_algorithm_verifies(alg: str, home: Path, verifier: TokenVerifier, clock: FakeClock) -> None:
    spec = write_keys(home, "one.jwks", jwk_with(alg))
    token = mint(alg, claims_for("tom", clock.now))
    claims = await verifier.verify(token, "tom", spec)
    assert claims["sub"] == "tom"


@pytest.mark.parametrize(
    ("key", "alg"), [("RS256", "RS256"), ("RS256", "PS384"), ("ES256", "ES256"), ("EdDSA", "EdDSA")]
)
async def test_token_without_kid_uses_the_single_fitting_key(
    key: str, alg: str, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    token = mint(key, claims_for("tom", clock.now), alg=alg, kid=None)
    assert (await verifier.verify(token, "tom", spec))["sub"] == "tom"


async def test_bytes_token_with_trailing_newline(
    spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    token = mint("ES256", claims_for("tom", clock.now)).encode() + b"\n"
    assert (await verifier.verify(token, "tom", spec))["sub"] == "tom"


async def test_issuer_audience_and_principal_field(home: Path, verifier: TokenVerifier, clock: FakeClock) -> None:
    spec = TokenAuthSpec(
        write_keys(home, "k.jwks", jwk_with("ES256")).jwks_url,
        principal_field="preferred_username",
        required_issuer=("https://a.example", "https://b.example"),
        required_audience=("fe", "other"),
    )
    claims = claims_for("x", clock.now, iss="https://b.example", aud=["nope", "fe"], preferred_username="tom")
    assert (await verifier.verify(mint("ES256", claims), "tom", spec))["preferred_username"] == "tom"


async def test_allowed_algorithms_accepts_listed(home: Path, verifier: TokenVerifier, clock: FakeClock) -> None:
    spec = TokenAuthSpec(write_keys(home, "k.jwks", jwk_with("RS256")).jwks_url, allowed_algorithms=("PS256",))
    await verifier.verify(mint("RS256", claims_for("tom", clock.now), alg="PS256"), "tom", spec)


# ---- 1. alg none, empty signature, missing alg ----


@pytest.mark.parametrize("alg", ["none", "None", "nOnE", "NONE"])
async def test_alg_none_is_refused(alg: str, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock) -> None:
    token = forge({"alg": alg, "kid": signing_key("ES256")[1]["kid"]}, claims_for("tom", clock.now))
    assert await rejected(verifier, token, spec) == "alg_not_allowed"


async def test_alg_none_with_empty_signature(spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock) -> None:
    token = f"{b64json({'alg': 'none'})}.{b64json(claims_for('tom', clock.now))}."
    assert await rejected(verifier, token, spec) == "malformed"


async def test_empty_signature(spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock) -> None:
    token = mint("ES256", claims_for("tom", clock.now))
    assert await rejected(verifier, token.rsplit(".", 1)[0] + ".", spec) == "malformed"


@pytest.mark.parametrize("header", [{}, {"alg": None}, {"alg": 256}, {"alg": ["ES256"]}, {"typ": "JWT"}])
async def test_missing_or_non_string_alg(header: dict[str, Any], spec: TokenAuthSpec, verifier: TokenVerifier) -> None:
    assert await rejected(verifier, forge(header, {"sub": "tom", "exp": 2e9}), spec) == "malformed"


# ---- 2. HS256 with the RSA public key as the secret ----


def _hs256(secret: bytes, claims: dict[str, Any], kid: str | None) -> str:
    header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
    signing_input = f"{b64json(header)}.{b64json(claims)}".encode()
    return f"{signing_input.decode()}.{b64(hmac.new(secret, signing_input, hashlib.sha256).digest())}"


@pytest.mark.parametrize("form", ["pem", "der", "jwk"])
@pytest.mark.parametrize("with_kid", [True, False])
async def test_hs256_with_public_key_as_secret(
    form: str, with_kid: bool, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    private, jwk = signing_key("RS256")
    public = private.public_key()
    secret = {
        "pem": public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        "der": public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        "jwk": json.dumps(jwk).encode(),
    }[form]
    token = _hs256(secret, claims_for("tom", clock.now), jwk["kid"] if with_kid else None)
    assert await rejected(verifier, token, spec) == "alg_not_allowed"


@pytest.mark.parametrize("alg", ["HS384", "HS512", "ES256K", "RS1", "PS256 ", "es256", "EdDSA25519", ""])
async def test_algorithms_outside_the_allow_list(alg: str, spec: TokenAuthSpec, verifier: TokenVerifier) -> None:
    assert await rejected(verifier, forge({"alg": alg}, {"sub": "tom", "exp": 2e9}), spec) == "alg_not_allowed"


# ---- 3. alg / key mismatch ----


async def test_es256_with_rsa_jwk(spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock) -> None:
    token = mint("ES256", claims_for("tom", clock.now), kid=signing_key("RS256")[1]["kid"])
    assert await rejected(verifier, token, spec) == "alg_key_mismatch"


async def test_rs256_with_ec_jwk(spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock) -> None:
    token = mint("RS256", claims_for("tom", clock.now), kid=signing_key("ES256")[1]["kid"])
    assert await rejected(verifier, token, spec) == "alg_key_mismatch"


async def test_es512_with_p256_key(spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock) -> None:
    token = mint("ES512", claims_for("tom", clock.now), kid=signing_key("ES256")[1]["kid"])
    assert await rejected(verifier, token, spec) == "alg_key_mismatch"


async def test_eddsa_with_rsa_key_without_kid(home: Path, verifier: TokenVerifier, clock: FakeClock) -> None:
    spec = write_keys(home, "rsa.jwks", jwk_with("RS256"))
    token = mint("EdDSA", claims_for("tom", clock.now), kid=None)
    assert await rejected(verifier, token, spec) == "alg_key_mismatch"


async def test_jwk_alg_must_equal_header_alg(home: Path, verifier: TokenVerifier, clock: FakeClock) -> None:
    spec = write_keys(home, "k.jwks", jwk_with("RS256", alg="RS256"))
    assert await verifier.verify(mint("RS256", claims_for("tom", clock.now)), "tom", spec)
    token = mint("RS256", claims_for("tom", clock.now), alg="PS256")
    assert await rejected(verifier, token, spec) == "alg_key_mismatch"


async def test_user_allowed_algorithms_narrow(home: Path, verifier: TokenVerifier, clock: FakeClock) -> None:
    spec = TokenAuthSpec(write_keys(home, "k.jwks", jwk_with("RS256")).jwks_url, allowed_algorithms=("PS256",))
    assert await rejected(verifier, mint("RS256", claims_for("tom", clock.now)), spec) == "alg_not_allowed"


# ---- 4. keys in the header are never used ----


@pytest.mark.parametrize("member", ["jwk", "jku", "x5u", "x5c"])
async def test_header_key_references_are_ignored(
    member: str, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    attacker_private, attacker_jwk = signing_key("ES256-attacker")
    value: Any = {
        "jwk": attacker_jwk,
        "jku": "http://127.0.0.1:9/evil.jwks",
        "x5u": "http://127.0.0.1:9/evil.pem",
        "x5c": ["MIIBkTCB+wIJAKHHIG..."],
    }[member]
    claims = claims_for("tom", clock.now)
    # Signed by the attacker; once with the attacker's kid, once with no kid at all.
    with_kid = resign("ES256-attacker", {"alg": "ES256", "kid": attacker_jwk["kid"], member: value}, claims)
    assert await rejected(verifier, with_kid, spec) == "unknown_kid"
    without_kid = resign("ES256-attacker", {"alg": "ES256", member: value}, claims)
    assert await rejected(verifier, without_kid, spec) == "bad_signature"
    assert attacker_private is not None


# ---- 5. kid injection and ambiguity ----


@pytest.mark.parametrize("kid", ["../../etc/passwd", "' OR 1=1; DROP TABLE users; --", "", "\x00\n"])
async def test_odd_kids_are_just_unknown(
    kid: str, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    token = resign("ES256", {"alg": "ES256", "kid": kid}, claims_for("tom", clock.now))
    assert await rejected(verifier, token, spec) == "unknown_kid"


@pytest.mark.parametrize("kid", ["k" * 10_000, 12345, None, ["a"], {"a": 1}])
async def test_kid_must_be_a_short_string(
    kid: object, spec: TokenAuthSpec, make_verifier: Callable[..., TokenVerifier]
) -> None:
    verifier = make_verifier(max_token_bytes=64 * 1024)
    token = resign("ES256", {"alg": "ES256", "kid": kid}, {"sub": "tom", "exp": 2e9})
    assert await rejected(verifier, token, spec) == "malformed"


async def test_no_kid_with_several_fitting_keys(home: Path, verifier: TokenVerifier, clock: FakeClock) -> None:
    spec = write_keys(home, "two.jwks", jwk_with("ES256"), jwk_with("ES256-b"))
    assert await rejected(verifier, mint("ES256", claims_for("tom", clock.now), kid=None), spec) == "ambiguous_key"
    # With its kid it is fine.
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now)), "tom", spec)


async def test_duplicate_kid_of_the_same_type_is_ambiguous(
    home: Path, verifier: TokenVerifier, clock: FakeClock
) -> None:
    spec = write_keys(home, "dup.jwks", jwk_with("ES256", kid="same"), jwk_with("ES256-b", kid="same"))
    assert await rejected(verifier, mint("ES256", claims_for("tom", clock.now), kid="same"), spec) == "ambiguous_key"


async def test_no_kid_with_one_key_per_type(spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock) -> None:
    # one RSA, one EC, one OKP key: a kid-less ES256 token has exactly one candidate
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now), kid=None), "tom", spec)


# ---- 7. ECDSA signature forms ----


def _split_es256(token: str) -> tuple[str, int, int]:
    head, signature = token.rsplit(".", 1)
    import base64

    raw = base64.urlsafe_b64decode(signature + "==")
    return head, int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")


def _raw(r: int, s: int, size: int = 32) -> bytes:
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


@pytest.mark.parametrize("form", ["zero", "r_is_n", "s_is_n", "r_plus_n", "der", "short", "long", "high_s_swapped"])
async def test_ecdsa_signature_forms(form: str, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock) -> None:
    token = mint("ES256", claims_for("tom", clock.now))
    head, r, s = _split_es256(token)
    n = P256_ORDER
    signature = {
        "zero": _raw(0, 0),
        "r_is_n": _raw(n, s),
        "s_is_n": _raw(r, n),
        "r_plus_n": _raw(r + n, s, 33),
        "der": encode_dss_signature(r, s),
        "short": _raw(r, s)[:63],
        "long": _raw(r, s) + b"\x00",
        "high_s_swapped": _raw(s, r),
    }[form]
    assert await rejected(verifier, f"{head}.{b64(signature)}", spec) == "bad_signature"
    # and the untouched token is fine
    assert decode_dss_signature(encode_dss_signature(r, s)) == (r, s)
    assert await verifier.verify(token, "tom", spec)


async def test_signature_over_other_payload(spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock) -> None:
    good = mint("RS256", claims_for("tom", clock.now))
    other = mint("RS256", claims_for("root", clock.now))
    head = good.rsplit(".", 1)[0].split(".")[0] + "." + other.split(".")[1]
    assert await rejected(verifier, f"{head}.{good.rsplit('.', 1)[1]}", spec) == "bad_signature"


# ---- 8. crit ----


@pytest.mark.parametrize("crit", [["exp"], ["b64"], ["urn:example:unknown"], [], "x"])
async def test_crit_is_refused(crit: Any, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock) -> None:
    header = {"alg": "ES256", "kid": signing_key("ES256")[1]["kid"], "crit": crit, "urn:example:unknown": 1}
    token = resign("ES256", header, claims_for("tom", clock.now))
    assert await rejected(verifier, token, spec) == "crit_unsupported"


# ---- 9. size, dots, base64url, JSON ----


async def test_oversized_token_is_refused_before_parsing(
    spec: TokenAuthSpec, make_verifier: Callable[..., TokenVerifier]
) -> None:
    verifier = make_verifier(max_token_bytes=1000)
    assert await rejected(verifier, "a" * 1001, spec) == "too_large"
    assert await rejected(verifier, b"." * 100_000, spec) == "too_large"
    assert await rejected(verifier, "é" * 1001, spec) == "too_large"


async def test_many_dots_within_the_size_limit(
    spec: TokenAuthSpec, make_verifier: Callable[..., TokenVerifier]
) -> None:
    verifier = make_verifier(max_token_bytes=200_000)
    assert await rejected(verifier, "." * 100_000, spec) == "malformed"
    assert await rejected(verifier, "a." * 50_000 + "a", spec) == "malformed"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "   ",
        "abc",
        "a.b",
        "a..c",
        ".b.c",
        "a+b.c.d",
        "a/b.c.d",
        "a=.b.c",
        "a b.c.d",
        "YQ.YQ.Y",  # length ≡ 1 (mod 4) is not base64
        "ünïcode.a.b",
    ],
)
async def test_bad_shapes(token: str, spec: TokenAuthSpec, verifier: TokenVerifier) -> None:
    assert await rejected(verifier, token, spec) == "malformed"


@pytest.mark.parametrize(
    "payload",
    [b"[1, 2]", b'"tom"', b"42", b"null", b"{not json", b'{"sub": "tom", "sub": "root", "exp": 2e9}', b"\xff\xfe"],
)
async def test_payload_must_be_a_json_object(payload: bytes, spec: TokenAuthSpec, verifier: TokenVerifier) -> None:
    header = {"alg": "ES256", "kid": signing_key("ES256")[1]["kid"]}
    assert await rejected(verifier, forge(header, payload), spec) == "malformed"


@pytest.mark.parametrize("header", [b"[]", b'"ES256"', b"{", b'{"alg": "ES256", "alg": "none"}', b'{"alg": NaN}'])
async def test_header_must_be_a_json_object(header: bytes, spec: TokenAuthSpec, verifier: TokenVerifier) -> None:
    assert await rejected(verifier, forge(header, {"sub": "tom"}), spec) == "malformed"


async def test_nan_claims_are_refused(spec: TokenAuthSpec, verifier: TokenVerifier) -> None:
    header = {"alg": "ES256", "kid": signing_key("ES256")[1]["kid"]}
    assert await rejected(verifier, forge(header, b'{"sub": "tom", "exp": Infinity}'), spec) == "malformed"


# ---- 11. lifetime ----


@pytest.mark.parametrize(("offset", "accepted"), [(-59, True), (-61, False), (-60, False), (100, True)])
async def test_exp_leeway_boundaries(
    offset: int, accepted: bool, spec: TokenAuthSpec, make_verifier: Callable[..., TokenVerifier], clock: FakeClock
) -> None:
    verifier = make_verifier(leeway_seconds=60, cache_entries=0)
    token = mint("ES256", {"sub": "tom", "exp": int(clock.now) + offset})
    if accepted:
        assert await verifier.verify(token, "tom", spec)
    else:
        assert await rejected(verifier, token, spec) == "expired"


async def test_expired_message_names_the_time(spec: TokenAuthSpec, verifier: TokenVerifier) -> None:
    token = mint("ES256", {"sub": "tom", "exp": 1_795_402_800})
    with pytest.raises(TokenRejected) as info:
        await verifier.verify(token, "tom", spec)
    assert info.value.message == "token expired at 2026-11-23T03:00:00Z"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"sub": "tom"}, "exp_missing"),
        ({"sub": "tom", "exp": None}, "exp_missing"),
        ({"sub": "tom", "exp": "2000000000"}, "malformed"),
        ({"sub": "tom", "exp": True}, "malformed"),
        ({"sub": "tom", "exp": [2_000_000_000]}, "malformed"),
        ({"sub": "tom", "exp": 10**30}, "malformed"),
        ({"sub": "tom", "exp": 1e300}, "malformed"),
        ({"sub": "tom", "exp": -1}, "expired"),
        ({"sub": "tom", "exp": 0}, "expired"),
        ({"sub": "tom", "exp": "soon"}, "malformed"),
    ],
)
async def test_exp_must_be_a_sane_number(
    claims: dict[str, Any], reason: str, spec: TokenAuthSpec, verifier: TokenVerifier
) -> None:
    assert await rejected(verifier, mint("ES256", claims), spec) == reason


async def test_nbf_and_iat(spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock) -> None:
    now = int(clock.now)
    assert await rejected(verifier, mint("ES256", claims_for("tom", now, nbf=now + 61)), spec) == "not_yet_valid"
    assert await verifier.verify(mint("ES256", claims_for("tom", now, nbf=now + 59)), "tom", spec)
    assert await rejected(verifier, mint("ES256", claims_for("tom", now, iat=now + 61)), spec) == "issued_in_future"
    assert await verifier.verify(mint("ES256", claims_for("tom", now, iat=now + 59)), "tom", spec)
    assert await rejected(verifier, mint("ES256", claims_for("tom", now, nbf="now")), spec) == "malformed"
    assert await rejected(verifier, mint("ES256", claims_for("tom", now, iat=None) | {"iat": "x"}), spec) == "malformed"


# ---- 12. audience ----


@pytest.fixture
def strict_spec(home: Path) -> TokenAuthSpec:
    name = write_keys(home, "k.jwks", jwk_with("ES256")).jwks_url
    return TokenAuthSpec(name, required_issuer=("https://idp.example/realm",), required_audience=("fe-client",))


def _strict(clock: FakeClock, **overrides: Any) -> str:
    claims = claims_for("tom", clock.now, iss="https://idp.example/realm", aud="fe-client")
    claims.update(overrides)
    header = {"alg": "ES256", "kid": signing_key("ES256")[1]["kid"]}
    return resign("ES256", header, {k: v for k, v in claims.items() if v is not None})  # PyJWT refuses odd iss


@pytest.mark.parametrize(
    "aud",
    ["other", ["a", "b"], [], "FE-CLIENT", "fe-client ", ["fe-client2"], None, 5, [["fe-client"]], ["fe-client", 5]],
)
async def test_wrong_audience(aud: Any, strict_spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock) -> None:
    assert await verifier.verify(_strict(clock), "tom", strict_spec)
    token = _strict(clock, aud=aud) if aud is not None else _strict(clock, aud=None)
    assert await rejected(verifier, token, strict_spec) == "wrong_audience"


async def test_audience_array_with_a_match(
    strict_spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    assert await verifier.verify(_strict(clock, aud=["x", "fe-client"]), "tom", strict_spec)


# ---- 13. issuer ----


@pytest.mark.parametrize(
    "iss",
    [
        "https://idp.example/real",
        "https://idp.example/realm2",
        "https://idp.example/realm/",
        "HTTPS://IDP.EXAMPLE/REALM",
        "https://idp.example",
        ["https://idp.example/realm"],
        None,
        42,
    ],
)
async def test_wrong_issuer(iss: Any, strict_spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock) -> None:
    assert await rejected(verifier, _strict(clock, iss=iss), strict_spec) == "wrong_issuer"


# ---- 14. key sets never mix ----


async def test_issuer_a_token_with_issuer_b_kid(home: Path, verifier: TokenVerifier, clock: FakeClock) -> None:
    spec_a = write_keys(home, "a.jwks", jwk_with("ES256"))
    spec_b = write_keys(home, "b.jwks", jwk_with("ES256-b"))
    token_b = mint("ES256-b", claims_for("tom", clock.now))
    assert await verifier.verify(token_b, "tom", spec_b)
    assert await rejected(verifier, token_b, spec_a) == "unknown_kid"
    assert await rejected(verifier, mint("ES256-b", claims_for("tom", clock.now), kid=None), spec_a) == "bad_signature"


# ---- 15. principal ----


@pytest.mark.parametrize(
    ("sub", "reason"),
    [
        (None, "principal_missing"),
        ("", "principal_missing"),
        (["tom"], "principal_mismatch"),
        (7, "principal_mismatch"),
        ("Tom", "principal_mismatch"),
        ("TOM", "principal_mismatch"),
        ("tom ", "principal_mismatch"),
        ("root", "principal_mismatch"),
        ({"name": "tom"}, "principal_mismatch"),
    ],
)
async def test_principal(sub: Any, reason: str, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock) -> None:
    claims = claims_for("tom", clock.now, sub=None)
    if sub is not None:
        claims["sub"] = sub
    assert await rejected(verifier, mint("ES256", claims), spec) == reason


async def test_principal_field_other_than_sub(home: Path, verifier: TokenVerifier, clock: FakeClock) -> None:
    spec = TokenAuthSpec(write_keys(home, "k.jwks", jwk_with("ES256")).jwks_url, principal_field="email")
    assert await rejected(verifier, mint("ES256", claims_for("tom", clock.now)), spec) == "principal_missing"
    token = mint("ES256", claims_for("root", clock.now, email="tom"))
    assert (await verifier.verify(token, "tom", spec))["email"] == "tom"


# ---- 16. JWE, JSON serialization, key files ----


async def test_jwe_is_refused(spec: TokenAuthSpec, verifier: TokenVerifier) -> None:
    jwe = ".".join([b64json({"alg": "RSA-OAEP", "enc": "A256GCM"}), b64(b"k" * 32), b64(b"iv"), b64(b"ct"), b64(b"t")])
    with pytest.raises(TokenRejected) as info:
        await verifier.verify(jwe, "tom", spec)
    assert info.value.reason == "malformed" and "JWE" in info.value.message


async def test_json_serialized_jws_is_refused(spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock) -> None:
    head, payload, signature = mint("ES256", claims_for("tom", clock.now)).split(".")
    flattened = json.dumps({"payload": payload, "protected": head, "signature": signature})
    general = json.dumps({"payload": payload, "signatures": [{"protected": head, "signature": signature}]})
    assert await rejected(verifier, flattened, spec) == "malformed"
    assert await rejected(verifier, general, spec) == "malformed"


async def test_missing_key_file(verifier: TokenVerifier, clock: FakeClock) -> None:
    with pytest.raises(TokenRejected) as info:
        await verifier.verify(mint("ES256", claims_for("tom", clock.now)), "tom", TokenAuthSpec("nope.jwks"))
    assert info.value.reason == "key_file_unreadable" and "conf/nope.jwks" in info.value.message


@pytest.mark.parametrize("path", ["../outside.jwks", "/etc/passwd", "sub/../../outside.jwks"])
async def test_key_file_outside_conf(path: str, home: Path, verifier: TokenVerifier, clock: FakeClock) -> None:
    (home / "outside.jwks").write_text(json.dumps(jwks(jwk_with("ES256"))))
    token = mint("ES256", claims_for("tom", clock.now))
    assert await rejected(verifier, token, TokenAuthSpec(path)) == "key_file_unreadable"


# ---- verified-token cache ----


async def test_cache_hit_skips_signature_but_not_exp(
    spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    token = mint("ES256", claims_for("tom", clock.now, ttl=120))
    await verifier.verify(token, "tom", spec)
    claims = await verifier.verify(token, "tom", spec)
    claims["sub"] = "mutated"  # the caller's copy; the cache keeps its own
    assert (await verifier.verify(token, "tom", spec))["sub"] == "tom"
    assert verifier.stats["token_cache_hits"] == 2
    clock.advance(120 + 60)
    assert await rejected(verifier, token, spec) == "expired"
    assert verifier.stats["token_cache_size"] == 0


async def test_cache_is_per_user_and_spec(
    home: Path, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    token = mint("ES256", claims_for("tom", clock.now))
    await verifier.verify(token, "tom", spec)
    assert await rejected(verifier, token, spec, user="root") == "principal_mismatch"
    strict = TokenAuthSpec(spec.jwks_url, required_audience=("fe",))
    assert await rejected(verifier, token, strict) == "wrong_audience"
    assert verifier.stats["token_cache_hits"] == 0


async def test_cache_entry_dies_with_its_key(home: Path, verifier: TokenVerifier, clock: FakeClock) -> None:
    spec = write_keys(home, "rot.jwks", jwk_with("ES256"), jwk_with("RS256"))
    token = mint("ES256", claims_for("tom", clock.now))
    await verifier.verify(token, "tom", spec)
    write_keys(home, "rot.jwks", jwk_with("RS256"), jwk_with("EdDSA"), jwk_with("ES384"))
    clock.advance(1.5)  # the file is looked at again after a second
    assert await rejected(verifier, token, spec) == "unknown_kid"


async def test_cache_is_bounded(
    spec: TokenAuthSpec, make_verifier: Callable[..., TokenVerifier], clock: FakeClock
) -> None:
    verifier = make_verifier(cache_entries=3)
    tokens = [mint("EdDSA", claims_for("tom", clock.now, jti=str(i))) for i in range(5)]
    for token in tokens:
        await verifier.verify(token, "tom", spec)
    assert verifier.stats["token_cache_size"] == 3
    await verifier.verify(tokens[0], "tom", spec)  # evicted: verified again
    assert verifier.stats["token_cache_hits"] == 0
    await verifier.verify(tokens[4], "tom", spec)
    assert verifier.stats["token_cache_hits"] == 1


async def test_stats_count_outcomes_by_reason(spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock) -> None:
    await verifier.verify(mint("ES256", claims_for("tom", clock.now)), "tom", spec)
    await rejected(verifier, "x", spec)
    await rejected(verifier, mint("ES256", claims_for("root", clock.now)), spec)
    stats = verifier.stats
    assert stats["accepted"] == 1
    assert stats["rejected"] == {"malformed": 1, "principal_mismatch": 1}


def test_rejection_reason_is_validated() -> None:
    with pytest.raises(ValueError):
        TokenRejected("made_up", "x")
