"""Prometheus metrics of one fe process, through prometheus_client; the rest of fe records through `Metrics` and
never touches prometheus_client itself.

With `--workers N` every worker writes its values to files in one directory (prometheus_client's multiprocess
mode, switched on by PROMETHEUS_MULTIPROC_DIR in the worker's environment before prometheus_client is imported),
and any worker's /metrics reads them all. The supervisor empties that directory at start
(`prepare_multiprocess_dir`) and calls `mark_worker_dead` for each worker that exits, so the gauges of the living
(connections open, cache entries, key-set age) drop the dead one's share while its counters stay in the totals.

Labels stay few and bounded: the login method is clamped to the plugins MySQL clients and fe know (a client
names its plugin itself), outcomes and reasons are fe's own codes. Key sets carry no URL label: the set of URLs
is whatever CREATE USER statements name, and a URL may carry a credential in its query; the log and SHOW STATUS
have the per-URL detail.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from bisect import bisect_left
from collections.abc import Callable, Mapping
from itertools import accumulate
from pathlib import Path
from typing import Any, Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    multiprocess,
    values,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import INF, floatToGoString

log = logging.getLogger("fe.metrics")

MULTIPROCESS_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
# From a cache hit on a password login (well under a millisecond) to a key fetch at its timeout (seconds).
LOGIN_SECONDS_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# How often a worker copies its token verifier's counters and cache sizes into its metrics.
SYNC_SECONDS: Final = 5.0

KNOWN_METHODS: Final = frozenset(
    {
        "mysql_native_password",
        "caching_sha2_password",
        "sha256_password",
        "mysql_clear_password",
        "authentication_openid_connect_client",
        "authentication_openid_connect",
        "authentication_jwt",
    }
)
_CODE = re.compile(r"[a-z][a-z0-9_]{0,47}")
# The token verifier's counters (its `stats`, fe/auth/verifier.py) and the metric each one feeds.
_SYNCED_COUNTERS: Final = {
    "token_cache_hits": ("fe_token_cache_hits", "Logins whose token was found in the verified-token cache."),
    "jwks_fetches": ("fe_jwks_fetches", "Key-set fetches over HTTP, failed ones included."),
    "jwks_fetch_failures": ("fe_jwks_fetch_failures", "Key-set fetches that failed (unreachable or invalid)."),
    "jwks_unknown_kid_refetches": (
        "fe_jwks_unknown_kid_refetches",
        "Key-set fetches caused by a token naming an unknown key id.",
    ),
    "jwks_stale_serves": ("fe_jwks_stale_serves", "Logins served from a key set whose refresh had failed."),
}


def method_label(method: str) -> str:
    if method in KNOWN_METHODS:
        return method
    return "none" if not method else "other"


def code_label(code: str) -> str:
    """An outcome or reason: fe's own codes pass, anything else (a bug) is folded into one value."""
    return code if _CODE.fullmatch(code) else "other"


