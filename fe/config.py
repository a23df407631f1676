"""One typed settings object, read from `<home>/conf/fe.conf`, then `FE_*` environment variables, then flags.

`fe.conf` uses StarRocks' `key = value` lines; `#` starts a comment. Every key is a field of `Settings`;
the environment variable for a key is `FE_` + the key upper-cased (e.g. `FE_QUERY_PORT`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from fe.auth.http_proxy import ProxySettings
from fe.server.proxy_protocol import parse_proxy_networks


class ConfigError(Exception):
    """A setting that cannot be read; the message names the key and the source."""


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=Path.cwd)
    host: str = "127.0.0.1"
    query_port: int = 9030
    workers: int = 1
    # auto (uvloop when it is installed, else asyncio), asyncio (the standard library's loop) or uvloop.
    event_loop: str = "auto"

    # TLS: generated under <home>/meta/tls unless both are set (paths relative to <home>).
    ssl_cert: str = ""
    ssl_key: str = ""
    require_secure_transport: bool = False

    # Limits and timeouts.
    max_connections: int = 4096
    # Sessions beyond max_connections that only root and user_admin members may take.
    admin_reserved_connections: int = 2
    # Connections that have not finished logging in: in all (at most max_connections), and per client address
    # (at most a quarter of that pool, but never under 32).
    max_unauthenticated_connections: int = 1024
    max_unauthenticated_per_address: int = 256
    max_preauth_packet_size: int = 32 * 1024
    max_packet_size: int = 64 * 1024 * 1024
    handshake_timeout_seconds: float = 10.0
    idle_timeout_seconds: float = 28800.0
    shutdown_grace_seconds: float = 5.0

    # Token verification.
    jwt_leeway_seconds: int = 60
    max_token_bytes: int = 16 * 1024
    verified_token_cache_size: int = 10000
    verified_token_cache_bytes: int = 64 * 1024 * 1024

    # JWKS fetching and caching.
    jwks_refresh_seconds: float = 300.0
    jwks_max_stale_seconds: float = 86400.0
    jwks_unknown_kid_cooldown_seconds: float = 30.0
    jwks_fetch_timeout_seconds: float = 5.0
    jwks_max_response_bytes: int = 1024 * 1024
    jwks_max_keys: int = 100
    jwks_ca_bundle: str = ""
    # Forward proxies for key fetches (http://host:port; empty: direct), and the hosts that go direct anyway
    # (comma-separated names, domain suffixes, addresses, CIDR networks). Never taken from HTTP(S)_PROXY.
    jwks_http_proxy: str = ""
    jwks_https_proxy: str = ""
    jwks_no_proxy: str = ""
    # Refuse http:// jwks_url at CREATE/ALTER USER (otherwise accepted with a warning).
    require_https_key_urls: bool = False
    # OpenID Connect Discovery (a token user or integration with required_issuer and no jwks_url) from http://
    # issuers and to http:// jwks_uri; off: https:// only. For tests and labs.
    discovery_allow_http: bool = False

    # Where logins of names that are no catalog account go: `native` and security integrations, in order. Used
    # while the catalog has none stored; ADMIN SET FRONTEND CONFIG ("authentication_chain" = ...) stores one.
    authentication_chain: str = "native"

    # Token users may send their token as the password (over TLS); a user's JSON can turn it off for that user.
    token_as_password: bool = True
    # What a refused client is told: generic (nothing until a credential verified) or full (every reason, for
    # development only: it tells strangers which accounts exist and how they log in).
    login_error_detail: str = "generic"
    # none: a session outlives its token, as in MySQL and the clouds; expire: a session whose token expired gets
    # an ERR at its next command and is closed (COM_CHANGE_USER with a fresh token renews it).
    token_session_policy: str = "none"

    # Load balancers whose connections open with a PROXY protocol header (v1 or v2) naming the real client:
    # comma-separated addresses or networks. From them a header is required; from anyone else it is refused.
    proxy_protocol_from: str = ""
    # The HTTP listener for /metrics, /healthz and /readyz: -1 off, 0 a free port.
    http_host: str = "127.0.0.1"
    http_port: int = -1

    # The gateway: with `upstream = host:port` (or the absolute path of the database's Unix socket) every session
    # is relayed to that database (empty: fe answers alone).
    upstream: str = ""
    # The upstream account sessions use by default; its password from FE_UPSTREAM_PASSWORD or this file (never
    # from this file's settings, never in the catalog).
    upstream_user: str = ""
    upstream_password_file: str = ""
    # fe roles → upstream accounts, first match wins in this order: "analysts:reader, engineers:writer"; a
    # mapped account's password from FE_UPSTREAM_PASSWORD_<USER> or <upstream_password_dir>/<user>.
    upstream_role_accounts: str = ""
    upstream_password_dir: str = ""
    # disabled | required | verify_ca | verify_identity (with upstream_ca, a PEM file; else the system's CAs).
    upstream_tls: str = "verify_identity"
    upstream_ca: str = ""
    upstream_pool_size: int = 64
    upstream_pool_idle_seconds: float = 60.0
    # The longest silence within one upstream response before the session is ended (0: as long as it takes, as
    # a long query may); and how long the upstream login may take.
    upstream_read_timeout_seconds: float = 0.0
    upstream_connect_timeout_seconds: float = 10.0

    # The catalog: empty (or sqlite) for the embedded SQLite file in meta/, or postgresql://user@host:port/db to share
    # one between fe nodes. Its password from FE_CATALOG_PASSWORD or this file, never in the URL in fe.conf.
    catalog: str = field(default="", repr=False)
    catalog_password_file: str = ""

    # Domain identities ('name'@['domain']): how often their domains are resolved again.
    domain_refresh_seconds: float = 60.0

    # First start only: root's password (empty by default).
    root_password: str = ""

    log_level: str = "INFO"

    @property
    def conf_dir(self) -> Path:
        return self.home / "conf"

    @property
    def meta_dir(self) -> Path:
        return self.home / "meta"

    def resolve(self, path: str) -> Path:
        """A configured path, relative to <home> unless absolute."""
        p = Path(path)
        return p if p.is_absolute() else self.home / p


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(key: str, raw: Any, kind: Any, source: str) -> Any:
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    try:
        if kind is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError("expected true or false")
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is Path:
            return Path(text)
        return text
    except ValueError as exc:
        raise ConfigError(f"{source}: bad value for {key}: {raw!r} ({exc})") from None


def parse_conf_text(text: str, source: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.split("#", 1)[0].strip()
        if not stripped:
            continue
        key, sep, value = stripped.partition("=")
        if not sep:
            raise ConfigError(f"{source}:{number}: expected 'key = value', got {line.strip()!r}")
        values[key.strip()] = value.strip().strip('"')
    return values


def load_settings(
    home: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """fe.conf, then FE_* environment variables, then `overrides` (the command line), later ones winning."""
    home = (home or Path.cwd()).resolve()
    environ = os.environ if environ is None else environ
    hints = get_type_hints(Settings)
    known = {f.name for f in fields(Settings)} - {"home"}
    values: dict[str, Any] = {}

    conf_file = home / "conf" / "fe.conf"
    if conf_file.exists():
        for key, raw in parse_conf_text(conf_file.read_text(encoding="utf-8"), str(conf_file)).items():
            if key == "upstream_password":
                raise ConfigError(
                    f"{conf_file}: an upstream password never goes in fe.conf: use FE_UPSTREAM_PASSWORD or "
                    "upstream_password_file"
                )
            if key not in known:
                raise ConfigError(f"{conf_file}: unknown setting {key!r}")
            values[key] = _convert(key, raw, hints[key], str(conf_file))
    for key in known:
        env_key = "FE_" + key.upper()
        if env_key in environ:
            values[key] = _convert(key, environ[env_key], hints[key], f"environment {env_key}")
    for key, raw in (overrides or {}).items():
        if raw is None:
            continue
        if key not in known:
            raise ConfigError(f"unknown setting {key!r}")
        values[key] = _convert(key, raw, hints[key], "command line")
    settings = Settings(home=home, **values)
    _check(settings)
    return settings


def _check(settings: Settings) -> None:
    if not 0 <= settings.query_port <= 65535:
        raise ConfigError(f"query_port must be 0..65535, got {settings.query_port}")
    if settings.workers < 1:
        raise ConfigError("workers must be at least 1")
    if settings.event_loop not in ("auto", "asyncio", "uvloop"):
        raise ConfigError(f"event_loop must be auto, asyncio or uvloop, got {settings.event_loop!r}")
    if bool(settings.ssl_cert) != bool(settings.ssl_key):
        raise ConfigError("ssl_cert and ssl_key must be set together")
    if settings.max_connections < 1 or settings.admin_reserved_connections < 0:
        raise ConfigError("max_connections must be at least 1 and admin_reserved_connections at least 0")
    if settings.max_unauthenticated_connections < 1 or settings.max_unauthenticated_per_address < 1:
        raise ConfigError("max_unauthenticated_connections and max_unauthenticated_per_address must be at least 1")
    if settings.max_preauth_packet_size < 1024 or settings.max_packet_size < settings.max_preauth_packet_size:
        raise ConfigError("packet size limits are too small")
    if settings.login_error_detail not in ("generic", "full"):
        raise ConfigError(f"login_error_detail must be generic or full, got {settings.login_error_detail!r}")
    if not -1 <= settings.http_port <= 65535:
        raise ConfigError(f"http_port must be -1 (off) or 0..65535, got {settings.http_port}")
    try:
        parse_proxy_networks(settings.proxy_protocol_from)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if settings.catalog not in ("", "sqlite") and not settings.catalog.startswith(("postgresql://", "postgres://")):
        raise ConfigError("catalog must be empty (the SQLite file in meta/), sqlite, or a postgresql:// URL")
    if settings.upstream_pool_size < 1 or settings.upstream_pool_idle_seconds < 0:
        raise ConfigError("upstream_pool_size must be at least 1 and upstream_pool_idle_seconds at least 0")
    if settings.token_session_policy not in ("none", "expire"):
        raise ConfigError(f"token_session_policy must be none or expire, got {settings.token_session_policy!r}")
    try:
        ProxySettings.parse(settings.jwks_http_proxy, settings.jwks_https_proxy, settings.jwks_no_proxy)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    from fe.catalog.security import chain_problem, parse_chain  # the rule ADMIN SET FRONTEND CONFIG applies

    problem = chain_problem(parse_chain(settings.authentication_chain))
    if problem is not None:
        raise ConfigError(problem)


def as_environment(settings: Settings) -> dict[str, str]:
    """Every setting as FE_* variables: how a supervisor hands its exact settings (flags included) to workers."""
    return {"FE_" + f.name.upper(): str(getattr(settings, f.name)) for f in fields(Settings) if f.name != "home"}
