"""The operators' HTTP listener: /metrics for Prometheus, /healthz and /readyz for a load balancer's checks.

HTTP/1.1 over asyncio streams, no framework: one GET per connection (`Connection: close`), the request bounded in
bytes and time, at most `max_connections` at once. With `--workers N` every worker listens on the same port
(SO_REUSEPORT, as for MySQL): /metrics reads the shared multiprocess directory, so whichever worker answers
reports all of them, and /readyz answers for the worker that took the check, the one that would take a login.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final

from fe.server.metrics import Metrics

log = logging.getLogger("fe.http")

MAX_REQUEST_BYTES: Final = 8192
REQUEST_TIMEOUT_SECONDS: Final = 5.0
READINESS_TIMEOUT_SECONDS: Final = 2.0
MAX_CONNECTIONS: Final = 32

_REQUEST_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+) (/[!-~]*) HTTP/1\.[01]")
_HEADER = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([\x20-\x7e\x80-\xff\t]*?)[ \t]*")
_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str = ""  # why not: short, for the load balancer's log; never secrets


READY: Final = Readiness(True)
ReadinessCheck = Callable[[], Awaitable[Readiness]]


def readiness_check(
    catalog_ping: Callable[[], Awaitable[object]],
    key_set_ages: Callable[[], Iterable[float]],
    max_stale_seconds: float,
) -> ReadinessCheck:
    """Ready when `catalog_ping()` returns (it raises when the catalog does not answer) and no key set's age
    (seconds since its last successful fetch) is past `max_stale_seconds`."""

    async def check() -> Readiness:
        try:
            await catalog_ping()
        except Exception as exc:
            log.warning("readiness: the catalog does not answer: %s", type(exc).__name__)
            return Readiness(False, "the catalog does not answer")
        stale = sum(1 for age in key_set_ages() if age > max_stale_seconds)
        if stale:
            return Readiness(False, f"{stale} key set(s) older than jwks_max_stale_seconds")
        return READY

    return check


class _BadRequest(Exception):
    pass


@dataclass(frozen=True)
class _Request:
    method: bytes
    path: str
    accept: str


class HttpListener:
    def __init__(
        self,
        metrics: Metrics,
        readiness: ReadinessCheck | None = None,
        *,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        request_timeout: float = REQUEST_TIMEOUT_SECONDS,
        readiness_timeout: float = READINESS_TIMEOUT_SECONDS,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        """`readiness` decides /readyz (always ready without one)."""
        self.metrics = metrics
        self.readiness = readiness
        self.max_request_bytes = max_request_bytes
        self.request_timeout = request_timeout
        self.readiness_timeout = readiness_timeout
        self.max_connections = max_connections
        # Set when the server begins to shut down: both checks then fail, so a balancer stops sending logins.
        self.draining = False
        self._server: asyncio.Server | None = None
        self._handlers: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> tuple[str, int]:
        """Listen; returns the address bound (port 0 picks a free one)."""
        self._server = await asyncio.start_server(
            self._serve, host, port, reuse_port=reuse_port, limit=self.max_request_bytes, backlog=64
        )
        bound = self._server.sockets[0].getsockname()
        return str(bound[0]), int(bound[1])

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._handlers.values()):
            writer.transport.abort()  # a handler waiting for its request ends at once
        if self._handlers:
            _, pending = await asyncio.wait(set(self._handlers), timeout=1.0)
            for task in pending:
                task.cancel()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._handlers) >= self.max_connections or task is None:
            writer.write(_response(*_text(503, "too many connections")))
            writer.close()
            return
        self._handlers[task] = writer
        try:
            writer.write(_response(*await self._answer(reader)))
            async with asyncio.timeout(self.request_timeout):
                await writer.drain()
            writer.close()
        except (TimeoutError, ConnectionError):
            writer.transport.abort()
        except asyncio.CancelledError:
            # Not raised on: Python 3.11's start_server logs a cancelled handler task as an error.
            writer.transport.abort()
        except Exception:
            log.exception("HTTP request failed")
            writer.transport.abort()
        finally:
            del self._handlers[task]

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, bytes, list[tuple[str, str]]]:
        try:
            async with asyncio.timeout(self.request_timeout):
                request = await self._read_request(reader)
        except TimeoutError:
            return _text(408, "request timeout")
        except _BadRequest as exc:
            return _text(400, str(exc))
        if request.method != b"GET":
            status, body, headers = _text(405, "only GET")
            return status, body, [*headers, ("Allow", "GET")]
        if request.path == "/metrics":
            try:
                body, content_type = await self.metrics.exposition(request.accept)
            except Exception:
                log.exception("cannot encode the metrics")
                return _text(500, "cannot encode the metrics")
            return 200, body, [("Content-Type", content_type), ("Cache-Control", "no-store")]
        if request.path == "/healthz":
            return _text(503, "shutting down") if self.draining else _text(200, "ok")
        if request.path == "/readyz":
            readiness = await self._check_readiness()
            return _text(200, "ready") if readiness.ready else _text(503, f"not ready: {readiness.reason}")
        return _text(404, "not found")

    async def _read_request(self, reader: asyncio.StreamReader) -> _Request:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise _BadRequest(f"request head over {self.max_request_bytes} bytes") from None
        except asyncio.IncompleteReadError:
            raise _BadRequest("incomplete request") from None
        lines = head[:-4].split(b"\r\n")
        line = _REQUEST_LINE.fullmatch(lines[0])
        if line is None:
            raise _BadRequest("malformed request line")
        fields: dict[bytes, bytes] = {}
        for raw in lines[1:]:
            header = _HEADER.fullmatch(raw)
            if header is None:
                raise _BadRequest("malformed header line")
            fields[header.group(1).lower()] = header.group(2)
        if fields.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in fields:
            raise _BadRequest("a request body is not accepted")
        path = line.group(2).split(b"?", 1)[0].decode("ascii")
        return _Request(line.group(1), path, fields.get(b"accept", b"").decode("latin-1"))

    async def _check_readiness(self) -> Readiness:
        if self.draining:
            return Readiness(False, "shutting down")
        if self.readiness is None:
            return READY
        try:
            async with asyncio.timeout(self.readiness_timeout):
                return await self.readiness()
        except TimeoutError:
            return Readiness(False, "readiness check timed out")
        except Exception:
            log.exception("readiness check failed")
            return Readiness(False, "readiness check failed")


def _response(status: int, body: bytes, headers: list[tuple[str, str]]) -> bytes:
    head = [f"HTTP/1.1 {status} {_REASONS[status]}", f"Content-Length: {len(body)}", "Connection: close"]
    head += [f"{name}: {value}" for name, value in headers]
    return "\r\n".join(head).encode("latin-1") + b"\r\n\r\n" + body


def _text(status: int, text: str) -> tuple[int, bytes, list[tuple[str, str]]]:
    return status, (text + "\n").encode("utf-8"), [("Content-Type", "text/plain; charset=utf-8")]
