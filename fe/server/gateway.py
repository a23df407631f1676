"""The gateway: with `upstream = host:port` (or a Unix socket's path), each logged-in session reaches a real
database (fe/upstream) as an upstream account chosen by its roles, carrying the person's identity in its
connection attributes.

Upstream passwords never come from fe.conf or the catalog: the default account's from FE_UPSTREAM_PASSWORD or the
file `upstream_password_file`; a mapped account `reader`'s from FE_UPSTREAM_PASSWORD_READER or the file
`<upstream_password_dir>/reader`. They are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fe.config import ConfigError, Settings
from fe.mysql.constants import SERVER_CAPABILITIES, Capability
from fe.upstream.capabilities import relayable
from fe.upstream.connect import open_stream
from fe.upstream.connection import UpstreamConnection
from fe.upstream.endpoint import UpstreamAccount, UpstreamServer
from fe.upstream.errors import UpstreamError
from fe.upstream.login import read_greeting
from fe.upstream.pool import UpstreamPool
from fe.upstream.protocol import ClientProtocol
from fe.upstream.stream import UpstreamStream
from fe.upstream.tls import TlsMode, TlsOptions

log = logging.getLogger("fe.gateway")

# What fe's own login needs from the client, whatever the upstream.
_LOGIN_FLAGS = (
    Capability.PROTOCOL_41
    | Capability.SECURE_CONNECTION
    | Capability.PLUGIN_AUTH
    | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
    | Capability.CONNECT_ATTRS
    | Capability.CONNECT_WITH_DB
)
# Relayed flags fe does not offer, because fe's own answers (its statements' OK packets and result sets) do not
# speak them: session-state tracking in OK packets, and query attributes before each COM_QUERY's text.
_NOT_OFFERED = Capability.SESSION_TRACK | Capability.QUERY_ATTRIBUTES
_PROBE_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class RoleMapping:
    role: str
    account: UpstreamAccount


class Gateway:
    def __init__(
        self,
        server: UpstreamServer,
        default_account: UpstreamAccount | None,
        mappings: tuple[RoleMapping, ...],
        pool: UpstreamPool,
    ) -> None:
        self.server = server
        self.default_account = default_account
        self.mappings = mappings
        self.pool = pool
        self.server_version = ""  # the upstream's, once its greeting was seen
        self.upstream_capabilities = 0
        self._probe: asyncio.Task[None] | None = None

    def pool_counts(self) -> tuple[int, int, int, int, int]:
        """For the metrics: connections open, idle, leased; opened and reused since start."""
        stats = self.pool.stats
        return stats.open, stats.idle, stats.leased, stats.created, stats.reused

    # ---- the greeting fe shows its clients ----

    def advertised_capabilities(self) -> int:
        """fe's login flags and TLS, plus the relayed flags the upstream offers (fe's own set until it is known)."""
        if not self.upstream_capabilities:
            return SERVER_CAPABILITIES | Capability.SSL
        return _LOGIN_FLAGS | Capability.SSL | (relayable(self.upstream_capabilities) & ~_NOT_OFFERED)

    async def learn_greeting(self) -> bool:
        """Connect once and read the upstream's greeting (its version and capabilities); True when seen."""
        stream: UpstreamStream | None = None
        try:
            async with asyncio.timeout(self.server.connect_timeout):
                stream = await open_stream(self.server)
                greeting = await read_greeting(stream, ClientProtocol(), f"upstream {self.server.address}")
        except (OSError, TimeoutError, UpstreamError) as exc:
            log.warning("upstream %s: cannot read its greeting yet: %s", self.server.address, exc)
            return False
        finally:
            if stream is not None:
                stream.close()
        self.server_version = greeting.server_version
        self.upstream_capabilities = greeting.capabilities
        transport = "its Unix socket, no TLS" if self.server.socket_path else f"TLS {self.server.tls.mode}"
        log.info("upstream %s: %s (%s)", self.server.address, greeting.server_version, transport)
        return True

    def start(self) -> None:
        """Keep trying to learn the greeting in the background until it is known (an upstream down at start)."""

        async def keep_trying() -> None:
            while not await self.learn_greeting():
                await asyncio.sleep(_PROBE_RETRY_SECONDS)

        if not self.upstream_capabilities:
            self._probe = asyncio.get_running_loop().create_task(keep_trying())

    # ---- sessions ----

    def account_for(self, roles: Iterable[str]) -> UpstreamAccount | None:
        """The first mapping (in the order `upstream_role_accounts` lists them) whose role the session holds; else
        the default account; None when there is neither."""
        held = set(roles)
        for mapping in self.mappings:
            if mapping.role in held:
                return mapping.account
        return self.default_account

    async def open(
        self,
        account: UpstreamAccount,
        attributes: Mapping[str, str],
        *,
        client_capabilities: int,
        database: str,
        charset: int,
    ) -> UpstreamConnection:
        return await self.pool.acquire(
            account, attributes, client_capabilities=client_capabilities, database=database, charset=charset
        )

    async def release(self, connection: UpstreamConnection, *, clean: bool) -> None:
        """Back to the pool (reset) after a session that ended between commands; else closed."""
        try:
            if clean:
                await self.pool.release(connection)
            else:
                await self.pool.discard(connection)
        except Exception as exc:  # a broken connection is dropped either way
            log.debug("upstream connection not returned to the pool: %s", exc)

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        await self.pool.close()