class Metrics:
    """The metrics of this process. In multiprocess mode (PROMETHEUS_MULTIPROC_DIR set) the values go to files
    in that directory and `exposition()` reads every process's files; otherwise they live in this object."""

    def __init__(self, token_stats: Callable[[], Mapping[str, Any]] | None = None) -> None:
        """`token_stats` reads the token verifier's counters (TokenVerifier.stats), copied in by `sync()`."""
        self.multiprocess_dir = os.environ.get(MULTIPROCESS_ENV) or None
        writes_files = bool(getattr(values.ValueClass, "_multiprocess", False))
        if writes_files != bool(self.multiprocess_dir):
            raise RuntimeError(f"{MULTIPROCESS_ENV} must be set (or unset) before prometheus_client is imported")
        if self.multiprocess_dir is not None and not os.path.isdir(self.multiprocess_dir):
            raise RuntimeError(f"{MULTIPROCESS_ENV} is not a directory: {self.multiprocess_dir}")
        disable_created_metrics()  # no `_created` series beside each counter and histogram
        self._token_stats = token_stats
        self.registry = CollectorRegistry(auto_describe=True)
        # Multiprocess mode: the metrics are written to files and read back by the collector, never registered.
        own: CollectorRegistry | None = None
        if self.multiprocess_dir is not None:
            multiprocess.MultiProcessCollector(self.registry, path=self.multiprocess_dir)
        else:
            own = self.registry
            ProcessCollector(registry=own)

        self._login_labels: dict[tuple[str, str, str], tuple[LoginLabels, DurationLabels]] = {}
        # Logins, the most frequent thing counted: as plain numbers in a process that exposes its own metrics; in
        # multiprocess mode through prometheus_client's Counter and Histogram, whose files every worker's scrape reads.
        self._logins: PlainLogins | PrometheusLogins
        if own is not None:
            self._logins = PlainLogins(LOGIN_SECONDS_BUCKETS)
            own.register(self._logins)
        else:
            self._logins = PrometheusLogins(LOGIN_SECONDS_BUCKETS, registry=None)
        self._accepted_total = 0
        # The listener's connection counts, read at each sync (set by the server once it has a listener).
        self.connection_counts: Callable[[], tuple[int, int]] | None = None
        self._connections_accepted = Counter(
            "fe_connections_accepted", "Connections admitted past the connection limits.", registry=own
        )
        self._connections_open = Gauge(
            "fe_connections_open", "Connections open now.", registry=own, multiprocess_mode="livesum"
        )
        self._connections_refused = Counter(
            "fe_connections_refused", "Connections closed before their greeting or login, by reason.",
            ["reason"], registry=own,
        )  # fmt: skip
        self._catalog_notifications = Counter(
            "fe_catalog_notifications", "Change notifications received from the catalog.", registry=own
        )
        self._synced = {
            key: Counter(name, documentation, registry=own) for key, (name, documentation) in _SYNCED_COUNTERS.items()
        }
        self._synced_totals: dict[str, float] = {}
        self._token_cache_entries = Gauge(
            "fe_token_cache_entries", "Tokens in the verified-token caches.", registry=own, multiprocess_mode="livesum"
        )
        self._oldest_key_set_age = Gauge(
            "fe_jwks_oldest_key_set_age_seconds",
            "Seconds since the oldest cached key set was last fetched successfully (0 with none cached).",
            registry=own, multiprocess_mode="livemax",
        )  # fmt: skip
        self._own = own
        # The gateway's pool, read at each sync: (open, idle, leased, opened since start, reused since start).
        self._upstream_pool: Callable[[], tuple[int, int, int, int, int]] | None = None
        self._upstream_totals = (0, 0)

    def watch_upstream_pool(self, counts: Callable[[], tuple[int, int, int, int, int]]) -> None:
        """With a gateway: its pool's counts (open, idle, leased, opened since start, reused since start), copied
        in at each sync. Without one, fe shows no upstream metrics."""
        own = self._own
        self._upstream_connections = Gauge(
            "fe_upstream_connections",
            "Connections to the upstream database open now, by state: idle in the pool, leased to a session, or "
            "being opened.",
            ["state"], registry=own, multiprocess_mode="livesum",
        )  # fmt: skip
        self._upstream_opened = Counter(
            "fe_upstream_connections_opened", "Connections to the upstream opened and logged in.", registry=own
        )
        self._upstream_reused = Counter(
            "fe_upstream_connections_reused",
            "Logins given a pooled upstream connection (handed over with COM_CHANGE_USER).",
            registry=own,
        )
        self._upstream_pool = counts

    def _sync_upstream_pool(self, open_now: int, idle: int, leased: int, opened: int, reused: int) -> None:
        self._upstream_connections.labels("idle").set(idle)
        self._upstream_connections.labels("leased").set(leased)
        self._upstream_connections.labels("opening").set(max(0, open_now - idle - leased))
        last_opened, last_reused = self._upstream_totals
        if opened > last_opened:
            self._upstream_opened.inc(opened - last_opened)
        if reused > last_reused:
            self._upstream_reused.inc(reused - last_reused)
        self._upstream_totals = (opened, reused)

    # ---- recording ----

    def login(self, method: str, outcome: str, reason: str, seconds: float) -> None:
        """One login attempt: `method` the authentication plugin, `outcome` success or failure, `reason` the login
        log's reason code, `seconds` its duration."""
        key = (method, outcome, reason)
        labels = self._login_labels.get(key)
        if labels is None:
            method, outcome = method_label(method), code_label(outcome)
            labels = ((method, outcome, code_label(reason)), (method, outcome))
            if len(self._login_labels) < 4096:  # the clamped labels are bounded; the raw keys need not be
                self._login_labels[key] = labels
        self._logins.login(labels[0], labels[1], seconds)

    def connections(self, accepted: int, open_now: int) -> None:
        """The listener's own counts (connections accepted since start, open now), copied in by `sync()`: a
        prometheus_client update per connection would cost every login more than it tells."""
        grown = accepted - self._accepted_total
        if grown > 0:
            self._connections_accepted.inc(grown)
        self._accepted_total = accepted
        self._connections_open.set(open_now)

    def connection_refused(self, reason: str) -> None:
        """A connection turned away before it could log in: `too_many_connections`, `proxy_protocol`, ..."""
        self._connections_refused.labels(code_label(reason)).inc()

    def catalog_notification(self) -> None:
        self._catalog_notifications.inc()

    def sync_token_stats(self, stats: Mapping[str, Any]) -> None:
        """Copy the token verifier's counters (as TokenVerifier.stats gives them: totals, or totals per key-set
        URL) and cache sizes in. Counters move by what grew since the last call."""
        for key, counter in self._synced.items():
            value = stats.get(key, 0)
            total = float(sum(value.values()) if isinstance(value, Mapping) else value)
            grown = total - self._synced_totals.get(key, 0.0)
            if grown > 0:
                counter.inc(grown)
            self._synced_totals[key] = total  # a total that shrank (a key set evicted) restarts from there
        self._token_cache_entries.set(stats.get("token_cache_size", 0))
        ages = stats.get("jwks_key_age_seconds", {})
        self._oldest_key_set_age.set(max(ages.values(), default=0.0))

    def sync(self) -> None:
        if self._token_stats is not None:
            self.sync_token_stats(self._token_stats())
        if self.connection_counts is not None:
            self.connections(*self.connection_counts())
        if self._upstream_pool is not None:
            self._sync_upstream_pool(*self._upstream_pool())

    async def sync_forever(self, interval: float = SYNC_SECONDS) -> None:
        """Keep the synced values fresh: in multiprocess mode a scrape served by another worker reads them."""
        while True:
            try:
                self.sync()
            except Exception:
                log.exception("cannot read the token verifier's counters for the metrics")
            await asyncio.sleep(interval)

    # ---- reading ----

    async def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """Every metric in the format the `accept` header asks for (Prometheus' text format by default), and its
        Content-Type. Encoding (which reads every worker's file in multiprocess mode) runs off the event loop."""
        self.sync()
        encoder, content_type = choose_encoder(accept)
        body = await asyncio.to_thread(encoder, self.registry)
        return body, content_type


