"""Keys, JWKS documents and hand-built tokens (including deliberately broken ones) for the auth tests."""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

from fe.auth.devtools import PrivateKey, generate_signing_key, mint_token, public_jwk

ALL_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class FakeClock:
    """A settable clock for the verifier and key store (seconds since the epoch, like time.time)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@functools.cache
def signing_key(name: str) -> tuple[PrivateKey, dict[str, Any]]:
    """A cached key pair per name; the name starts with the algorithm ("ES256", "RS256-b", "Ed448")."""
    if name.startswith("Ed448"):
        from cryptography.hazmat.primitives.asymmetric import ed448

        private = ed448.Ed448PrivateKey.generate()
        return private, public_jwk(private, "EdDSA")
    alg = name.split("-")[0]
    rsa_like = alg.startswith(("RS", "PS"))
    private, jwk = generate_signing_key("RS256" if rsa_like else alg)
    jwk = {**jwk}
    jwk.pop("alg")  # most tests want a key usable with every algorithm of its type; add "alg" explicitly
    return private, jwk


def jwk_with(name: str, **members: Any) -> dict[str, Any]:
    jwk = {**signing_key(name)[1], **members}
    return {k: v for k, v in jwk.items() if v is not None}


def jwks(*keys: dict[str, Any]) -> dict[str, Any]:
    return {"keys": list(keys)}


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64json(value: Any) -> str:
    return b64(json.dumps(value).encode() if not isinstance(value, bytes) else value)


def claims_for(user: str, now: float, ttl: float = 600, **extra: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {"sub": user, "iat": int(now), "exp": int(now + ttl)}
    claims.update(extra)
    return {k: v for k, v in claims.items() if v is not None}


def mint(name: str, claims: dict[str, Any], *, alg: str | None = None, kid: str | bool | None = True) -> str:
    """A correctly signed token with key `name`; kid=True uses the key's own kid, None/False omits it."""
    private, jwk = signing_key(name)
    alg = alg or ("EdDSA" if name.startswith(("Ed", "EdDSA")) else name.split("-")[0])
    header_kid = jwk["kid"] if kid is True else (kid or None)
    return mint_token(private, alg, header_kid, claims)


def forge(header: dict[str, Any] | bytes, payload: dict[str, Any] | bytes, signature: bytes = b"sig") -> str:
    """A token with exactly these parts (JSON-encoded unless bytes); the signature is whatever is given."""
    return f"{b64json(header)}.{b64json(payload)}.{b64(signature)}"


def resign(name: str, header: dict[str, Any], payload: dict[str, Any]) -> str:
    """Sign an arbitrary header (e.g. with crit or jku) with key `name`, bypassing PyJWT's header handling."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    private, _ = signing_key(name)
    signing_input = f"{b64json(header)}.{b64json(payload)}".encode()
    alg = header["alg"]
    hash_algorithm = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}.get(alg[2:])
    if isinstance(private, rsa.RSAPrivateKey):
        pad = (
            padding.PKCS1v15()
            if alg.startswith("RS")
            else padding.PSS(padding.MGF1(hash_algorithm), hash_algorithm.digest_size)
        )
        signature = private.sign(signing_input, pad, hash_algorithm)
    elif isinstance(private, ec.EllipticCurvePrivateKey):
        size = (private.curve.key_size + 7) // 8
        r, s = decode_dss_signature(private.sign(signing_input, ec.ECDSA(hash_algorithm)))
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    else:
        signature = private.sign(signing_input)
    return f"{signing_input.decode()}.{b64(signature)}"
