"""Documents fe fetches over http(s) — key sets (JWKS) and OpenID Connect Discovery documents (discovery.py) —
fetched with httpx, parsed once, cached per key (a URL, or an issuer).

Policy (see docs in reference/token-verification.md), the same for both kinds:
- Single-flight: one fetch in flight per key; every login that needs it awaits the same task (shielded, so a
  login that is cancelled does not cancel the fetch the others are waiting for).
- Soft refresh: once a document is `jwks_refresh_seconds` old, the next login starts a background refresh and
  carries on with the current one.
- Unknown kid: a token bucket per key that holds one refetch and gains one per
  `jwks_unknown_kid_cooldown_seconds`. So the first unknown kid after a quiet spell refetches at once (an
  identity provider that publishes a new key and signs with it right away is not refused for a cooldown), and a
  flood of random kids costs at most two refetches in any cooldown-long window. A kid miss while a fetch is in
  flight joins that fetch.
- Failed fetches: retries (by a login, a refresh or a kid miss) wait `jwks_unknown_kid_cooldown_seconds` from
  the last attempt, so a dead server is not hammered by login attempts.
- Failures never replace documents: a failed or unusable response (timeout, redirect, non-200, too big, not JSON,
  too many keys, no usable key, a discovery document for another issuer) leaves the last good one in place. It
  keeps working until `jwks_max_stale_seconds` after its last successful fetch; each login served in that state
  counts as a stale serve and a warning is logged (at most once per cooldown per key).
- A successful fetch replaces the document. A key the server no longer publishes is dropped at once rather than
  kept through a grace period: removing a key is how an identity provider revokes it, and a successful response
  from the configured URL is the only authority on what the keys are.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import httpx

from fe.auth.errors import TokenRejected
from fe.auth.http_proxy import ProxySettings
from fe.auth.jwk import KeyParseError, KeySet, load_json, parse_jwks

log = logging.getLogger("fe.auth.jwks")

JWKS_ACCEPT = "application/json, application/jwk-set+json"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class KeyFetchOptions:
    """How key sets (and discovery documents) are fetched and cached: the `jwks_*` settings, under shorter names,
    and `discovery_allow_http` (see conf/fe.conf)."""

    refresh_seconds: float = 300.0
    max_stale_seconds: float = 86400.0
    unknown_kid_cooldown_seconds: float = 30.0
    fetch_timeout_seconds: float = 5.0
    max_response_bytes: int = 1024 * 1024  # also the size limit of a key file
    max_keys: int = 100  # per JWKS or key file
    ca_bundle: Path | None = None  # CA certificates (PEM) for https key servers; None: the system's trust store
    # Forward proxies (http://host:port; empty: none) and the hosts that bypass them: see fe/auth/http_proxy.py.
    http_proxy: str = ""
    https_proxy: str = ""
    no_proxy: str = ""
    # Discovery (no jwks_url) from http:// issuers, and to http:// jwks_uri: for tests and labs only.
    discovery_allow_http: bool = False

    @property
    def proxy(self) -> ProxySettings:
        """The proxy settings parsed; ValueError if malformed (fe.config checks them at start)."""
        return ProxySettings.parse(self.http_proxy, self.https_proxy, self.no_proxy)


DEFAULT_KEY_FETCH = KeyFetchOptions()


class FetchFailed(Exception):
    """A fetch that produced no usable document; `reason` is a TokenRejected reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class FetchStats:
    """Counters per cache key (a JWKS URL, an issuer)."""

    fetches: Counter[str] = field(default_factory=Counter)
    fetch_failures: Counter[str] = field(default_factory=Counter)
    unknown_kid_refetches: Counter[str] = field(default_factory=Counter)
    stale_serves: Counter[str] = field(default_factory=Counter)