# ---- the login metrics ----

LoginLabels = tuple[str, str, str]  # method, outcome, reason
DurationLabels = tuple[str, str]  # method, outcome
_LOGINS = "fe_logins"
_LOGINS_HELP = "Login attempts by authentication method, outcome and reason."
_LOGINS_LABELS = ("method", "outcome", "reason")
_DURATIONS = "fe_login_duration_seconds"
_DURATIONS_HELP = "Time from the client's handshake response to fe's OK or ERR."
_DURATIONS_LABELS = ("method", "outcome")


class PrometheusLogins:
    """fe_logins and fe_login_duration_seconds as prometheus_client's Counter and Histogram: what multiprocess mode
    needs (their values go to files that any worker's scrape reads)."""

    def __init__(self, buckets: tuple[float, ...], registry: CollectorRegistry | None) -> None:
        self._counter = Counter(_LOGINS, _LOGINS_HELP, _LOGINS_LABELS, registry=registry)
        self._histogram = Histogram(_DURATIONS, _DURATIONS_HELP, _DURATIONS_LABELS, buckets=buckets, registry=registry)
        self._children: dict[LoginLabels, tuple[Counter, Histogram]] = {}

    def login(self, labels: LoginLabels, duration_labels: DurationLabels, seconds: float) -> None:
        children = self._children.get(labels)
        if children is None:
            children = self._children[labels] = (
                self._counter.labels(*labels),
                self._histogram.labels(*duration_labels),
            )
        children[0].inc()
        children[1].observe(seconds)


