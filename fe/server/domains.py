"""Resolving the domains of domain identities ('name'@['domain']) without blocking logins.

Addresses are looked up with the event loop's resolver (a thread, never the loop itself), with a timeout. A
login first lets the resolver catch up with catalog changes (a new domain identity is resolved before its first
login is matched); all domains are resolved again every `domain_refresh_seconds`. A lookup that fails keeps the
addresses the domain had; a domain no identity uses any more is forgotten.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from fe.catalog.backends import CatalogBackend
from fe.catalog.identity import normalize_client_ip

log = logging.getLogger("fe.domains")


class DomainResolver:
    def __init__(self, catalog: CatalogBackend, refresh_seconds: float, timeout_seconds: float = 2.0) -> None:
        self._catalog = catalog
        self._refresh_seconds = refresh_seconds
        self._timeout = timeout_seconds
        self._addresses: dict[str, frozenset[str]] = {}
        self._marker: tuple[int, int] | None = None
        self._lock = asyncio.Lock()
        # Bumped whenever any domain's addresses change, so caches of login matches know to start over.
        self.version = 0

    def addresses(self, domain: str) -> frozenset[str]:
        return self._addresses.get(domain, frozenset())

    def is_current(self, marker: tuple[int, int]) -> bool:
        """True when the catalog has not changed (its `change_marker()` is `marker`) since domains were resolved."""
        return marker == self._marker

    async def catch_up(self) -> None:
        """Resolve domains that identities gained since the last call (cheap when the catalog did not change)."""
        marker = self._catalog.change_marker()
        if marker == self._marker:
            return
        async with self._lock:
            marker = self._catalog.change_marker()
            if marker == self._marker:
                return
            domains = self._catalog.domain_hosts()
            for gone in set(self._addresses) - domains:
                del self._addresses[gone]
                self.version += 1
            await self._resolve_all(domains - set(self._addresses))
            self._marker = marker

    async def refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_seconds)
            async with self._lock:
                await self._resolve_all(self._catalog.domain_hosts())

    async def _resolve_all(self, domains: set[str]) -> None:
        if domains:
            await asyncio.gather(*(self._resolve(domain) for domain in sorted(domains)))

    async def _resolve(self, domain: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(domain, None, type=socket.SOCK_STREAM), self._timeout)
        except (OSError, TimeoutError) as exc:
            log.warning("cannot resolve %s for its domain identities: %s", domain, exc or "timed out")
            self._addresses.setdefault(domain, frozenset())
            return
        addresses = frozenset(normalize_client_ip(str(info[4][0])) for info in infos)
        if addresses != self._addresses.get(domain):
            self._addresses[domain] = addresses
            self.version += 1
