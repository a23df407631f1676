"""Public keys for JWS verification: parsed once from JWK / JWKS / PEM into cryptography objects, each bound to
the algorithms its type and curve allow (RS*/PS* ↔ RSA ≥ 2048 bits, ES256 ↔ P-256, ES384 ↔ P-384,
ES512 ↔ P-521, EdDSA ↔ Ed25519 / Ed448). A JWK's own `alg`, when present, narrows that to exactly one.

Nothing here does I/O; the key sources hand in bytes or parsed JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from fe.auth import b64url
from fe.auth.token_spec import SUPPORTED_ALGORITHMS

RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 16384
MAX_KID_LENGTH = 256

# JWK curve name → (cryptography curve, coordinate length in bytes, the one ES* algorithm it serves)
EC_CURVES: dict[str, tuple[type[ec.EllipticCurve], int, str]] = {
    "P-256": (ec.SECP256R1, 32, "ES256"),
    "P-384": (ec.SECP384R1, 48, "ES384"),
    "P-521": (ec.SECP521R1, 66, "ES512"),
}
_CURVE_NAME_BY_OPENSSL = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey

# OKP curve name → (loader of the raw public key, its length in bytes)
_OKP_CURVES: dict[str, tuple[Callable[[bytes], PublicKey], int]] = {
    "Ed25519": (ed25519.Ed25519PublicKey.from_public_bytes, 32),
    "Ed448": (ed448.Ed448PublicKey.from_public_bytes, 57),
}

# RFC 7518 §6.2.2 (EC "d"), §6.3.2 (RSA "d" ... "oth"), RFC 8037 §2 (OKP "d"). (oct keys are refused by kty.)
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)


class KeyParseError(ValueError):
    """One key (or a whole document) that cannot be used; the message says why."""


@dataclass(frozen=True, eq=False)
class VerificationKey:
    """A parsed public key and the algorithms it may verify. Compared by identity (eq=False) on purpose."""

    public_key: PublicKey
    algorithms: frozenset[str]
    kid: str | None = None
    jwk_alg: str | None = None
    description: str = ""

    def describe(self) -> str:
        name = f"key {self.kid!r}" if self.kid is not None else "key without kid"
        suffix = f", JWK alg {self.jwk_alg}" if self.jwk_alg else ""
        return f"{name} ({self.description}{suffix})"


@dataclass(frozen=True)
class KeySet:
    """The usable keys from one source (one URL or one file). Never merged with another source's keys."""

    source: str
    keys: tuple[VerificationKey, ...]
    by_kid: dict[str, tuple[VerificationKey, ...]] = field(init=False, repr=False)
    without_kid: tuple[VerificationKey, ...] = field(init=False, repr=False)
    members: frozenset[VerificationKey] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        by_kid: dict[str, list[VerificationKey]] = {}
        for key in self.keys:
            if key.kid is not None:
                by_kid.setdefault(key.kid, []).append(key)
        object.__setattr__(self, "by_kid", {kid: tuple(keys) for kid, keys in by_kid.items()})
        object.__setattr__(self, "without_kid", tuple(k for k in self.keys if k.kid is None))
        object.__setattr__(self, "members", frozenset(self.keys))


def _member_bytes(value: object) -> bytes:
    """A JWK member's bytes: strict base64url, except that trailing `=` padding is tolerated."""
    if not isinstance(value, str):
        raise KeyParseError("not a base64url string")
    # JOSE omits padding (RFC 7515 §2), yet some identity providers publish padded key members. The key set comes
    # from the configured source, not from a token, so accepting both spellings here costs nothing.
    unpadded = value.rstrip("=")
    if len(value) - len(unpadded) > 2:
        raise KeyParseError("not a base64url string")
    try:
        return b64url.decode(unpadded)
    except b64url.Base64urlError:
        raise KeyParseError("not a base64url string") from None


def _member_uint(jwk: dict[str, Any], member: str) -> int:
    if member not in jwk:
        raise KeyParseError(f"missing {member!r}")
    try:
        raw = _member_bytes(jwk[member])
    except KeyParseError:
        raise KeyParseError(f"{member!r} is not a base64url string") from None
    if not raw:
        raise KeyParseError(f"{member!r} is empty")
    return int.from_bytes(raw, "big")


