"""Password storage and the two password plugins' proofs. Nothing here stores or logs a cleartext password.

Storage formats (the catalog's auth_string for password users):
- caching_sha2_password: `pbkdf2_sha256$<iterations>$<salt b64>$<digest b64>`, or "" for an empty password.
- mysql_native_password: `*` + 40 upper-case hex digits of SHA1(SHA1(password)), MySQL's own format
  (the protocol needs exactly this to check a native scramble).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

PBKDF2_ITERATIONS = 10_000
_PREFIX = "pbkdf2_sha256"


def hash_password(password: str) -> str:
    if password == "":
        return ""
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, PBKDF2_ITERATIONS)
    return f"{_PREFIX}${PBKDF2_ITERATIONS}${_b64(salt)}${_b64(digest)}"


def verify_password(password: bytes, stored: str) -> bool:
    """A cleartext password (bytes, as received) against a stored caching_sha2 hash, in constant time."""
    if stored == "":
        return hmac.compare_digest(password, b"")
    try:
        prefix, iterations, salt, digest = stored.split("$")
        if prefix != _PREFIX:
            return False
        computed = hashlib.pbkdf2_hmac("sha256", password, _unb64(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(computed, _unb64(digest))


def native_hash(password: str) -> str:
    if password == "":
        return ""
    return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


def verify_native_scramble(response: bytes, nonce: bytes, stored: str) -> bool:
    """mysql_native_password: response = SHA1(pw) XOR SHA1(nonce ‖ SHA1(SHA1(pw)))."""
    if stored == "":
        return hmac.compare_digest(response, b"")
    if len(response) != 20 or len(stored) != 41:
        return False
    try:
        stage2 = bytes.fromhex(stored[1:])
    except ValueError:
        return False
    stage1 = _xor(response, hashlib.sha1(nonce + stage2).digest())
    return hmac.compare_digest(hashlib.sha1(stage1).digest(), stage2)


def sha256_double(password: bytes) -> bytes:
    """What the caching_sha2 fast path compares against: SHA256(SHA256(pw))."""
    return hashlib.sha256(hashlib.sha256(password).digest()).digest()


def verify_sha2_scramble(response: bytes, nonce: bytes, double_hash: bytes) -> bool:
    """caching_sha2 fast path: response = SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) ‖ nonce)."""
    if len(response) != 32:
        return False
    stage1 = _xor(response, hashlib.sha256(double_hash + nonce).digest())
    return hmac.compare_digest(hashlib.sha256(stage1).digest(), double_hash)


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)