class PlainLogins(Collector):
    """fe_logins and fe_login_duration_seconds of a process that is the only one to expose its metrics, as plain
    numbers, exposed by `collect` exactly as prometheus_client's Counter and Histogram expose them (the tests compare
    the two). A login is what fe counts most often: Counter.inc and Histogram.observe cost it about 13,000
    instructions (checks, and a lock for each of three values), this two lookups and three additions. The numbers
    are written on the event loop and read by the exposition's thread: each is one float, copied out whole."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self._bounds = (*buckets, INF)
        self._le = tuple(floatToGoString(bound) for bound in self._bounds)
        self._counts: dict[LoginLabels, float] = {}
        self._durations: dict[DurationLabels, list[float]] = {}  # per bucket (as observed, not cumulative), then sum

    def login(self, labels: LoginLabels, duration_labels: DurationLabels, seconds: float) -> None:
        counts = self._counts
        counts[labels] = counts.get(labels, 0.0) + 1.0
        slots = self._durations.get(duration_labels)
        if slots is None:
            slots = self._durations[duration_labels] = [0.0] * (len(self._bounds) + 1)
        slots[bisect_left(self._bounds, seconds)] += 1.0  # the first bucket whose bound is >= seconds, as observe()
        slots[-1] += seconds

    def describe(self) -> list[Metric]:
        return [
            CounterMetricFamily(_LOGINS, _LOGINS_HELP, labels=_LOGINS_LABELS),
            HistogramMetricFamily(_DURATIONS, _DURATIONS_HELP, labels=_DURATIONS_LABELS),
        ]

    def collect(self) -> list[Metric]:
        logins = CounterMetricFamily(_LOGINS, _LOGINS_HELP, labels=_LOGINS_LABELS)
        for labels, count in list(self._counts.items()):
            logins.add_metric(labels, count)
        durations = HistogramMetricFamily(_DURATIONS, _DURATIONS_HELP, labels=_DURATIONS_LABELS)
        for duration_labels, slots in list(self._durations.items()):
            observed = list(slots)
            durations.add_metric(
                duration_labels, list(zip(self._le, accumulate(observed[:-1]), strict=True)), observed[-1]
            )
        return [logins, durations]


# ---- the supervisor's side of multiprocess mode ----


def prepare_multiprocess_dir(path: Path) -> None:
    """A private directory for the workers' metric files, emptied of an earlier run's."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    for stale in path.glob("*.db"):
        stale.unlink()


def multiprocess_environment(path: Path) -> dict[str, str]:
    """What a worker's environment needs for multiprocess mode."""
    return {MULTIPROCESS_ENV: str(path)}


def mark_worker_dead(pid: int, path: Path) -> None:
    """After worker `pid` exited: drop its share of the gauges that count living processes only."""
    multiprocess.mark_process_dead(pid, str(path))
