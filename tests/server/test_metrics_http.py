"""The metrics (fe/server/metrics.py) and the operators' HTTP listener (fe/server/http.py), in one process: logins,
connections and the token verifier's counters read back through /metrics with prometheus_client's own parser;
/healthz and /readyz; bad requests answered 400 without harm to the listener."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from fe.server.http import HttpListener, Readiness, readiness_check
from fe.server.metrics import LOGIN_SECONDS_BUCKETS, Metrics


class Server:
    def __init__(self, listener: HttpListener, host: str, port: int) -> None:
        self.listener = listener
        self.host, self.port = host, port
        self.url = f"http://{host}:{port}"

    async def get(self, path: str, **headers: str) -> httpx.Response:
        async with httpx.AsyncClient() as client:
            return await client.get(self.url + path, headers=headers)

    async def raw(self, data: bytes, *, close_write: bool = False) -> bytes:
        """Send bytes as they are; the reply, up to the listener's close."""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(data)
            if close_write:
                writer.write_eof()
            return await asyncio.wait_for(reader.read(), 10)
        finally:
            writer.close()

    async def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        response = await self.get("/metrics")
        assert response.status_code == 200
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def token_stats() -> dict[str, Any]:
    return {}


@pytest.fixture
async def server(token_stats: dict[str, Any]) -> AsyncIterator[Server]:
    listener = HttpListener(Metrics(token_stats=lambda: token_stats), request_timeout=2.0)
    host, port = await listener.start("127.0.0.1", 0)
    try:
        yield Server(listener, host, port)
    finally:
        await listener.close()


async def test_logins_move_the_counters_and_the_histogram(server: Server) -> None:
    metrics = server.listener.metrics
    before = await server.samples()
    metrics.login("caching_sha2_password", "success", "ok", 0.0012)
    metrics.login("caching_sha2_password", "success", "ok", 0.0030)
    metrics.login("authentication_openid_connect_client", "failure", "expired", 0.004)
    metrics.login("authentication_openid_connect_client", "failure", "bad_signature", 7.5)
    metrics.login("x-evil\nplugin", "failure", "unknown_user", 0.001)  # a client names its plugin itself
    metrics.login("", "failure", "malformed", 0.0001)
    after = await server.samples()

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    sha2 = {"method": "caching_sha2_password"}
    oidc = {"method": "authentication_openid_connect_client"}
    assert moved("fe_logins_total", **sha2, outcome="success", reason="ok") == 2
    assert moved("fe_logins_total", **oidc, outcome="failure", reason="expired") == 1
    assert moved("fe_logins_total", **oidc, outcome="failure", reason="bad_signature") == 1
    assert moved("fe_logins_total", method="other", outcome="failure", reason="unknown_user") == 1
    assert moved("fe_logins_total", method="none", outcome="failure", reason="malformed") == 1
    assert moved("fe_login_duration_seconds_count", **sha2, outcome="success") == 2
    assert moved("fe_login_duration_seconds_sum", **sha2, outcome="success") == pytest.approx(0.0042)
    assert moved("fe_login_duration_seconds_bucket", **sha2, outcome="success", le="0.001") == 0
    assert moved("fe_login_duration_seconds_bucket", **sha2, outcome="success", le="0.0025") == 1
    assert moved("fe_login_duration_seconds_bucket", **sha2, outcome="success", le="0.005") == 2
    assert moved("fe_login_duration_seconds_bucket", **oidc, outcome="failure", le="5.0") == 1
    assert moved("fe_login_duration_seconds_bucket", **oidc, outcome="failure", le="+Inf") == 2
    buckets = {dict(labels)["le"] for name, labels in after if name == "fe_login_duration_seconds_bucket"}
    assert buckets == {str(float(bound)) for bound in LOGIN_SECONDS_BUCKETS} | {"+Inf"}
    assert not any(name.endswith("_created") for name, _ in after)
    assert value(after, "process_resident_memory_bytes") > 0  # single-process mode: this process's own


async def test_connections(server: Server) -> None:
    metrics = server.listener.metrics
    metrics.connection_counts = lambda: (3, 2)  # the listener's counts: 3 accepted, 2 open now
    metrics.connection_refused("too_many_connections")
    metrics.connection_refused("proxy_protocol")
    metrics.connection_refused("proxy_protocol")
    metrics.catalog_notification()
    samples = await server.samples()
    assert value(samples, "fe_connections_accepted_total") == 3
    assert value(samples, "fe_connections_open") == 2
    assert value(samples, "fe_connections_refused_total", reason="too_many_connections") == 1
    assert value(samples, "fe_connections_refused_total", reason="proxy_protocol") == 2
    assert value(samples, "fe_catalog_notifications_total") == 1


