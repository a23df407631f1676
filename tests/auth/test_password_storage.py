"""Password verifiers: argon2id PHC strings, every byte of the password counts, legacy PBKDF2 strings still verify
(and ask to be replaced), and hashing runs on a small bounded pool."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import threading
import time

import pytest

from fe.auth import passwords
from fe.auth.passwords import hash_password, needs_rehash, verify_password, verify_password_async


def legacy_pbkdf2(password: bytes, iterations: int = 10_000) -> str:
    """A verifier as fe stored them before argon2id (pbkdf2_sha256$iterations$salt$digest, standard base64)."""
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password, salt, iterations)
    return f"pbkdf2_sha256${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def test_new_verifiers_are_argon2id_phc_strings_with_their_parameters() -> None:
    stored = hash_password("pw")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert verify_password(b"pw", stored)
    assert not verify_password(b"pW", stored)
    assert hash_password("pw") != stored  # salted
    assert not needs_rehash(stored)


def test_trailing_nul_bytes_are_part_of_the_password() -> None:
    stored = hash_password("pw")
    assert verify_password(b"pw", stored)
    for variant in (b"pw\x00", b"pw\x00\x00", b"pw\x00\x00\x00\x00"):
        assert not verify_password(variant, stored), variant
    with_nuls = hash_password("pw\x00\x00")
    assert verify_password(b"pw\x00\x00", with_nuls)
    assert not verify_password(b"pw", with_nuls)


def test_a_long_password_is_not_its_own_sha256() -> None:
    long_password = "correct horse battery staple " * 4  # 116 bytes: longer than an HMAC-SHA256 block
    stored = hash_password(long_password)
    assert verify_password(long_password.encode(), stored)
    assert not verify_password(hashlib.sha256(long_password.encode()).digest(), stored)
    assert not verify_password(long_password.encode()[:64], stored)


def test_the_empty_password() -> None:
    assert hash_password("") == ""
    assert verify_password(b"", "")
    assert not verify_password(b"x", "")
    assert not verify_password(b"", hash_password("x"))
    assert not needs_rehash("")


def test_legacy_pbkdf2_verifiers_still_verify_and_need_rehash() -> None:
    stored = legacy_pbkdf2(b"old-pw")
    assert verify_password(b"old-pw", stored)
    assert not verify_password(b"old-pW", stored)
    assert needs_rehash(stored)
    # PBKDF2's HMAC cannot tell "old-pw" from "old-pw\0\0"; a legacy verifier refuses trailing NULs outright.
    assert not verify_password(b"old-pw\x00\x00", stored)


def test_outdated_argon2_parameters_need_rehash() -> None:
    weaker = "$argon2id$v=19$m=8192,t=1,p=1$" + "c2FsdHNhbHRzYWx0c2FsdA$" + "A" * 43
    assert needs_rehash(weaker)
    argon2i = "$argon2i$v=19$m=19456,t=2,p=1$" + "c2FsdHNhbHRzYWx0c2FsdA$" + "A" * 43
    assert needs_rehash(argon2i)
    assert not needs_rehash(hash_password("current"))


@pytest.mark.parametrize(
    "stored",
    [
        "garbage",
        "pbkdf2_sha256$x$y$z",
        "pbkdf2_sha256$10000$!!!$???",
        "pbkdf2_sha256$999999999$c2FsdA==$ZGlnZXN0",  # absurd cost: refused, not computed
        "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + "A" * 43,  # 4 GiB: refused, not computed
        "$argon2id$v=19$m=19456,t=2,p=1$short",
        "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19",  # a native hash is not a caching_sha2 verifier
    ],
)
def test_malformed_or_unreasonable_verifiers_never_verify(stored: str) -> None:
    started = time.perf_counter()
    assert not verify_password(b"password", stored)
    assert time.perf_counter() - started < 1.0


async def test_verify_password_async_runs_on_the_bounded_hashing_pool() -> None:
    stored = hash_password("async-pw")
    seen: set[str] = set()
    original = passwords._verify

    def spy(password: bytes, stored: str) -> bool:
        seen.add(threading.current_thread().name)
        return original(password, stored)

    passwords._verify = spy  # type: ignore[assignment]
    try:
        results = await asyncio.gather(*(verify_password_async(b"async-pw", stored) for _ in range(12)))
    finally:
        passwords._verify = original  # type: ignore[assignment]
    assert all(results)
    assert seen and all(name.startswith("fe-password") for name in seen)
    assert len(seen) <= passwords.HASH_CONCURRENCY


def test_hashing_concurrency_is_bounded_whatever_thread_calls() -> None:
    """A storm of wrong passwords through any thread pool runs at most HASH_CONCURRENCY hashes at once, so the
    memory argon2 takes stays bounded (HASH_CONCURRENCY × 19 MiB)."""
    stored = hash_password("right")
    running = 0
    peak = 0
    lock = threading.Lock()
    original = passwords._argon2_verify

    def counting(stored: str, password: bytes) -> bool:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            return original(stored, password)
        finally:
            with lock:
                running -= 1

    passwords._argon2_verify = counting  # type: ignore[assignment]
    try:
        threads = [threading.Thread(target=verify_password, args=(b"wrong", stored)) for _ in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        passwords._argon2_verify = original  # type: ignore[assignment]
    assert 1 <= peak <= passwords.HASH_CONCURRENCY
