"""Parsing JWKs into bound verification keys."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fe.auth.devtools import public_jwk
from fe.auth.jwk import KeyParseError, KeySet, parse_jwk, parse_jwks
from tests.auth.jose_helpers import jwk_with, signing_key


@pytest.mark.parametrize(
    ("name", "algorithms"),
    [
        ("RS256", {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}),
        ("ES256", {"ES256"}),
        ("ES384", {"ES384"}),
        ("ES512", {"ES512"}),
        ("EdDSA", {"EdDSA"}),
        ("Ed448", {"EdDSA"}),
    ],
)
def test_key_type_binds_algorithms(name: str, algorithms: set[str]) -> None:
    key = parse_jwk(jwk_with(name))
    assert key.algorithms == algorithms
    assert key.kid == signing_key(name)[1]["kid"]


def test_jwk_alg_narrows_to_one() -> None:
    assert parse_jwk(jwk_with("RS256", alg="PS384")).algorithms == {"PS384"}


@pytest.mark.parametrize(
    ("name", "members", "message"),
    [
        ("RS256", {"alg": "ES256"}, "does not fit"),
        ("ES256", {"alg": "ES384"}, "does not fit"),
        ("ES256", {"alg": "HS256"}, "not supported"),
        ("ES256", {"alg": "none"}, "not supported"),
        ("ES256", {"use": "enc"}, "not 'sig'"),
        ("ES256", {"key_ops": ["encrypt"]}, "key_ops"),
        ("ES256", {"key_ops": "verify"}, "key_ops"),
        ("ES256", {"kid": 5}, "'kid'"),
        ("ES256", {"kid": ""}, "'kid'"),
        ("ES256", {"kid": "k" * 300}, "'kid'"),
        ("ES256", {"crv": "P-384"}, "48 bytes"),
        ("ES256", {"crv": "secp256k1"}, "not supported"),
        ("ES256", {"x": "AAAA"}, "32 bytes"),
        ("ES256", {"x": "not base64!"}, "base64url"),
        ("ES256", {"y": None}, "32 bytes"),
        ("RS256", {"n": None}, "missing 'n'"),
        ("RS256", {"e": ""}, "'e' is empty"),
        ("RS256", {"n": 12345}, "base64url"),
        ("EdDSA", {"crv": "X25519"}, "not supported"),
        ("EdDSA", {"x": "AAAA"}, "32 bytes"),
        ("ES256", {"kty": "oct", "k": "c2VjcmV0"}, "symmetric"),
        ("ES256", {"kty": "XYZ"}, "kty 'XYZ'"),
        ("ES256", {"kty": None}, "kty None"),
    ],
)
def test_unusable_jwks(name: str, members: dict[str, Any], message: str) -> None:
    with pytest.raises(KeyParseError, match=message):
        parse_jwk(jwk_with(name, **members))


def test_point_not_on_curve() -> None:
    jwk = jwk_with("ES256")
    jwk["y"] = jwk["x"]
    with pytest.raises(KeyParseError, match="bad EC key material"):
        parse_jwk(jwk)


def test_small_rsa_modulus() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(KeyParseError, match="1024 bits is too small"):
        parse_jwk(public_jwk(weak))


def test_even_rsa_exponent() -> None:
    with pytest.raises(KeyParseError, match="bad RSA key material"):
        parse_jwk(jwk_with("RS256", e="Ag"))


def test_non_object() -> None:
    with pytest.raises(KeyParseError):
        parse_jwk(["kty", "EC"])


def test_jwks_limits_and_skips() -> None:
    keys, skipped = parse_jwks({"keys": [jwk_with("ES256"), {"kty": "oct"}, "x"]}, "src", max_keys=3)
    assert len(keys.keys) == 1 and len(skipped) == 2
    with pytest.raises(KeyParseError, match="more than the limit"):
        parse_jwks({"keys": [jwk_with("ES256")] * 4}, "src", max_keys=3)
    with pytest.raises(KeyParseError, match="no usable keys"):
        parse_jwks({"keys": []}, "src", max_keys=3)


def test_key_set_indexes() -> None:
    pem_like = parse_jwk({k: v for k, v in jwk_with("ES256-b").items() if k != "kid"})
    named = parse_jwk(jwk_with("ES256"))
    keys = KeySet("src", (named, pem_like))
    assert keys.by_kid == {named.kid: (named,)}
    assert keys.without_kid == (pem_like,)
    assert named in keys.members and parse_jwk(jwk_with("ES256")) not in keys.members  # identity, not equality


def test_devtools_jwk_round_trips() -> None:
    private = ec.generate_private_key(ec.SECP521R1())
    jwk = public_jwk(private, "ES512")
    key = parse_jwk(jwk)
    assert key.algorithms == {"ES512"}
    assert key.public_key.public_numbers() == private.public_key().public_numbers()