class RefetchBucket:
    """A token bucket of capacity one, refilled at one token per `interval` seconds (full when created)."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._tokens = 1.0
        self._updated_at: float | None = None

    def take(self, now: float) -> bool:
        if self._interval <= 0:
            return True
        if self._updated_at is not None:
            elapsed = max(0.0, now - self._updated_at)  # a wall clock stepped back refills nothing
            self._tokens = min(1.0, self._tokens + elapsed / self._interval)
        self._updated_at = now
        if self._tokens < 1.0 - 1e-9:
            return False
        self._tokens = max(0.0, self._tokens - 1.0)
        return True


@dataclass
class _State(Generic[T]):
    key: str
    unknown_kid_refetches: RefetchBucket
    value: T | None = None
    fetched_at: float = 0.0  # clock time of the last successful fetch
    last_attempt_at: float = float("-inf")
    last_error: FetchFailed | None = None  # set when the latest attempt failed, cleared by a success
    inflight: asyncio.Task[None] | None = None
    last_stale_warning_at: float = float("-inf")


def make_http_client(
    *, timeout_seconds: float, ca_bundle: Path | None = None, proxy: ProxySettings | None = None
) -> httpx.AsyncClient:
    """The client for key sets (and any other document fe fetches): no redirects, bounded timeouts, an optional
    CA bundle, and the configured proxies. Nothing comes from the environment (trust_env off): HTTP_PROXY,
    HTTPS_PROXY, NO_PROXY or SSL_CERT_FILE set for some other program never redirect or re-anchor key fetches."""
    verify: ssl.SSLContext | bool = True
    if ca_bundle is not None:
        verify = ssl.create_default_context(cafile=str(ca_bundle))
    transport: httpx.AsyncBaseTransport | None = None
    if proxy is not None and proxy.enabled:
        transport = _ProxyRouter(proxy, verify)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_seconds),
        follow_redirects=False,
        verify=verify,
        transport=transport,
        trust_env=False,
    )


class _ProxyRouter(httpx.AsyncBaseTransport):
    """Sends each request direct or through its scheme's proxy; httpx's own mounts cannot match CIDR ranges."""

    def __init__(self, proxy: ProxySettings, verify: ssl.SSLContext | bool) -> None:
        self._proxy = proxy
        self._direct = httpx.AsyncHTTPTransport(verify=verify, trust_env=False)
        self._proxied: dict[str, httpx.AsyncHTTPTransport] = {}
        for url in {proxy.http_proxy, proxy.https_proxy} - {None}:
            assert url is not None
            self._proxied[url] = httpx.AsyncHTTPTransport(verify=verify, trust_env=False, proxy=httpx.Proxy(url))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        proxy = self._proxy.proxy_for(request.url.scheme, request.url.host)
        transport = self._direct if proxy is None else self._proxied[proxy]
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        for transport in (self._direct, *self._proxied.values()):
            await transport.aclose()


class HttpFetcher:
    """One GET with the key-fetch settings: the whole exchange within `fetch_timeout_seconds`, no redirects, only
    200, no compressed bodies, at most `max_response_bytes`. The httpx client is made on first use (or given)."""

    def __init__(
        self, options: KeyFetchOptions = DEFAULT_KEY_FETCH, http_client: httpx.AsyncClient | None = None
    ) -> None:
        self._options = options
        self._client = http_client
        self._owns_client = http_client is None

    async def get(self, url: str, accept: str) -> bytes:
        """The body, or FetchFailed: key_server_unreachable for the transport, key_set_invalid for the body."""
        timeout = self._options.fetch_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                return await self._download(url, accept)
        except TimeoutError:
            raise FetchFailed("key_server_unreachable", f"timeout after {timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise FetchFailed("key_server_unreachable", _describe_http_error(exc)) from None

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _download(self, url: str, accept: str) -> bytes:
        if self._client is None:
            options = self._options
            self._client = make_http_client(
                timeout_seconds=options.fetch_timeout_seconds, ca_bundle=options.ca_bundle, proxy=options.proxy
            )
        limit = self._options.max_response_bytes
        # Uncompressed only: the size cap then bounds what is read, with no decompression bomb to worry about.
        headers = {"Accept": accept, "Accept-Encoding": "identity"}
        async with self._client.stream("GET", url, headers=headers, follow_redirects=False) as response:
            if response.is_redirect:
                target = response.headers.get("location", "?")[:200]
                raise FetchFailed("key_server_unreachable", f"HTTP {response.status_code} redirect to {target} refused")
            if response.status_code != 200:
                raise FetchFailed("key_server_unreachable", f"HTTP {response.status_code}")
            encoding = response.headers.get("content-encoding", "identity").lower()
            if encoding != "identity":
                raise FetchFailed("key_set_invalid", f"compressed response ({encoding}) refused")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise FetchFailed("key_set_invalid", f"response of {declared} bytes exceeds the {limit}-byte limit")
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > limit:
                    raise FetchFailed("key_set_invalid", f"response exceeds the {limit}-byte limit")
        return bytes(body)


class RemoteDocumentCache(Generic[T]):
    """The policy of this module's docstring for one kind of document, cached per key. A subclass says how a key
    is loaded (`_load`) and how its failures read (`_unreachable_text`, `_invalid_text`)."""

    what = "document"  # in log lines
    noun = "document"  # "cached <noun> expired"

    def __init__(
        self,
        options: KeyFetchOptions = DEFAULT_KEY_FETCH,
        *,
        clock: Callable[[], float] = time.time,
        http_client: httpx.AsyncClient | None = None,
        fetcher: HttpFetcher | None = None,
    ) -> None:
        """`fetcher` may be shared with another cache (its owner closes it); without one, one is made (from
        `http_client`, if given) and closed by aclose()."""
        self._options = options
        self._clock = clock
        self._owns_fetcher = fetcher is None
        self._fetcher = fetcher if fetcher is not None else HttpFetcher(options, http_client)
        self._states: dict[str, _State[T]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.stats = FetchStats()

    async def get(self, key: str) -> T:
        """The cached document for `key` (fetched first if need be), or TokenRejected."""
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _State(key, RefetchBucket(self._options.unknown_kid_cooldown_seconds))
        now = self._clock()
        value = state.value
        if value is not None:
            age = now - state.fetched_at
            if age < self._options.refresh_seconds:
                return value
            if age <= self._options.max_stale_seconds:
                if state.inflight is None and self._may_attempt(state, now):
                    self._start_fetch(state)
                if state.last_error is not None:
                    self._note_stale_serve(state, now, age)
                return value
        if state.inflight is None and not self._may_attempt(state, now):
            raise self._unavailable(state, now)
        await self._join_fetch(state)
        if state.value is not None and self._clock() - state.fetched_at <= self._options.max_stale_seconds:
            return state.value
        raise self._unavailable(state, self._clock())

    async def refetch_for_unknown_kid(self, key: str) -> T | None:
        """Fetch again (shared, rate-limited) because a token named a kid we do not have; the new document or None
        (nothing fetched yet for this key, the bucket is empty, or the fetch failed)."""
        state = self._states.get(key)
        if state is None:
            return None
        if state.inflight is None:
            now = self._clock()
            if state.last_error is not None and not self._may_attempt(state, now):
                return None  # the server just failed: a kid miss does not retry it sooner than a login would
            if not state.unknown_kid_refetches.take(now):
                return None
            self.stats.unknown_kid_refetches[key] += 1
        await self._join_fetch(state)
        return state.value if state.last_error is None else None

    def ages(self) -> dict[str, float]:
        """Seconds since the last successful fetch, per key that has a document (for metrics: cache age)."""
        now = self._clock()
        return {key: now - state.fetched_at for key, state in self._states.items() if state.value is not None}

    async def aclose(self) -> None:
        tasks = [*self._background]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._owns_fetcher:
            await self._fetcher.aclose()

    async def _load(self, key: str) -> tuple[T, list[str]]:
        """Fetch and parse the document for `key`: (it, warnings to log), or FetchFailed."""
        raise NotImplementedError

    def _loaded_text(self, key: str, value: T) -> str:
        return f"{self.what} {key} loaded"

    def _unreachable_text(self, key: str, detail: str) -> str:
        return f"{self.what} {key} unreachable ({detail})"

    def _invalid_text(self, key: str, detail: str) -> str:
        return f"{self.what} {key} is unusable ({detail})"

    def _may_attempt(self, state: _State[T], now: float) -> bool:
        return now - state.last_attempt_at >= self._options.unknown_kid_cooldown_seconds

    def _start_fetch(self, state: _State[T]) -> asyncio.Task[None]:
        if state.inflight is None:
            state.last_attempt_at = self._clock()
            task = asyncio.get_running_loop().create_task(self._fetch_into(state), name=f"fetch {state.key}")
            state.inflight = task
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return state.inflight

    async def _join_fetch(self, state: _State[T]) -> None:
        await asyncio.shield(self._start_fetch(state))

    async def _fetch_into(self, state: _State[T]) -> None:
        self.stats.fetches[state.key] += 1
        try:
            try:
                value, warnings = await self._load(state.key)
            except FetchFailed:
                raise
            except Exception as exc:  # a bad URL, an unreadable CA bundle, ...: still just a failed fetch
                log.exception("%s fetch for %s raised", self.what, state.key)
                raise FetchFailed("key_server_unreachable", f"{type(exc).__name__}: {exc}") from None
        except FetchFailed as exc:
            self.stats.fetch_failures[state.key] += 1
            state.last_error = exc
            kept = f"keeping the previous {self.noun}" if state.value is not None else f"no {self.noun} available"
            log.warning("%s fetch for %s failed: %s (%s)", self.what, state.key, exc.detail, kept)
        else:
            for message in warnings:
                log.warning("%s %s: %s", self.what, state.key, message)
            state.value = value
            state.fetched_at = self._clock()
            state.last_error = None
            log.info("%s", self._loaded_text(state.key, value))
        finally:
            state.inflight = None

    def _note_stale_serve(self, state: _State[T], now: float, age: float) -> None:
        self.stats.stale_serves[state.key] += 1
        if now - state.last_stale_warning_at >= self._options.unknown_kid_cooldown_seconds:
            state.last_stale_warning_at = now
            log.warning(
                "serving stale %s for %s: last successful fetch %.0fs ago (limit %.0fs), last error: %s",
                self.what,
                state.key,
                age,
                self._options.max_stale_seconds,
                state.last_error.detail if state.last_error else "?",
            )

    def _unavailable(self, state: _State[T], now: float) -> TokenRejected:
        error = state.last_error
        detail = error.detail if error else "no successful fetch yet"
        if state.value is not None:
            age = now - state.fetched_at
            limit = self._options.max_stale_seconds
            return TokenRejected(
                "key_server_unreachable",
                f"{self._unreachable_text(state.key, detail)}; "
                f"cached {self.noun} expired ({age:.0f}s old, limit {limit:.0f}s)",
            )
        if error is not None and error.reason == "key_set_invalid":
            return TokenRejected("key_set_invalid", self._invalid_text(state.key, detail))
        return TokenRejected("key_server_unreachable", self._unreachable_text(state.key, detail))


class RemoteKeySource(RemoteDocumentCache[KeySet]):
    """Key sets by URL."""

    what = "JWKS"
    noun = "keys"

    async def get_keys(self, url: str) -> KeySet:
        return await self.get(url)

    def key_ages(self) -> dict[str, float]:
        return self.ages()

    async def _load(self, key: str) -> tuple[KeySet, list[str]]:
        body = await self._fetcher.get(key, JWKS_ACCEPT)
        try:
            return parse_jwks(load_json(body), key, self._options.max_keys)
        except KeyParseError as exc:
            raise FetchFailed("key_set_invalid", str(exc)) from None

    def _loaded_text(self, key: str, value: KeySet) -> str:
        return f"JWKS {key}: {len(value.keys)} usable key(s) loaded"

    def _unreachable_text(self, key: str, detail: str) -> str:
        return f"key server unreachable: {key} ({detail})"

    def _invalid_text(self, key: str, detail: str) -> str:
        return f"key server {key} returned an unusable JWKS ({detail})"


def _describe_http_error(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {exc}" if str(exc) else "cannot connect"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