def key_from_public_key(public_key: object, kid: str | None = None, jwk_alg: str | None = None) -> VerificationKey:
    """Bind a cryptography public key to the algorithms it may serve; refuse weak or unsupported keys."""
    if isinstance(public_key, rsa.RSAPublicKey):
        bits = public_key.key_size
        if bits < MIN_RSA_BITS:
            raise KeyParseError(f"RSA key of {bits} bits is too small (minimum {MIN_RSA_BITS})")
        if bits > MAX_RSA_BITS:
            raise KeyParseError(f"RSA key of {bits} bits is too large (maximum {MAX_RSA_BITS})")
        algorithms, description = RSA_ALGORITHMS, f"RSA-{bits}"
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = _CURVE_NAME_BY_OPENSSL.get(public_key.curve.name)
        if curve is None:
            raise KeyParseError(f"EC curve {public_key.curve.name} is not supported")
        algorithms, description = frozenset({EC_CURVES[curve][2]}), f"EC {curve}"
    elif isinstance(public_key, ed25519.Ed25519PublicKey):
        algorithms, description = frozenset({"EdDSA"}), "OKP Ed25519"
    elif isinstance(public_key, ed448.Ed448PublicKey):
        algorithms, description = frozenset({"EdDSA"}), "OKP Ed448"
    else:
        raise KeyParseError(f"{type(public_key).__name__} keys are not supported")
    if jwk_alg is not None:
        if jwk_alg not in algorithms:
            raise KeyParseError(f"JWK alg {jwk_alg!r} does not fit a {description} key")
        algorithms = frozenset({jwk_alg})
    return VerificationKey(public_key, algorithms, kid, jwk_alg, description)


def parse_jwk(jwk: object) -> VerificationKey:
    """One JWK (a dict from JSON) → a VerificationKey, or KeyParseError naming what is wrong."""
    if not isinstance(jwk, dict):
        raise KeyParseError("a JWK must be a JSON object")
    private = sorted(_PRIVATE_MEMBERS.intersection(jwk))
    if private:
        # A published private key is a compromised key: anyone who read the JWKS can sign with it.
        raise KeyParseError(f"contains private key material ({', '.join(private)}); publish only the public key")
    kid = jwk.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH):
        raise KeyParseError("'kid' must be a non-empty string of at most 256 characters")
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise KeyParseError(f"'use' is {use!r}, not 'sig'")
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise KeyParseError("'key_ops' does not include 'verify'")
    alg = jwk.get("alg")
    if alg is not None and alg not in SUPPORTED_ALGORITHMS:
        raise KeyParseError(f"JWK alg {alg!r} is not supported")
    kty = jwk.get("kty")
    try:
        public_key = _public_key_from_jwk(kty, jwk)
    except (ValueError, TypeError, OverflowError) as exc:
        if isinstance(exc, KeyParseError):
            raise
        raise KeyParseError(f"bad {kty} key material ({exc})") from None
    return key_from_public_key(public_key, kid, alg)


def _public_key_from_jwk(kty: object, jwk: dict[str, Any]) -> PublicKey:
    if kty == "RSA":
        n = _member_uint(jwk, "n")
        e = _member_uint(jwk, "e")
        if n.bit_length() > MAX_RSA_BITS:
            raise KeyParseError(f"RSA modulus of {n.bit_length()} bits is too large")
        return rsa.RSAPublicNumbers(e, n).public_key()
    if kty == "EC":
        crv = jwk.get("crv")
        if crv not in EC_CURVES:
            raise KeyParseError(f"EC curve {crv!r} is not supported")
        curve, size, _alg = EC_CURVES[crv]
        x, y = (_member_bytes(jwk.get(m, "")) for m in ("x", "y"))
        if len(x) != size or len(y) != size:
            raise KeyParseError(f"EC {crv} coordinates must be {size} bytes")
        numbers = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve())
        return numbers.public_key()  # raises ValueError for a point not on the curve
    if kty == "OKP":
        crv = jwk.get("crv")
        if crv not in _OKP_CURVES:
            raise KeyParseError(f"OKP curve {crv!r} is not supported for signatures")
        load, size = _OKP_CURVES[crv]
        x = _member_bytes(jwk.get("x", ""))
        if len(x) != size:
            raise KeyParseError(f"{crv} public key must be {size} bytes")
        return load(x)
    if kty == "oct":
        raise KeyParseError("symmetric (oct) keys are not accepted")
    raise KeyParseError(f"kty {kty!r} is not supported")


