"""One bounded least-recently-used map for every cache fe keeps in memory (statement parses, the caching_sha2
fast path, verified tokens): bounded by entry count and, where entries vary in size, by their total bytes."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedLRU(Generic[K, V]):
    """A map that forgets its least recently used entries beyond `max_entries` or `max_bytes`.

    `size_of(key, value)` gives an entry's weight in bytes when `max_bytes` is set; an entry heavier than
    `max_bytes` on its own is not kept at all. A capacity of 0 keeps nothing.
    """

    __slots__ = ("_entries", "_size_of", "_sizes", "bytes", "max_bytes", "max_entries")

    def __init__(
        self,
        max_entries: int,
        *,
        max_bytes: int | None = None,
        size_of: Callable[[K, V], int] | None = None,
    ) -> None:
        if max_bytes is not None and size_of is None:
            raise ValueError("max_bytes needs size_of")
        self.max_entries = max(0, max_entries)
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._sizes: dict[K, int] = {}
        self.bytes = 0

    def get(self, key: K) -> V | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        entries = self._entries
        if key in entries:  # (a key with a size always has an entry)
            self.discard(key)
        if self.max_entries == 0:
            return
        if self.max_bytes is not None:
            assert self._size_of is not None
            size = self._size_of(key, value)
            if size > self.max_bytes:
                return
            self._sizes[key] = size
            self.bytes += size
        entries[key] = value
        if len(entries) > self.max_entries or (self.max_bytes is not None and self.bytes > self.max_bytes):
            self._shrink()

    def discard(self, key: K) -> None:
        if self._entries.pop(key, None) is not None or key in self._sizes:
            self.bytes -= self._sizes.pop(key, 0)

    def clear(self) -> None:
        self._entries.clear()
        self._sizes.clear()
        self.bytes = 0

    def _shrink(self) -> None:
        entries = self._entries
        while len(entries) > self.max_entries or (self.max_bytes is not None and self.bytes > self.max_bytes):
            oldest, _ = entries.popitem(last=False)
            self.bytes -= self._sizes.pop(oldest, 0)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries
