"""A bounded LRU of tokens that passed full verification, so a reconnect with the same token skips the
signature check. Entries are keyed by SHA-256 of the token + the login name + the user's spec, and never
outlive the token's own expiry (exp + leeway, the same bound the verifier applies)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from fe.auth.jwk import VerificationKey
from fe.auth.token_spec import TokenAuthSpec

CacheKey = tuple[bytes, str, TokenAuthSpec]


@dataclass(frozen=True, slots=True)
class CachedVerification:
    claims: dict[str, Any]
    exp: float
    key: VerificationKey  # the key that verified it: the entry is only good while that key is still published


class VerifiedTokenCache:
    def __init__(self, capacity: int) -> None:
        self.capacity = max(0, capacity)
        self._entries: OrderedDict[CacheKey, CachedVerification] = OrderedDict()

    def get(self, key: CacheKey) -> CachedVerification | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: CacheKey, entry: CachedVerification) -> None:
        if self.capacity == 0:
            return
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def discard(self, key: CacheKey) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