def parse_jwks(doc: object, source: str, max_keys: int) -> tuple[KeySet, list[str]]:
    """A JWKS document → (KeySet, one message per skipped key). Zero usable keys is a KeyParseError."""
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise KeyParseError('not a JWKS: expected a JSON object with a "keys" array')
    entries = doc["keys"]
    if len(entries) > max_keys:
        raise KeyParseError(f"JWKS has {len(entries)} keys, more than the limit of {max_keys}")
    return _key_set(source, _parse_each(entries))


def parse_pem(text: str, source: str) -> tuple[KeySet, list[str]]:
    """PEM public keys and certificates (one or several blocks) → KeySet; the keys have no kid."""
    blocks = list(_PEM_BLOCK.finditer(text))
    if not blocks:
        raise KeyParseError("no PEM block found")
    results: list[VerificationKey | str] = []
    for number, block in enumerate(blocks, 1):
        label = block.group(1)
        try:
            data = block.group(0).encode("ascii")
            if label in ("PUBLIC KEY", "RSA PUBLIC KEY"):
                results.append(key_from_public_key(load_pem_public_key(data)))
            elif label == "CERTIFICATE":
                results.append(key_from_public_key(x509.load_pem_x509_certificate(data).public_key()))
            else:
                results.append(f"PEM block {number} ({label}) skipped: only public keys and certificates are used")
        except KeyParseError as exc:
            results.append(f"PEM block {number} ({label}) skipped: {exc}")
        except (ValueError, TypeError, UnicodeEncodeError) as exc:
            results.append(f"PEM block {number} ({label}) skipped: cannot be parsed ({exc})")
    return _key_set(source, results)


def parse_key_document(data: bytes, source: str, max_keys: int) -> tuple[KeySet, list[str]]:
    """A local key file's content: a JWKS, a single JWK, or PEM public keys / certificates."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyParseError("not UTF-8 text (expected a JWKS, a JWK or PEM)") from None
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("{"):
        doc = load_json(stripped)
        if isinstance(doc, dict) and "keys" in doc:
            return parse_jwks(doc, source, max_keys)
        if isinstance(doc, dict) and "kty" in doc:
            try:
                return KeySet(source, (parse_jwk(doc),)), []
            except KeyParseError as exc:
                raise KeyParseError(f"the JWK is not usable: {exc}") from None
        raise KeyParseError('JSON is neither a JWKS (with "keys") nor a JWK (with "kty")')
    if "-----BEGIN" in stripped:
        return parse_pem(stripped, source)
    raise KeyParseError("neither JSON (a JWKS or a JWK) nor PEM")


def load_json(text: str | bytes) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise KeyParseError(f"not valid JSON ({type(exc).__name__})") from None


def _parse_each(entries: Iterable[object]) -> list[VerificationKey | str]:
    results: list[VerificationKey | str] = []
    for index, entry in enumerate(entries):
        try:
            results.append(parse_jwk(entry))
        except KeyParseError as exc:
            kid = entry.get("kid") if isinstance(entry, dict) else None
            name = f"key {kid!r}" if isinstance(kid, str) else f"key #{index}"
            results.append(f"{name[:300]} skipped: {exc}")
    return results


def _key_set(source: str, results: list[VerificationKey | str]) -> tuple[KeySet, list[str]]:
    keys = tuple(r for r in results if isinstance(r, VerificationKey))
    skipped = [r for r in results if isinstance(r, str)]
    if not keys:
        detail = f" ({'; '.join(skipped[:3])})" if skipped else ""
        raise KeyParseError(f"no usable keys{detail}")
    return KeySet(source, keys), skipped
