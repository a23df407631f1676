"""A bounded LRU of tokens that passed full verification, so a reconnect with the same token skips the
signature check. Entries are keyed by SHA-256 of the token + the login name + the user's spec, and never
outlive the token's own expiry (exp + leeway, the same bound the verifier applies).

The cache is bounded by entry count and by bytes: a token may carry up to max_token_bytes of claims, and
10,000 entries of 16 KiB claims would otherwise hold well over a gigabyte once decoded into Python objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fe.auth.jwk import VerificationKey
from fe.auth.token_spec import TokenAuthSpec
from fe.util.lru import BoundedLRU

CacheKey = tuple[bytes, str, TokenAuthSpec]

# Calibrated with tracemalloc on CPython 3.11 (tests/auth/test_token_cache.py checks that estimates stay above
# what entries really hold). The cache's own objects per entry: the key tuple and digest, CachedVerification,
# the LRU's links and size record.
_ENTRY_OVERHEAD = 512
# Every JSON value becomes an object: a str, int or float is a 24-60 byte header plus its 8-byte slot in a list or
# dict. Each value but the first in its container follows a ',' or ':', so counting those counts values.
_PER_VALUE = 64
_PER_LIST = 96  # 56 bytes, with room for 4 items as soon as it has one, and its slot
_PER_DICT = 200  # CPython's smallest non-empty dict is 184 bytes


@dataclass(frozen=True, slots=True)
class CachedVerification:
    claims: dict[str, Any]
    exp: float
    key: VerificationKey  # the key that verified it: the entry is only good while that key is still published
    size: int  # estimated bytes held (estimate_size)


def estimate_size(payload: bytes, user_name: str) -> int:
    """The bytes an entry holds once `payload` (the token's claims JSON) is decoded: a deliberate over-estimate.

    Cheap (a few C-level scans of at most max_token_bytes), so it costs little next to the signature check.
    """
    values = payload.count(b",") + payload.count(b":") + 1
    containers = _PER_LIST * payload.count(b"[") + _PER_DICT * payload.count(b"{")
    # A str holds 1 byte per character when all are below U+0100, but one wider character (a literal one, or a
    # \u escape) makes CPython store the whole string in 2 or 4 bytes per character.
    text = len(payload) if payload.isascii() and b"\\u" not in payload else 4 * len(payload)
    return _ENTRY_OVERHEAD + len(user_name) + text + _PER_VALUE * values + containers


class VerifiedTokenCache:
    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self._lru: BoundedLRU[CacheKey, CachedVerification] = BoundedLRU(
            max_entries, max_bytes=max_bytes, size_of=_size_of
        )

    @property
    def bytes(self) -> int:
        """The estimated bytes held by all entries."""
        return self._lru.bytes

    def get(self, key: CacheKey) -> CachedVerification | None:
        return self._lru.get(key)

    def put(self, key: CacheKey, entry: CachedVerification) -> None:
        self._lru.put(key, entry)

    def discard(self, key: CacheKey) -> None:
        self._lru.discard(key)

    def __len__(self) -> int:
        return len(self._lru)


def _size_of(_key: CacheKey, entry: CachedVerification) -> int:
    return entry.size
