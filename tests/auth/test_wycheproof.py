"""Project Wycheproof's signature vectors (tests/vectors/wycheproof/) through fe's own path: a JWK built from each
test group's public key, parsed by fe.auth.jwk.parse_jwk, and every vector checked by fe.auth.jws.verify_signature
(what TokenVerifier calls with the key it selected).

Per file: no "invalid" vector verifies, no "valid" one is refused, and "acceptable" ones (signatures the standards
let a verifier take or refuse) get the outcome fe chose for their flag in ACCEPTABLE. A group whose key fe refuses
by policy (RSA under 2048 bits) is not a refused signature: the test asserts that the key itself is refused and
counts its vectors apart. The counts per file are pinned in FILES, so a changed vector file shows.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from fe.auth.jwk import MIN_RSA_BITS, KeyParseError, parse_jwk
from fe.auth.jws import verify_signature

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "wycheproof"


class Counts(NamedTuple):
    valid: int
    invalid: int
    acceptable: int
    policy_refused: int  # vectors whose key fe refuses to load at all


# File (without _test.json) → the JWS algorithm it exercises and what it holds.
FILES: dict[str, tuple[str, Counts]] = {
    "ecdsa_secp256r1_sha256_p1363": ("ES256", Counts(173, 89, 0, 0)),
    "ecdsa_secp384r1_sha384_p1363": ("ES384", Counts(193, 87, 0, 0)),
    "ecdsa_secp521r1_sha512_p1363": ("ES512", Counts(231, 87, 0, 0)),
    "rsa_signature_2048_sha256": ("RS256", Counts(9, 249, 1, 0)),
    "rsa_signature_3072_sha256": ("RS256", Counts(8, 250, 1, 0)),
    "rsa_signature_4096_sha256": ("RS256", Counts(7, 250, 1, 0)),
    "rsa_signature_2048_sha384": ("RS384", Counts(7, 250, 1, 0)),
    "rsa_signature_3072_sha384": ("RS384", Counts(7, 251, 1, 0)),
    "rsa_signature_4096_sha384": ("RS384", Counts(7, 251, 1, 0)),
    "rsa_signature_2048_sha512": ("RS512", Counts(8, 250, 1, 0)),
    "rsa_signature_3072_sha512": ("RS512", Counts(8, 251, 1, 0)),
    "rsa_signature_4096_sha512": ("RS512", Counts(7, 251, 1, 0)),
    "rsa_pss_2048_sha256_mgf1_32": ("PS256", Counts(63, 45, 0, 0)),
    "rsa_pss_3072_sha256_mgf1_32": ("PS256", Counts(63, 45, 0, 0)),
    "rsa_pss_4096_sha256_mgf1_32": ("PS256", Counts(63, 45, 0, 0)),
    "rsa_pss_2048_sha384_mgf1_48": ("PS384", Counts(95, 46, 0, 0)),
    "rsa_pss_4096_sha384_mgf1_48": ("PS384", Counts(95, 46, 0, 0)),
    "rsa_pss_4096_sha512_mgf1_64": ("PS512", Counts(132, 47, 0, 0)),
    "ed25519": ("EdDSA", Counts(117, 64, 29, 0)),
    "ed448": ("EdDSA", Counts(17, 70, 0, 0)),
}

# What fe does with an "acceptable" vector, by its flag: True = verifies, False = refused.
ACCEPTABLE = {
    # PKCS #1 v1.5 DigestInfo without the NULL parameters of the hash algorithm. RFC 8017 §9.2 lets a verifier
    # accept that encoding; OpenSSL, and so fe, refuse it: signers put the NULL in.
    "MissingNull": False,
    # Ed25519 public keys of small or mixed order: OpenSSL verifies against them as RFC 8032 describes, and fe does
    # not screen such keys out. A key comes from the user's configured key set, never from the token, and whoever
    # publishes that set could publish any key at all.
    "SmallOrderPublicKey": True,
    "MixedOrderPublicKey": True,
}

_EC_CURVES = {"secp256r1": ("P-256", 32), "secp384r1": ("P-384", 48), "secp521r1": ("P-521", 66)}
_OKP_CURVES = {"edwards25519": "Ed25519", "edwards448": "Ed448"}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _uint(hex_digits: str) -> bytes:
    value = int(hex_digits, 16)
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def _jwk(group: dict[str, Any]) -> dict[str, str]:
    """The group's public key as a JWK, built from its raw form (not from the JWK some files also carry)."""
    key = group["publicKey"]
    if "modulus" in key:
        return {"kty": "RSA", "n": _b64(_uint(key["modulus"])), "e": _b64(_uint(key["publicExponent"]))}
    if key["type"] == "EcPublicKey":
        crv, size = _EC_CURVES[key["curve"]]
        point = bytes.fromhex(key["uncompressed"])
        assert point[0] == 4 and len(point) == 1 + 2 * size
        return {"kty": "EC", "crv": crv, "x": _b64(point[1 : 1 + size]), "y": _b64(point[1 + size :])}
    assert key["type"] == "EDDSAPublicKey", key["type"]
    return {"kty": "OKP", "crv": _OKP_CURVES[key["curve"]], "x": _b64(bytes.fromhex(key["pk"]))}


