"""One server process: open the catalog and TLS material, listen, serve until SIGTERM/SIGINT, shut down cleanly."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import sys
import time
from collections.abc import Callable

from fe import __version__
from fe.auth.verifier import KeyFetchOptions, TokenVerifier
from fe.catalog import CatalogError
from fe.catalog.backends import CatalogBackend, open_catalog_from_settings
from fe.catalog.backends import ping as ping_catalog
from fe.config import ConfigError, Settings
from fe.server.context import ServerContext
from fe.server.domains import DomainResolver
from fe.server.eventloop import running_loop_name
from fe.server.gateway import make_gateway
from fe.server.http import HttpListener, readiness_check
from fe.server.listener import Listener, make_listening_socket
from fe.server.login_services import make_authenticator
from fe.server.metrics import Metrics
from fe.server.proxy_protocol import ProxyPolicy
from fe.server.stats import ServerStats
from fe.server.tls import prepare_tls
from fe.sql.executor import Executor
from fe.sql.variables import SERVER_VERSION

log = logging.getLogger("fe.server")

CATALOG_FILE = "catalog.db"
_ORPHAN_CHECK_SECONDS = 0.5


class StartupError(Exception):
    """The server cannot start; the message tells the operator why and what to do."""


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def open_catalog(settings: Settings, on_notification: Callable[[], None] | None = None) -> CatalogBackend:
    """The catalog the settings name: the SQLite file in meta/ (the default), or a shared PostgreSQL one."""
    settings.meta_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # private: tls.make_private_dir
    try:
        return open_catalog_from_settings(settings, on_notification=on_notification)
    except CatalogError as exc:
        raise StartupError(f"cannot open the user catalog: {exc}") from exc


def prepare_home(settings: Settings) -> None:
    """First-start work shared by all workers: the catalog with root, and the TLS material."""
    open_catalog(settings).close()
    prepare_tls(settings)


def check_root_exposure(settings: Settings, catalog: CatalogBackend) -> None:
    root = catalog.get_account("root", "%")
    if root is not None and root.auth_string == "" and not is_loopback(settings.host):
        raise StartupError(
            f"refusing to listen on {settings.host}: root has an empty password. Set one first "
            "(ALTER USER root IDENTIFIED BY '...', or FE_ROOT_PASSWORD on first start), or listen on 127.0.0.1"
        )


def make_token_verifier(settings: Settings) -> TokenVerifier:
    key_fetch = KeyFetchOptions(
        refresh_seconds=settings.jwks_refresh_seconds,
        max_stale_seconds=settings.jwks_max_stale_seconds,
        unknown_kid_cooldown_seconds=settings.jwks_unknown_kid_cooldown_seconds,
        fetch_timeout_seconds=settings.jwks_fetch_timeout_seconds,
        max_response_bytes=settings.jwks_max_response_bytes,
        max_keys=settings.jwks_max_keys,
        ca_bundle=settings.resolve(settings.jwks_ca_bundle) if settings.jwks_ca_bundle else None,
        http_proxy=settings.jwks_http_proxy,
        https_proxy=settings.jwks_https_proxy,
        no_proxy=settings.jwks_no_proxy,
        discovery_allow_http=settings.discovery_allow_http,
    )
    return TokenVerifier(
        settings.conf_dir,
        key_fetch=key_fetch,
        leeway_seconds=settings.jwt_leeway_seconds,
        max_token_bytes=settings.max_token_bytes,
        cache_entries=settings.verified_token_cache_size,
        cache_bytes=settings.verified_token_cache_bytes,
    )


async def serve(
    settings: Settings,
    *,
    worker_index: int = 0,
    worker_count: int = 1,
    on_ready: Callable[[str, int], None] | None = None,
    parent_pid: int | None = None,
) -> None:
    metrics = Metrics(token_stats=lambda: verifier.stats)
    catalog = open_catalog(settings, on_notification=metrics.catalog_notification)
    try:
        check_root_exposure(settings, catalog)
        tls = prepare_tls(settings)
        verifier = make_token_verifier(settings)
        domains = DomainResolver(catalog, settings.domain_refresh_seconds)
        catalog.set_domain_resolver(domains.addresses, lambda: domains.version)
        stats = ServerStats(token_stats=lambda: verifier.stats)
        try:
            gateway = make_gateway(settings)
        except ConfigError as exc:
            raise StartupError(str(exc)) from exc
        if gateway is not None:
            await gateway.learn_greeting()  # the upstream's version and flags for fe's greeting
            gateway.start()  # (if it was down: learnt in the background; logins fail until it is up)
        context = ServerContext(
            settings=settings,
            server_version=SERVER_VERSION,
            tls=tls,
            authenticator=make_authenticator(catalog, verifier, tls, settings, domains),
            executor=Executor(catalog, settings, status=stats.snapshot),
            stats=stats,
            metrics=metrics,
            proxy_policy=ProxyPolicy.parse(settings.proxy_protocol_from),
            gateway=gateway,
        )
        try:
            sock = make_listening_socket(settings.host, settings.query_port, reuse_port=worker_count > 1)
        except OSError as exc:
            raise StartupError(f"cannot listen on {settings.host}:{settings.query_port}: {exc}") from exc
        listener = Listener(context, worker_index, worker_count)
        metrics.connection_counts = lambda: (stats.connections, listener.connection_count)
        if gateway is not None:
            metrics.watch_upstream_pool(gateway.pool_counts)
        await listener.start(sock)
        host, port = sock.getsockname()[:2]
        http = await _start_http(settings, metrics, catalog, verifier, reuse_port=worker_count > 1)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        log.info(
            "fe %s ready: accepting MySQL connections on %s:%d (TLS available, cert %s; event loop %s)",
            __version__, host, port, tls.cert_path, running_loop_name(),
        )  # fmt: skip
        if on_ready is not None:
            on_ready(host, port)
        background = [asyncio.create_task(domains.refresh_forever()), asyncio.create_task(metrics.sync_forever())]
        if parent_pid:
            background.append(asyncio.create_task(_stop_when_orphaned(parent_pid, stop)))
        await stop.wait()
        for task in background:
            task.cancel()
        log.info("shutting down: closing %d connection(s)", listener.connection_count)
        if http is not None:
            http.draining = True  # health checks fail first, so the balancer stops sending logins here
        await listener.shutdown(settings.shutdown_grace_seconds)
        if http is not None:
            await http.close()
        if gateway is not None:
            await gateway.close()
        await verifier.aclose()
    finally:
        catalog.close()
    log.info("stopped")


async def _start_http(
    settings: Settings, metrics: Metrics, catalog: CatalogBackend, verifier: TokenVerifier, *, reuse_port: bool
) -> HttpListener | None:
    """/metrics, /healthz and /readyz for Prometheus and the load balancer's health check (http_port >= 0)."""
    if settings.http_port < 0:
        return None

    async def catalog_ping() -> object:
        return await asyncio.to_thread(ping_catalog, catalog)

    readiness = readiness_check(
        catalog_ping, lambda: verifier.key_store.remote.key_ages().values(), settings.jwks_max_stale_seconds
    )
    http = HttpListener(metrics, readiness)
    try:
        host, port = await http.start(settings.http_host, settings.http_port, reuse_port=reuse_port)
    except OSError as exc:
        raise StartupError(f"cannot listen for HTTP on {settings.http_host}:{settings.http_port}: {exc}") from exc
    log.info("HTTP listener on %s:%d: /metrics, /healthz, /readyz", host, port)
    return http


async def _stop_when_orphaned(parent_pid: int, stop: asyncio.Event) -> None:
    """A worker whose supervisor died (even by SIGKILL) stops too, instead of serving the port unsupervised."""
    while os.getppid() == parent_pid:
        await asyncio.sleep(_ORPHAN_CHECK_SECONDS)
    log.warning("the supervisor (pid %d) is gone: stopping this worker", parent_pid)
    stop.set()


class _LogFormatter(logging.Formatter):
    """The standard format, with the date and time text made once a second: every login writes a line."""

    _second = -1
    _second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        """Formatter.format for a record without an exception or a stack, in one step: fe's format always shows the
        time, and has no defaults to merge (Formatter would ask usesTime() twice, then go through formatMessage and
        its style's format and _format)."""
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        fmt = self._fmt
        assert fmt is not None  # Formatter's own default when none is given
        return fmt % record.__dict__

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(record.created))
            self._second = second
        return f"{self._second_text},{int(record.msecs):03d}"


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LogFormatter("%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])
    # The logging HOWTO's optimizations for what fe's lines never show: the caller's file and line, thread names.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logMultiprocessing = False
    # httpx logs every request at INFO; key fetches are logged by fe.auth with what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