async def test_the_upstream_pool_only_with_a_gateway(server: Server) -> None:
    samples = await server.samples()
    assert not any(name.startswith("fe_upstream") for name, _ in samples)
    counts = [5, 2, 3, 7, 11]  # open, idle, leased, opened since start, reused since start
    server.listener.metrics.watch_upstream_pool(lambda: (counts[0], counts[1], counts[2], counts[3], counts[4]))
    samples = await server.samples()
    assert value(samples, "fe_upstream_connections", state="idle") == 2
    assert value(samples, "fe_upstream_connections", state="leased") == 3
    assert ("fe_upstream_connections", frozenset({("state", "opening")})) in samples
    assert value(samples, "fe_upstream_connections", state="opening") == 0
    assert value(samples, "fe_upstream_connections_opened_total") == 7
    assert value(samples, "fe_upstream_connections_reused_total") == 11
    counts[:] = [6, 0, 5, 9, 15]  # one being opened
    samples = await server.samples()
    assert value(samples, "fe_upstream_connections", state="opening") == 1
    assert value(samples, "fe_upstream_connections_opened_total") == 9
    assert value(samples, "fe_upstream_connections_reused_total") == 15


async def test_token_verifier_counters_are_synced_at_scrape(server: Server, token_stats: dict[str, Any]) -> None:
    token_stats.update(
        token_cache_hits=4,
        token_cache_size=7,
        jwks_fetches={"https://a/jwks": 2, "https://b/jwks?secret=1": 1},
        jwks_fetch_failures={"https://b/jwks?secret=1": 1},
        jwks_key_age_seconds={"https://a/jwks": 12.5, "https://b/jwks?secret=1": 300.0},
    )
    response = await server.get("/metrics")
    assert "secret" not in response.text and "https://" not in response.text  # no URL labels
    samples = await server.samples()
    assert value(samples, "fe_token_cache_hits_total") == 4
    assert value(samples, "fe_token_cache_entries") == 7
    assert value(samples, "fe_jwks_fetches_total") == 3
    assert value(samples, "fe_jwks_fetch_failures_total") == 1
    assert value(samples, "fe_jwks_oldest_key_set_age_seconds") == 300.0
    # Counters move by what grew; a total that shrank (a key set evicted) is not taken back.
    token_stats.update(token_cache_hits=6, jwks_fetches={"https://a/jwks": 3}, jwks_key_age_seconds={})
    samples = await server.samples()
    assert value(samples, "fe_token_cache_hits_total") == 6
    assert value(samples, "fe_jwks_fetches_total") == 3
    assert value(samples, "fe_jwks_oldest_key_set_age_seconds") == 0
    token_stats.update(jwks_fetches={"https://a/jwks": 5})
    assert value(await server.samples(), "fe_jwks_fetches_total") == 5


async def test_content_type_and_openmetrics_negotiation(server: Server) -> None:
    server.listener.metrics.login("mysql_native_password", "success", "ok", 0.001)
    text = await server.get("/metrics")
    assert text.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert text.headers["connection"] == "close"
    om = await server.get("/metrics", accept="application/openmetrics-text; version=1.0.0,text/plain;q=0.5")
    assert om.headers["content-type"].startswith("application/openmetrics-text;")
    families = {family.name: family for family in openmetrics_families(om.text)}
    assert families["fe_logins"].samples[0].value == 1


async def test_health_and_readiness() -> None:
    state = Readiness(True)

    async def check() -> Readiness:
        return state

    listener = HttpListener(Metrics(), check)
    host, port = await listener.start("127.0.0.1", 0)
    server = Server(listener, host, port)
    try:
        health, ready = await server.get("/healthz"), await server.get("/readyz")
        assert (health.status_code, health.text) == (200, "ok\n")
        assert (ready.status_code, ready.text) == (200, "ready\n")
        state = Readiness(False, "the catalog does not answer")
        ready = await server.get("/readyz")
        assert (ready.status_code, ready.text) == (503, "not ready: the catalog does not answer\n")
        assert (await server.get("/healthz")).status_code == 200
        state = Readiness(True)
        listener.draining = True
        assert (await server.get("/healthz")).status_code == 503
        assert (await server.get("/readyz")).text == "not ready: shutting down\n"
    finally:
        await listener.close()


async def test_readiness_check_failures_are_503() -> None:
    async def slow() -> Readiness:
        await asyncio.sleep(30)
        return Readiness(True)

    async def broken() -> Readiness:
        raise RuntimeError("bug")

    for check, reason in ((slow, "readiness check timed out"), (broken, "readiness check failed")):
        listener = HttpListener(Metrics(), check, readiness_timeout=0.2)
        host, port = await listener.start("127.0.0.1", 0)
        try:
            response = await Server(listener, host, port).get("/readyz")
            assert (response.status_code, response.text) == (503, f"not ready: {reason}\n")
        finally:
            await listener.close()