def session_attributes(
    *, user: str, client: str, roles: Iterable[str], claims: Mapping[str, object] | None, integration: str = ""
) -> dict[str, str]:
    """The connection attributes that tell the database who is behind the shared account."""
    attributes = {
        "program_name": "fe",
        "fe_user": user,
        "fe_client_address": client,
        "fe_roles": ",".join(sorted(roles)),
    }
    if integration:
        attributes["fe_integration"] = integration
    if claims:
        for claim in ("sub", "iss"):
            value = claims.get(claim)
            if isinstance(value, str):
                attributes[f"fe_token_{claim}"] = value
    return {key: value[:1024] for key, value in attributes.items()}


_MAX_SOCKET_PATH = 107  # sockaddr_un's sun_path on Linux, less its NUL


def make_gateway(settings: Settings, environ: Mapping[str, str] = os.environ) -> Gateway | None:
    """The gateway the settings describe, or None without `upstream`; ConfigError names what is wrong."""
    if not settings.upstream:
        return None
    socket_path = ""
    if settings.upstream.startswith("/"):
        socket_path = settings.upstream
        if len(os.fsencode(socket_path)) > _MAX_SOCKET_PATH:
            raise ConfigError(f"upstream: a Unix socket's path has at most {_MAX_SOCKET_PATH} bytes: {socket_path!r}")
        host, port = "localhost", 0
    else:
        host, port = _host_and_port(settings.upstream)
    try:
        mode = TlsMode(settings.upstream_tls)
    except ValueError:
        raise ConfigError(
            f"upstream_tls must be disabled, required, verify_ca or verify_identity, got {settings.upstream_tls!r}"
        ) from None
    ca_file = str(settings.resolve(settings.upstream_ca)) if settings.upstream_ca else None
    server = UpstreamServer(
        host,
        port,
        TlsOptions(mode, ca_file),
        connect_timeout=settings.upstream_connect_timeout_seconds,
        read_timeout=settings.upstream_read_timeout_seconds or None,
        socket_path=socket_path,
    )
    default = None
    if settings.upstream_user:
        default = UpstreamAccount(settings.upstream_user, _password(settings, environ, settings.upstream_user, True))
    mappings = tuple(
        RoleMapping(role, UpstreamAccount(user, _password(settings, environ, user, False)))
        for role, user in _parse_role_accounts(settings.upstream_role_accounts)
    )
    pool = UpstreamPool(server, max_size=settings.upstream_pool_size, idle_timeout=settings.upstream_pool_idle_seconds)
    return Gateway(server, default, mappings, pool)


def _host_and_port(text: str) -> tuple[str, int]:
    """`host:port` or `[IPv6]:port`; ConfigError otherwise."""
    host, _, port_text = text.rpartition(":")
    if host.startswith("[") or host.endswith("]"):
        host = host[1:-1] if host.startswith("[") and host.endswith("]") and ":" in host else ""
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"upstream must be host:port, [IPv6]:port or a Unix socket's absolute path, got {text!r}")
    return host, int(port_text)


def _parse_role_accounts(text: str) -> list[tuple[str, str]]:
    """`analysts:reader, engineers:writer` → [(role, upstream user), ...], in that order."""
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        role, sep, user = item.partition(":")
        if not sep or not role.strip() or not user.strip():
            raise ConfigError(f"upstream_role_accounts: {item!r} is not role:upstream_user")
        pairs.append((role.strip(), user.strip()))
    return pairs


def _password(settings: Settings, environ: Mapping[str, str], user: str, default: bool) -> str:
    variable = "FE_UPSTREAM_PASSWORD" if default else f"FE_UPSTREAM_PASSWORD_{user.upper()}"
    if variable in environ:
        return environ[variable]
    path: Path | None = None
    if default and settings.upstream_password_file:
        path = settings.resolve(settings.upstream_password_file)
    elif not default and settings.upstream_password_dir:
        path = settings.resolve(settings.upstream_password_dir) / user
    if path is None:
        return ""
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"cannot read the upstream password of {user!r} from {path}: {exc.strerror}") from None
