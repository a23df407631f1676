"""Password storage and the two password plugins' proofs. Nothing here stores or logs a cleartext password.

Storage formats (the catalog's auth_string for password users):
- caching_sha2_password: an argon2id PHC string (`$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>`, its parameters
  recorded in it), or "" for an empty password. Verifiers fe stored before argon2id,
  `pbkdf2_sha256$<iterations>$<salt b64>$<digest b64>`, still verify; `needs_rehash` says they should be replaced
  after the next successful login (the catalog's `replace_password_hash` does it).
- mysql_native_password: `*` + 40 upper-case hex digits of SHA1(SHA1(password)), MySQL's own format
  (the protocol needs exactly this to check a native scramble).

Hashing is CPU- and memory-hard on purpose, so it never runs on the event loop: call `verify_password_async` /
`hash_password_async` (a small dedicated thread pool), or the plain functions from a worker thread. Either way
at most HASH_CONCURRENCY hashes run at once in a process, whichever threads call, so a storm of wrong passwords
costs queueing, not memory (HASH_CONCURRENCY × ARGON2_MEMORY_KIB at most).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import VerificationError

# OWASP's Password Storage Cheat Sheet lists argon2id with m=19 MiB, t=2, p=1 as its first choice, and that suits
# a login server: every full authentication (and every unknown user's decoy) costs one hash, about 20 ms of one
# core and 19 MiB here, so a core checks ~50 passwords a second and memory stays small enough to allow a few at
# once. p=1 because concurrency comes from parallel logins, not from lanes inside one hash.
ARGON2_TIME_COST = 2
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_PARALLELISM = 1
HASH_CONCURRENCY = max(1, min(4, os.cpu_count() or 1))

# Stored strings with costs beyond these are refused unverified: a hand-edited catalog row must not be able to
# make one login take gigabytes or minutes.
_MAX_ARGON2_MEMORY_KIB = 256 * 1024
_MAX_ARGON2_TIME_COST = 16
_MAX_ARGON2_PARALLELISM = 16
_MAX_PBKDF2_ITERATIONS = 1_000_000

_PBKDF2_PREFIX = "pbkdf2_sha256$"
_ARGON2_PREFIX = "$argon2"

_hasher = PasswordHasher(
    time_cost=ARGON2_TIME_COST,
    memory_cost=ARGON2_MEMORY_KIB,
    parallelism=ARGON2_PARALLELISM,
    hash_len=32,
    salt_len=16,
    type=Type.ID,
)
_slots = threading.BoundedSemaphore(HASH_CONCURRENCY)
_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def hash_password(password: str) -> str:
    """The verifier to store for `password` (UTF-8): an argon2id PHC string; "" for the empty password."""
    if password == "":
        return ""
    with _slots:
        return _hasher.hash(password.encode())


def verify_password(password: bytes, stored: str) -> bool:
    """A cleartext password (bytes, as received) against a stored caching_sha2 verifier. Every byte counts.

    Blocks for one hash: call it from a worker thread, or use `verify_password_async`.
    """
    return _verify(password, stored)


async def verify_password_async(password: bytes, stored: str) -> bool:
    """`verify_password` on the hashing pool, off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_hashing_pool(), _verify, password, stored)


async def hash_password_async(password: str) -> str:
    """`hash_password` on the hashing pool, off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_hashing_pool(), hash_password, password)


def needs_rehash(stored: str) -> bool:
    """True for a verifier that should be replaced after the next successful login: a legacy PBKDF2 string, or
    an argon2 string whose type or parameters differ from the current ones. False for "" and anything else."""
    if stored.startswith(_PBKDF2_PREFIX):
        return True
    if stored.startswith(_ARGON2_PREFIX):
        try:
            return _hasher.check_needs_rehash(stored)
        except ValueError:  # malformed: it cannot verify, so there is nothing to upgrade
            return False
    return False


def _verify(password: bytes, stored: str) -> bool:
    if stored == "":
        return hmac.compare_digest(password, b"")
    if stored.startswith(_ARGON2_PREFIX):
        return _verify_argon2(password, stored)
    if stored.startswith(_PBKDF2_PREFIX):
        return _verify_pbkdf2(password, stored)
    return False


def _verify_argon2(password: bytes, stored: str) -> bool:
    try:
        parameters = extract_parameters(stored)
    except ValueError:
        return False
    if (
        parameters.memory_cost > _MAX_ARGON2_MEMORY_KIB
        or parameters.time_cost > _MAX_ARGON2_TIME_COST
        or parameters.parallelism > _MAX_ARGON2_PARALLELISM
    ):
        return False
    with _slots:
        return _argon2_verify(stored, password)


def _argon2_verify(stored: str, password: bytes) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, ValueError):
        return False


def _verify_pbkdf2(password: bytes, stored: str) -> bool:
    # HMAC pads a key with zeros (and hashes one longer than 64 bytes), so PBKDF2-HMAC cannot tell "pw" from
    # "pw\0\0": refuse trailing NULs outright. Such verifiers are replaced by argon2id at the next login.
    if password.endswith(b"\x00"):
        return False
    try:
        _, iterations_text, salt, digest = stored.split("$")
        iterations = int(iterations_text)
        if not 0 < iterations <= _MAX_PBKDF2_ITERATIONS:
            return False
        expected = _unb64(digest)
        with _slots:
            computed = hashlib.pbkdf2_hmac("sha256", password, _unb64(salt), iterations)
    except ValueError:
        return False
    return hmac.compare_digest(computed, expected)


def _hashing_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=HASH_CONCURRENCY, thread_name_prefix="fe-password")
        return _pool


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
    if len(a) != len(b):
        raise ValueError("cannot XOR byte strings of different lengths")
    # As big integers: one C call each way, where a generator over the bytes costs the fast path ~20k instructions.
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)