def _refused_by_policy(group: dict[str, Any]) -> bool:
    return "modulus" in group["publicKey"] and group["keySize"] < MIN_RSA_BITS


def _check_parameters(alg: str, group: dict[str, Any]) -> None:
    """The file really is the one for `alg`: its hash, and for PSS the MGF1 hash and salt length that JWS fixes."""
    if alg == "EdDSA":
        return
    bits = int(alg[2:])
    assert group["sha"] == f"SHA-{bits}"
    if alg.startswith("PS"):
        assert (group["mgf"], group["mgfSha"], group["sLen"]) == ("MGF1", f"SHA-{bits}", bits // 8)


@pytest.mark.parametrize("name", list(FILES))
def test_wycheproof_vectors(name: str) -> None:
    alg, expected = FILES[name]
    document = json.loads((VECTORS / f"{name}_test.json").read_text(encoding="utf-8"))
    counts: Counter[str] = Counter()
    failures: list[str] = []
    for group in document["testGroups"]:
        _check_parameters(alg, group)
        jwk = _jwk(group)
        published = group.get("publicKeyJwk") or group.get("keyJwk")
        if published is not None:  # our JWK agrees with the one Wycheproof publishes for the same key
            assert {member: published[member] for member in jwk} == jwk
        if _refused_by_policy(group):
            with pytest.raises(KeyParseError):
                parse_jwk(jwk)
            counts["policy_refused"] += len(group["tests"])
            continue
        key = parse_jwk(jwk)
        assert alg in key.algorithms, f"{key.describe()} cannot serve {alg}"
        for vector in group["tests"]:
            result, flags = vector["result"], vector["flags"]
            verified = verify_signature(key, alg, bytes.fromhex(vector["msg"]), bytes.fromhex(vector["sig"]))
            counts[result] += 1
            if result == "acceptable":
                decisions = {ACCEPTABLE[flag] for flag in flags if flag in ACCEPTABLE}
                assert len(decisions) == 1, f"tcId {vector['tcId']}: no single decision for flags {flags}"
                wanted = decisions.pop()
            else:
                wanted = result == "valid"
            if verified != wanted:
                outcome = "verified" if verified else "was refused"
                failures.append(f"tcId {vector['tcId']} ({result}, {', '.join(flags)}: {vector['comment']}) {outcome}")
    assert not failures, f"{name}: {len(failures)} vector(s) went the wrong way:\n" + "\n".join(failures)
    found = Counts(counts["valid"], counts["invalid"], counts["acceptable"], counts["policy_refused"])
    assert found == expected
    assert sum(found) == document["numberOfTests"]
