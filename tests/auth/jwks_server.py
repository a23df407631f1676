"""A real, small HTTP(S) server on 127.0.0.1 that serves JWKS documents and can misbehave on demand.

Runs on the test's own event loop (asyncio.start_server). `mode` picks the behaviour for every request:
  "ok"            200 with the document registered for the path (404 if none)
  "status"        `status` with a short body (e.g. 500)
  "redirect"      302 to `redirect_to`
  "garbage"       200 with a body that is not JSON
  "huge"          200 with `huge_bytes` of JSON-ish text and a Content-Length
  "huge_unsized"  the same without Content-Length (the body ends when the connection closes)
  "hang"          accept, then never answer
  "reset"         accept, then close at once
`path_modes` overrides `mode` for single paths (e.g. a discovery document that misbehaves while its JWKS does
not). `delay` sleeps before answering; `requests` counts requests per path, and `headers` keeps each request's
headers (names lower-cased), in order, e.g. to see a forward proxy's `Via`. `stop()` closes the listener so
connections are refused; `start()` listens again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import ssl
from collections import Counter
from pathlib import Path
from typing import Any


class JwksServer:
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.documents: dict[str, Any] = {}
        self.requests: Counter[str] = Counter()
        self.headers: list[dict[str, str]] = []
        self.mode = "ok"
        self.path_modes: dict[str, str] = {}
        self.status = 500
        self.delay = 0.0
        self.redirect_to = "http://127.0.0.1:1/elsewhere"
        self.huge_bytes = 10 * 1024 * 1024
        self.port = 0
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def scheme(self) -> str:
        return "https" if self._ssl else "http"

    def url(self, path: str = "/jwks") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def serve(self, path: str, document: Any) -> str:
        self.documents[path] = document
        return self.url(path)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in [*self._handlers]:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            path = request_line.split(" ")[1]
            self.requests[path] += 1
            fields = (line.partition(":") for line in header_lines if ":" in line)
            self.headers.append({name.strip().lower(): value.strip() for name, _, value in fields})
            if self.delay:
                await asyncio.sleep(self.delay)
            await self._respond(path, writer)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, IndexError, asyncio.CancelledError):
            pass  # a handler ends quietly, also when stop() cancels it
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _respond(self, path: str, writer: asyncio.StreamWriter) -> None:
        mode = self.path_modes.get(path, self.mode)
        if mode == "hang":
            await asyncio.sleep(3600)
        if mode == "reset":
            return
        if mode == "huge" or mode == "huge_unsized":
            length = f"Content-Length: {self.huge_bytes}\r\n" if mode == "huge" else ""
            writer.write(
                f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{length}Connection: close\r\n\r\n".encode()
            )
            chunk = b" " * 65536
            for _ in range(self.huge_bytes // len(chunk)):
                writer.write(chunk)
                await writer.drain()
            return
        if mode == "status":
            self._write(writer, self.status, b'{"error": "server error"}')
        elif mode == "redirect":
            self._write(writer, 302, b"", extra=f"Location: {self.redirect_to}\r\n")
        elif mode == "garbage":
            self._write(writer, 200, b"<html>not json</html>")
        elif path in self.documents:
            document = self.documents[path]
            body = document if isinstance(document, bytes) else json.dumps(document).encode()
            self._write(writer, 200, body)
        else:
            self._write(writer, 404, b"not found")
        await writer.drain()

    @staticmethod
    def _write(writer: asyncio.StreamWriter, status: int, body: bytes, extra: str = "") -> None:
        head = (
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"{extra}Connection: close\r\n\r\n"
        )
        writer.write(head.encode() + body)


def make_tls_material(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A CA and a server certificate for 127.0.0.1, made with cryptography; returns (server context, CA file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fe test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_file = directory / "test-ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context, ca_file
