"""JWS compact serialization: cheap shape checks, header/payload decoding, and signature verification with
cryptography directly (one OpenSSL call per token; no per-call key parsing).

The shape is checked before anything is decoded: exactly two dots and the base64url alphabet, so JWE
(five parts), JSON-serialized JWS and junk are refused without JSON parsing. Each part must be canonical base64url
(no non-zero trailing bits), so a token has exactly one spelling. Duplicate JSON member names
and the non-standard NaN/Infinity constants are refused, so no two parsers can read one token differently.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from fe.auth import b64url
from fe.auth.errors import TokenRejected
from fe.auth.jwk import MAX_KID_LENGTH, VerificationKey

_COMPACT = re.compile(rb"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

_HASHES: dict[str, hashes.HashAlgorithm] = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}
_PKCS1 = padding.PKCS1v15()
# RFC 7518 §3.5: the PSS salt is as long as the hash output; an exact length is enforced, not "any".
_PSS = {bits: padding.PSS(padding.MGF1(h), h.digest_size) for bits, h in _HASHES.items()}
_ECDSA = {bits: ec.ECDSA(h) for bits, h in _HASHES.items()}
_EC_COORDINATE_BYTES = {"ES256": 32, "ES384": 48, "ES512": 66}


@dataclass(frozen=True, slots=True)
class CompactToken:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes
    payload: bytes  # the decoded claims JSON, as sent

    @property
    def alg(self) -> str:
        return self.header["alg"]

    @property
    def kid(self) -> str | None:
        return self.header.get("kid")


def parse_compact(token: bytes) -> CompactToken:
    """Split and decode a compact JWS; TokenRejected("malformed") for anything that is not one."""
    dots = token.count(b".")
    if dots != 2:
        if token[:1] == b"{":
            raise TokenRejected("malformed", "JSON-serialized JWS is not accepted; send a compact token")
        if dots == 4:
            raise TokenRejected("malformed", "encrypted tokens (JWE) are not accepted; send a signed ID token")
        raise TokenRejected("malformed", f"a token has three dot-separated parts, this one has {dots + 1}")
    if _COMPACT.fullmatch(token) is None:
        raise TokenRejected("malformed", "token is not base64url text (or has an empty part)")
    header_b64, payload_b64, signature_b64 = token.split(b".")
    header = _decode_json_object(_b64decode(header_b64), "header")
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise TokenRejected("malformed", "token header has no string 'alg'")
    kid = header.get("kid", "")
    if not isinstance(kid, str) or len(kid) > MAX_KID_LENGTH:
        raise TokenRejected("malformed", f"token header 'kid' must be a string of at most {MAX_KID_LENGTH} characters")
    payload = _b64decode(payload_b64)
    claims = _decode_json_object(payload, "payload")
    signing_input = token[: len(header_b64) + 1 + len(payload_b64)]
    return CompactToken(header, claims, signing_input, _b64decode(signature_b64), payload)


def verify_signature(key: VerificationKey, alg: str, signing_input: bytes, signature: bytes) -> bool:
    """True only if `signature` is valid for `alg` under `key`. The caller has checked that `alg` fits the key."""
    public_key: Any = key.public_key
    family, bits = alg[:2], alg[2:]
    try:
        if family == "RS":
            public_key.verify(signature, signing_input, _PKCS1, _HASHES[bits])
        elif family == "PS":
            public_key.verify(signature, signing_input, _PSS[bits], _HASHES[bits])
        elif family == "ES":
            size = _EC_COORDINATE_BYTES[alg]
            if len(signature) != 2 * size:  # JWS uses raw r||s; DER or truncated forms are not signatures here
                return False
            r = int.from_bytes(signature[:size], "big")
            s = int.from_bytes(signature[size:], "big")
            public_key.verify(encode_dss_signature(r, s), signing_input, _ECDSA[bits])
        elif alg == "EdDSA":
            public_key.verify(signature, signing_input)
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def _b64decode(part: bytes) -> bytes:
    try:
        return b64url.decode(part)
    except b64url.Base64urlError as exc:
        raise TokenRejected("malformed", f"token is {exc}") from None


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate member name")
    return obj


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


# One decoder for every token: json.loads() with hooks would build a new decoder (and scanner) per call.
_STRICT_JSON = json.JSONDecoder(object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)


def _decode_json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        # Strict UTF-8 (RFC 7515 §4, RFC 7519 §7.2): json.loads(bytes) would also guess UTF-16/32 and pass
        # surrogates through. A UTF-8 BOM is not JSON either (the decoder refuses it in a str).
        value = _STRICT_JSON.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        detail = "duplicate member name" if "duplicate" in str(exc) else "not valid JSON"
        raise TokenRejected("malformed", f"token {what} is {detail}") from None
    if not isinstance(value, dict):
        raise TokenRejected("malformed", f"token {what} is not a JSON object")
    return value
