"""KeyStore: the verifier's one door to keys. A user's spec names exactly one source — an http(s) JWKS URL or a
file under conf/ — and gets that source's KeySet only; sets from different URLs or files are never merged, so
a token from issuer A cannot be checked against issuer B's keys.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from fe.auth.jwk import KeySet
from fe.auth.jwks_http import DEFAULT_KEY_FETCH, KeyFetchOptions, RemoteKeySource
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
        self.remote = RemoteKeySource(options, clock=clock, http_client=http_client)
        self.local = LocalKeySource(
            conf_dir, max_bytes=options.max_response_bytes, max_keys=options.max_keys, clock=clock
        )

    async def get_keys(self, spec: TokenAuthSpec) -> KeySet:
        """The cached keys for the spec's source (fetching or reading them if needed), or TokenRejected."""
        if spec.is_remote:
            return await self.remote.get_keys(spec.jwks_url)
        return self.local.get_keys(spec.jwks_url)

    async def refetch_for_unknown_kid(self, spec: TokenAuthSpec) -> KeySet | None:
        """A fresher set after a kid miss, or None when none may be fetched now (cooldown, local file)."""
        if spec.is_remote:
            return await self.remote.refetch_for_unknown_kid(spec.jwks_url)
        return None

    def stats(self) -> dict[str, Any]:
        remote, local = self.remote.stats, self.local.stats
        return {
            "jwks_fetches": dict(remote.fetches),
            "jwks_fetch_failures": dict(remote.fetch_failures),
            "jwks_unknown_kid_refetches": dict(remote.unknown_kid_refetches),
            "jwks_stale_serves": dict(remote.stale_serves),
            "jwks_key_age_seconds": self.remote.key_ages(),
            "key_file_reads": dict(local.reads),
        }

    async def aclose(self) -> None:
        await self.remote.aclose()
