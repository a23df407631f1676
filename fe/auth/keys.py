"""KeyStore: the verifier's one door to keys. A user's spec names exactly one source — an http(s) JWKS URL, a
file under conf/, or (no jwks_url) its required issuers, whose discovery documents name their JWKS URLs — and
gets that source's KeySet only; sets from different URLs or files are never merged, so a token from issuer A
cannot be checked against issuer B's keys. With discovery, the token's own `iss` picks the issuer (one of the
spec's), and the signature then binds that `iss` to the keys it was checked with.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from fe.auth.discovery import DiscoverySource, issuer_to_discover
from fe.auth.jwk import KeySet
from fe.auth.jwks_http import DEFAULT_KEY_FETCH, HttpFetcher, KeyFetchOptions, RemoteKeySource
from fe.auth.key_files import LocalKeySource
from fe.auth.token_spec import TokenAuthSpec


class KeyStore:
    def __init__(
        self,
        conf_dir: Path,
        options: KeyFetchOptions = DEFAULT_KEY_FETCH,
        *,
        clock: Callable[[], float] = time.time,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        """`conf_dir` holds the key files; `options` apply to URLs, and their size limits to files too."""
        self._options = options
        self._fetcher = HttpFetcher(options, http_client)  # one client for key sets and discovery documents
        self.remote = RemoteKeySource(options, clock=clock, fetcher=self._fetcher)
        self.discovery = DiscoverySource(options, clock=clock, fetcher=self._fetcher)
        self.local = LocalKeySource(
            conf_dir, max_bytes=options.max_response_bytes, max_keys=options.max_keys, clock=clock
        )

    async def get_keys(self, spec: TokenAuthSpec, issuer: object = None) -> KeySet:
        """The cached keys for the spec's source (fetching or reading them if needed), or TokenRejected.
        `issuer` is the token's `iss` claim, used (and checked against required_issuer) only for discovery."""
        if spec.discovers_keys:
            jwks_uri = await self.discovery.jwks_uri(self._issuer(spec, issuer))
            return await self.remote.get_keys(jwks_uri)
        if spec.is_remote:
            return await self.remote.get_keys(spec.jwks_url)
        return self.local.get_keys(spec.jwks_url)

    async def refetch_for_unknown_kid(
        self, spec: TokenAuthSpec, issuer: object = None, kid: str | None = None
    ) -> KeySet | None:
        """A fresher set after a miss of `kid`, or None when none may be fetched now (cooldown, local file).

        With discovery, the JWKS is refetched first; if `kid` is still missing, the discovery document too (its own
        bucket), in case the provider moved its keys to another jwks_uri."""
        if spec.discovers_keys:
            issuer = self._issuer(spec, issuer)
            jwks_uri = await self.discovery.jwks_uri(issuer)
            refreshed = await self.remote.refetch_for_unknown_kid(jwks_uri)
            if refreshed is not None and kid is not None and kid in refreshed.by_kid:
                return refreshed
            moved_to = await self.discovery.refetch_for_unknown_kid(issuer)
            if moved_to is None or moved_to == jwks_uri:
                return refreshed
            return await self.remote.get_keys(moved_to)
        if spec.is_remote:
            return await self.remote.refetch_for_unknown_kid(spec.jwks_url)
        return None

    def stats(self) -> dict[str, Any]:
        remote, local, discovery = self.remote.stats, self.local.stats, self.discovery.stats
        return {
            "jwks_fetches": dict(remote.fetches),
            "jwks_fetch_failures": dict(remote.fetch_failures),
            "jwks_unknown_kid_refetches": dict(remote.unknown_kid_refetches),
            "jwks_stale_serves": dict(remote.stale_serves),
            "jwks_key_age_seconds": self.remote.key_ages(),
            "key_file_reads": dict(local.reads),
            # Per issuer.
            "discovery_fetches": dict(discovery.fetches),
            "discovery_fetch_failures": dict(discovery.fetch_failures),
            "discovery_unknown_kid_refetches": dict(discovery.unknown_kid_refetches),
            "discovery_stale_serves": dict(discovery.stale_serves),
            "discovery_age_seconds": self.discovery.ages(),
        }

    async def aclose(self) -> None:
        await self.discovery.aclose()
        await self.remote.aclose()
        await self._fetcher.aclose()

    def _issuer(self, spec: TokenAuthSpec, issuer: object) -> str:
        return issuer_to_discover(spec, issuer, self._options.discovery_allow_http)
