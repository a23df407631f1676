"""What every connection of one server process shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fe.config import Settings
from fe.server.metrics import Metrics
from fe.server.proxy_protocol import ProxyPolicy
from fe.server.stats import ServerStats
from fe.server.tls import TlsMaterial

if TYPE_CHECKING:
    from fe.auth.login import Authenticator
    from fe.server.gateway import Gateway
    from fe.sql.executor import Executor


@dataclass
class ServerContext:
    settings: Settings
    server_version: str
    tls: TlsMaterial
    authenticator: Authenticator
    executor: Executor
    stats: ServerStats
    metrics: Metrics | None = None
    proxy_policy: ProxyPolicy = field(default_factory=ProxyPolicy)
    gateway: Gateway | None = None
