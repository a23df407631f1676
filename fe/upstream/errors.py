"""What can go wrong on the upstream leg: the upstream's own ERR packets, and failures of the connection itself."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from enum import StrEnum

from fe.mysql.codec import Cursor, MalformedPacket


class Reason(StrEnum):
    """Why an upstream operation failed, in words fit for a log line's `reason=`."""

    DOWN = "upstream_down"  # no TCP connection (refused, unreachable, name not resolved)
    TIMEOUT = "upstream_timeout"  # connect, login or a command took longer than allowed
    REFUSED = "upstream_refused"  # the upstream answered the greeting or the login with ERR
    CLOSED = "upstream_closed"  # the upstream closed the connection (mid-result or between commands)
    ERROR = "upstream_error"  # a command fe itself sent (ping, reset) got an ERR
    PROTOCOL = "upstream_protocol"  # the upstream sent something fe does not understand or support
    TLS = "upstream_tls"  # TLS was required but not offered, or the certificate did not verify
    INSECURE = "upstream_insecure"  # the password would have left in cleartext
    POOL_EXHAUSTED = "upstream_pool_exhausted"  # no connection became free in time


@dataclass(frozen=True, slots=True)
class ServerError:
    """An ERR packet from the upstream."""

    code: int
    sqlstate: str
    message: str

    def __str__(self) -> str:
        return f"ERROR {self.code} ({self.sqlstate}): {self.message}"


def parse_err(payload: bytes) -> ServerError:
    """An ERR payload (`FF` code [`#` SQLSTATE] message); the SQLSTATE is absent before the handshake."""
    cur = Cursor(payload)
    if cur.int1() != 0xFF:
        raise MalformedPacket("not an ERR packet")
    code = cur.int2()
    state = "HY000"
    if cur.remaining >= 6 and cur.data[cur.pos] == 0x23:  # '#'
        cur.take(1)
        state = cur.take(5).decode("ascii", "replace")
    return ServerError(code, state, cur.rest().decode("utf-8", "replace"))


class UpstreamError(Exception):
    """The upstream leg failed. `reason` says how; `server_error` is the upstream's ERR when it sent one."""

    def __init__(self, reason: Reason, message: str, server_error: ServerError | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.server_error = server_error


class UpstreamProtocolError(ValueError):
    """The upstream's bytes do not follow the protocol (raised by the sans-IO layer; the connection is unusable)."""


def translate(exc: BaseException, where: str, when: str = "") -> BaseException:
    """The UpstreamError for a low-level failure while talking to `where` ("upstream host:port"); anything that is
    not a connection failure (cancellation, a bug) comes back unchanged, to be raised as it is."""
    if isinstance(exc, UpstreamError | asyncio.CancelledError):
        return exc
    if isinstance(exc, TimeoutError):
        return UpstreamError(Reason.TIMEOUT, f"{where} did not answer in time")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return UpstreamError(Reason.TLS, f"{where}: TLS certificate did not verify: {exc.verify_message}")
    if isinstance(exc, ssl.SSLError):
        return UpstreamError(Reason.TLS, f"{where}: TLS failed: {exc.reason or exc}")
    if isinstance(exc, UpstreamProtocolError):
        return UpstreamError(Reason.PROTOCOL, f"{where} broke the protocol: {exc}")
    if isinstance(exc, ConnectionError | asyncio.IncompleteReadError | EOFError):
        return UpstreamError(Reason.CLOSED, f"{where} closed the connection{' ' + when if when else ''}")
    if isinstance(exc, OSError):
        return UpstreamError(Reason.CLOSED, f"{where}: {exc.strerror or exc}")
    return exc