async def test_readiness_from_catalog_and_key_sets() -> None:
    catalog_up = True
    ages: list[float] = [10.0, 200.0]

    async def ping() -> None:
        if not catalog_up:
            raise ConnectionError("down")

    check = readiness_check(ping, lambda: ages, max_stale_seconds=300.0)
    assert await check() == Readiness(True)
    ages.append(301.0)
    assert await check() == Readiness(False, "1 key set(s) older than jwks_max_stale_seconds")
    catalog_up = False
    assert await check() == Readiness(False, "the catalog does not answer")


async def test_not_found_and_methods(server: Server) -> None:
    assert (await server.get("/")).status_code == 404
    assert (await server.get("/metrics/extra")).status_code == 404
    assert (await server.get("/healthz?verbose=1")).status_code == 200
    async with httpx.AsyncClient() as client:
        for method in ("POST", "PUT", "DELETE", "HEAD", "OPTIONS"):
            response = await client.request(method, server.url + "/metrics")
            assert response.status_code == 405, method
            assert response.headers["allow"] == "GET"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"garbage\r\n\r\n",
        b"GET /metrics\r\n\r\n",
        b"GET metrics HTTP/1.1\r\n\r\n",
        b"GET /metrics HTTP/2.0\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\n folded: header\r\n\r\n",
        b"GET /me trics HTTP/1.1\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        b"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
        b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n",
        b"\xff\xfe\r\n\r\n",
    ],
)
async def test_malformed_requests_get_400(server: Server, request_bytes: bytes) -> None:
    reply = await server.raw(request_bytes)
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n"), reply[:80]
    assert (await server.get("/healthz")).status_code == 200


async def test_half_requests_and_silence(server: Server) -> None:
    assert (await server.raw(b"GET /metr", close_write=True)).startswith(b"HTTP/1.1 400")
    assert (await server.raw(b"", close_write=True)).startswith(b"HTTP/1.1 400")
    started = asyncio.get_running_loop().time()
    assert (await server.raw(b"GET /metrics HTTP/1.1\r\n")).startswith(b"HTTP/1.1 408 Request Timeout")
    assert asyncio.get_running_loop().time() - started < 5
    assert (await server.get("/healthz")).status_code == 200


async def test_connections_beyond_the_cap_are_dropped() -> None:
    listener = HttpListener(Metrics(), max_connections=2, request_timeout=5.0)
    host, port = await listener.start("127.0.0.1", 0)
    idle = [await asyncio.open_connection(host, port) for _ in range(2)]
    try:
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection(host, port)
        reply = await asyncio.wait_for(reader.read(), 5)
        assert reply.startswith(b"HTTP/1.1 503 Service Unavailable\r\n") and reply.endswith(b"too many connections\n")
        writer.close()
        for _, idle_writer in idle:
            idle_writer.close()
        await asyncio.sleep(0.1)
        assert (await Server(listener, host, port).get("/healthz")).status_code == 200
    finally:
        await listener.close()


def test_plain_login_metrics_expose_exactly_what_prometheus_clients_counter_and_histogram_do() -> None:
    """PlainLogins (a process that exposes its own metrics) against PrometheusLogins (prometheus_client's Counter
    and Histogram, as multiprocess mode keeps them): the same text and OpenMetrics exposition, byte for byte, before
    any login and after logins in every bucket, on bucket bounds, and past the last bound."""
    from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest
    from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

    from fe.server.metrics import PlainLogins, PrometheusLogins

    disable_created_metrics()  # as Metrics does
    theirs, ours = CollectorRegistry(auto_describe=True), CollectorRegistry(auto_describe=True)
    reference = PrometheusLogins(LOGIN_SECONDS_BUCKETS, registry=theirs)
    plain = PlainLogins(LOGIN_SECONDS_BUCKETS)
    ours.register(plain)

    def same() -> None:
        assert generate_latest(ours) == generate_latest(theirs)
        assert generate_openmetrics(ours) == generate_openmetrics(theirs)

    same()
    durations = [0.0, 0.0001, *LOGIN_SECONDS_BUCKETS, 0.0007, 0.0031, 0.2, 4.99, 5.0000001, 60.0, 1e9]
    labels = [
        (("caching_sha2_password", "success", "ok"), ("caching_sha2_password", "success")),
        (("authentication_jwt", "failure", "expired"), ("authentication_jwt", "failure")),
        (("authentication_jwt", "failure", "bad_signature"), ("authentication_jwt", "failure")),
        (("none", "failure", "malformed"), ("none", "failure")),
    ]
    for i, seconds in enumerate(durations * 3):
        login_labels, duration_labels = labels[i % len(labels)]
        reference.login(login_labels, duration_labels, seconds)
        plain.login(login_labels, duration_labels, seconds)
        if i % 7 == 0:
            same()
    same()
