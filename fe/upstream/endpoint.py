"""Where the upstream is, how to reach it, and the accounts fe logs in to it with."""

from __future__ import annotations

from dataclasses import dataclass, field

from fe.upstream.tls import TlsOptions

# How much is read from the socket at once; also the stream's buffer limit (it stops reading the socket at twice
# this), so a connection holds at most a few hundred KiB however large a response is.
READ_SIZE = 128 * 1024


@dataclass(frozen=True, slots=True)
class UpstreamServer:
    """Where the upstream is and how to talk to it: `host` and `port` over TCP, or `socket_path`, the database's
    Unix socket on this host (TLS does not apply there: the connection never leaves the host, and MySQL and
    MariaDB count a Unix socket as a secure transport)."""

    host: str
    port: int = 3306
    tls: TlsOptions = field(default_factory=TlsOptions)
    connect_timeout: float = 10.0  # TCP connect, TLS and the login together
    command_timeout: float = 30.0  # COM_CHANGE_USER, COM_RESET_CONNECTION, COM_PING
    read_timeout: float | None = None  # relay: the longest silence within a response (None: as long as it takes)
    server_public_key: bytes | None = None  # caching_sha2_password's RSA key (PEM), pinned; else the server's
    socket_path: str = ""  # a Unix socket instead of host and port

    @property
    def address(self) -> str:
        if self.socket_path:
            return self.socket_path
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class UpstreamAccount:
    user: str
    password: str = field(default="", repr=False)
