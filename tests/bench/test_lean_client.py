"""The benchmark's lean client against a real fe server (and MariaDB, when installed): it must log in the way real
clients do, or the benchmark measures something else."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from importlib.util import find_spec
from pathlib import Path

import mysql.connector
import pytest
from cryptography.hazmat.primitives import serialization

from fe.auth.devtools import mint_token
from fe.server.tls import write_self_signed_certificate
from scripts.bench import crypto_floor, mariadb
from scripts.bench import fe_server as bench_fe
from scripts.bench.loadgen import LoadGenerator, StormJob, new_event_loop
from scripts.bench.mysqlwire import (
    Connection,
    Credential,
    Password,
    ServerError,
    Token,
    WireError,
    client_tls_context,
    scramble_caching_sha2,
    scramble_native,
)


class BenchFe:
    def __init__(self, server: bench_fe.FeServer, key: bench_fe.SigningKey) -> None:
        self.server = server
        self.key = key

    def token(self, **overrides: object) -> str:
        private_key = serialization.load_pem_private_key(self.key.private_key_pem, password=None)
        now = int(time.time())
        claims = {**bench_fe.token_claims(), "iat": now, "exp": now + 600, **overrides}
        return mint_token(private_key, self.key.alg, self.key.kid, claims)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def bench_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BenchFe]:
    home = tmp_path_factory.mktemp("bench-fe")
    keys, jwks = bench_fe.make_signing_keys(("ES256",))
    bench_fe.write_jwks(home, jwks)
    server = bench_fe.FeServer(home).start()
    try:
        bench_fe.create_users(server)
        yield BenchFe(server, keys[0])
    finally:
        server.stop()


EVENT_LOOPS = [
    "asyncio",
    pytest.param("uvloop", marks=pytest.mark.skipif(find_spec("uvloop") is None, reason="uvloop is not installed")),
]


def lean_login(
    host: str, port: int, user: str, credential: Credential, tls: bool = True, event_loop: str = "asyncio"
) -> list[tuple]:
    async def once() -> list[tuple]:
        connection = await Connection.open(host, port, user, credential, client_tls_context() if tls else None)
        try:
            return [*(await connection.query("SELECT 1")), *(await connection.query("SELECT CURRENT_USER()"))]
        finally:
            await connection.quit()

    with asyncio.Runner(loop_factory=lambda: new_event_loop(event_loop)) as runner:
        return runner.run(once())


def connector_login(host: str, port: int, user: str, password: str) -> list[tuple]:
    connection = mysql.connector.connect(
        host=host,
        port=port,
        user=user,
        password=password,
        use_pure=True,
        connection_timeout=10,
        ssl_disabled=False,
        ssl_verify_cert=False,
        ssl_verify_identity=False,
    )
    try:
        cursor = connection.cursor(raw=True)
        rows = []
        for statement in ("SELECT 1", "SELECT CURRENT_USER()"):
            cursor.execute(statement)
            rows += [tuple(bytes(v) for v in row) for row in cursor.fetchall()]
        return rows
    finally:
        connection.close()


@pytest.mark.parametrize("event_loop", EVENT_LOOPS)
def test_password_login_over_tls(bench_server: BenchFe, event_loop: str) -> None:
    s = bench_server.server
    for _ in range(2):  # the first is caching_sha2_password's full auth, the second its fast path
        rows = lean_login(s.host, s.port, bench_fe.PASSWORD_USER, Password(bench_fe.PASSWORD), event_loop=event_loop)
        assert rows[0] == (b"1",)
        assert rows[1][0].startswith(bench_fe.PASSWORD_USER.encode())


def test_lean_client_agrees_with_connector_python(bench_server: BenchFe) -> None:
    s = bench_server.server
    lean = lean_login(s.host, s.port, bench_fe.PASSWORD_USER, Password(bench_fe.PASSWORD))
    real = connector_login(s.host, s.port, bench_fe.PASSWORD_USER, bench_fe.PASSWORD)
    assert lean == real


@pytest.mark.parametrize("event_loop", EVENT_LOOPS)
def test_token_login_over_tls(bench_server: BenchFe, event_loop: str) -> None:
    s = bench_server.server
    token = Token(bench_server.token(jti=f"one-{event_loop}"))
    rows = lean_login(s.host, s.port, bench_fe.TOKEN_USER, token, event_loop=event_loop)
    assert rows[0] == (b"1",)
    assert rows[1][0].startswith(bench_fe.TOKEN_USER.encode())


def test_bad_credentials_are_refused(bench_server: BenchFe) -> None:
    s = bench_server.server
    with pytest.raises(ServerError) as wrong_password:
        lean_login(s.host, s.port, bench_fe.PASSWORD_USER, Password("not-the-password"))
    assert wrong_password.value.code == 1045
    with pytest.raises(ServerError) as wrong_audience:
        lean_login(s.host, s.port, bench_fe.TOKEN_USER, Token(bench_server.token(aud="someone-else")))
    assert wrong_audience.value.code == 1045


def test_token_is_never_sent_without_tls(bench_server: BenchFe) -> None:
    s = bench_server.server
    with pytest.raises(WireError):
        lean_login(s.host, s.port, bench_fe.TOKEN_USER, Token(bench_server.token()), tls=False)


def greeting_packet(plugin: str, capabilities: int = 0xF7DFFFFF & ~(1 << 11)) -> bytes:
    """A HandshakeV10 (no TLS offered by default) as packet 0."""
    nonce = b"abcdefghijklmnopqrst"
    payload = (
        b"\x0a5.7.0-fake\x00"
        + struct.pack("<I", 7)
        + nonce[:8]
        + b"\x00"
        + struct.pack("<H", capabilities & 0xFFFF)
        + bytes((45,))
        + struct.pack("<H", 2)
        + struct.pack("<H", capabilities >> 16)
        + bytes((21,))
        + bytes(10)
        + nonce[8:]
        + b"\x00"
        + plugin.encode()
        + b"\x00"
    )
    return struct.pack("<I", len(payload))[:3] + b"\x00" + payload


def with_fake_server(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    client: Callable[[int], Awaitable[object]],
) -> object:
    """Run `client(port)` against a loopback server whose connections `handler` serves."""

    async def run() -> object:
        handlers: list[asyncio.Task[None]] = []

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            handlers.append(asyncio.current_task())  # type: ignore[arg-type]
            try:
                await handler(reader, writer)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await client(port)
        finally:
            server.close()
            await asyncio.wait_for(asyncio.gather(*handlers, return_exceptions=True), 5)
            await server.wait_closed()

    return asyncio.run(run())


def test_login_times_out_when_the_server_says_nothing() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async def client(port: int) -> float:
        started = time.monotonic()
        with pytest.raises(WireError, match="login timed out"):
            await Connection.open("127.0.0.1", port, "u", Password("p"), client_tls_context(), timeout=0.3)
        return time.monotonic() - started

    assert 0.25 < with_fake_server(silent, client) < 2.0  # type: ignore[operator]


def test_query_times_out_and_quit_still_returns() -> None:
    async def logs_in_then_sleeps(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(greeting_packet("mysql_native_password"))
        await reader.read(4096)  # HandshakeResponse41
        writer.write(b"\x07\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00")  # OK
        await reader.read()

    async def client(port: int) -> None:
        connection = await Connection.open("127.0.0.1", port, "u", Password("p"), None, timeout=0.3)
        with pytest.raises(WireError, match="query timed out"):
            await connection.query("SELECT 1")
        await connection.quit()

    with_fake_server(logs_in_then_sleeps, client)


def test_connection_refused_is_a_wire_error() -> None:
    async def refused() -> None:
        server = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        with pytest.raises(WireError, match="connect failed"):
            await Connection.open("127.0.0.1", port, "u", Password("p"), None, timeout=1.0)

    asyncio.run(refused())


def test_token_plugin_in_the_greeting_is_refused_without_tls() -> None:
    received: list[bytes] = []

    async def token_default(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(greeting_packet("authentication_openid_connect_client"))
        received.append(await reader.read())

    async def client(port: int) -> None:
        with pytest.raises(WireError, match="without TLS"):
            await Connection.open("127.0.0.1", port, "u", Token("secret.token.value"), None, timeout=1.0)

    with_fake_server(token_default, client)
    assert b"secret" not in b"".join(received)


def test_hello_retry_request_is_answered(tmp_path: Path) -> None:
    """A server without X25519 asks for another key share (HelloRetryRequest); the client must send a second
    ClientHello from data_received, not wait for its next packet."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_self_signed_certificate(cert, key, "hrr")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.set_ecdh_curve("prime256v1")
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.sendall(greeting_packet("mysql_native_password", 0xF7DFFFFF))
            seen.append(connection.recv(36, socket.MSG_WAITALL))  # the SSLRequest; the ClientHello stays queued
            with context.wrap_socket(connection, server_side=True) as tls:
                seen.append(tls.recv(4096))  # HandshakeResponse41
                tls.sendall(b"\x07\x00\x00\x03\x00\x00\x00\x02\x00\x00\x00")  # OK
                seen.append(tls.recv(4096))  # COM_QUIT

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    async def client() -> None:
        port = listener.getsockname()[1]
        connection = await Connection.open("127.0.0.1", port, "u", Password("p"), client_tls_context(), timeout=5)
        await connection.quit()

    try:
        asyncio.run(client())
        thread.join(5)
    finally:
        listener.close()
    assert len(seen) == 3
    assert seen[1][3] == 2 and b"u\x00" in seen[1]  # HandshakeResponse41, packet 2, user u
    assert seen[2] == b"\x01\x00\x00\x00\x01"


@pytest.mark.parametrize("event_loop", EVENT_LOOPS)
def test_load_generator_storm(bench_server: BenchFe, event_loop: str) -> None:
    s = bench_server.server
    with LoadGenerator(1, event_loop) as generator:
        start_at = time.monotonic() + 0.3
        end_at = start_at + 0.5
        credential = Token(bench_server.token(jti="storm"))
        busy = generator.start_storm(StormJob(s.host, s.port, bench_fe.TOKEN_USER, credential, 2, start_at, end_at))
        [result] = generator.finish_storm(busy, end_at)
    assert result.errors == 0, result.error_samples
    assert result.cycles > 0
    assert len(result.login_latencies) == result.cycles


def test_scrambles_match_the_protocol_definitions() -> None:
    import hashlib

    nonce = bytes(range(20))
    sha1 = hashlib.sha1
    stage1 = sha1(b"secret").digest()
    expected = bytes(a ^ b for a, b in zip(stage1, sha1(nonce + sha1(stage1).digest()).digest(), strict=True))
    assert scramble_native("secret", nonce) == expected
    sha256 = hashlib.sha256
    stage1 = sha256(b"secret").digest()
    mask = sha256(sha256(stage1).digest() + nonce).digest()
    assert scramble_caching_sha2("secret", nonce) == bytes(a ^ b for a, b in zip(stage1, mask, strict=True))
    assert scramble_native("", nonce) == scramble_caching_sha2("", nonce) == b""


def test_python_handshake_is_measured_with_fes_own_tls_context(monkeypatch: pytest.MonkeyPatch) -> None:
    handshakes_seen: list[str] = []
    real_wrap_bio = ssl.SSLContext.wrap_bio

    def wrap_bio(context: ssl.SSLContext, *args: object, server_side: bool = False, **kwargs: object) -> ssl.SSLObject:
        handshakes_seen.append("server" if server_side else "client")
        return real_wrap_bio(context, *args, server_side=server_side, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl.SSLContext, "wrap_bio", wrap_bio)
    cost_ms = crypto_floor.measure_python_handshake(handshakes=5)
    assert handshakes_seen.count("server") == 5 and handshakes_seen.count("client") == 5
    assert 0 < cost_ms < 100  # a real handshake: tens of microseconds at the very least, not a free no-op


def test_openssl_speed_output_is_parsed() -> None:
    # `openssl speed -mr -seconds 1 ecdsap256 ecdhx25519 ed25519 rsa2048` from OpenSSL 3.0.19, as captured.
    sample = """\
+DTP:2048:private:rsa:1
+R1:3353:2048:0.99
+DTP:2048:public:rsa:1
+R2:51603:2048:0.99
+DTP:256:sign:ecdsa:1
+R5:45548:256:0.99
+DTP:256:verify:ecdsa:1
+R6:14910:256:1.00
+DTP:253::ecdh:1
+R7:27357:253:1.00
+DTP:253:sign:Ed25519:1
+R8:21422:253:Ed25519:1.00
+DTP:253:verify:Ed25519:1
+R9:8443:253:Ed25519:1.00
+F2:2:2048:3386.868687:52124.242424
+F4:3:256:46008.080808:14910.000000
+F5:22:253:27357.000000:0.000037
+F6:0:253:Ed25519:21422.000000:8443.000000
"""
    speed = crypto_floor.parse_speed_output(sample)
    assert speed.ecdsa_p256_sign_per_s == pytest.approx(46008.080808)
    assert speed.x25519_derive_per_s == pytest.approx(27357.0)
    assert speed.ed25519_sign_per_s == pytest.approx(21422.0)
    floor = crypto_floor.CryptoFloor(speed)
    assert floor.es256_verify_ms == pytest.approx(1000 / 14910.0)
    assert floor.tls_handshake_ms == pytest.approx(1000 * (1 / 21422.0 + 1 / 27357.0 + 1 / 46008.080808))
    assert floor.token_login_ms("RS256") == pytest.approx(floor.tls_handshake_ms + 1000 / 52124.242424)
    with pytest.raises(ValueError):  # a P-256 key exchange instead of X25519 is not this floor
        crypto_floor.parse_speed_output(sample.replace("+F5:22:253:", "+F5:3:256:"))


# scripts/test installs MariaDB's server and sets FE_TESTS_REQUIRE_MARIADB: there a missing server fails the test.
@pytest.mark.skipif(
    mariadb.find_binaries() is None and not os.environ.get("FE_TESTS_REQUIRE_MARIADB"),
    reason="MariaDB is not installed",
)
def test_mariadb_password_login_over_tls_matches_connector() -> None:
    binaries = mariadb.find_binaries()
    assert binaries is not None, "mariadbd or mariadb-install-db not found (Debian package: mariadb-server)"
    with tempfile.TemporaryDirectory(prefix="bench-mariadb-") as base:
        server = mariadb.MariaDbServer(binaries, Path(base)).start()
        try:
            lean = lean_login(server.host, server.port, mariadb.BENCH_USER, Password(mariadb.BENCH_PASSWORD))
            real = connector_login(server.host, server.port, mariadb.BENCH_USER, mariadb.BENCH_PASSWORD)
            assert lean == real
            assert lean[0] == (b"1",)
            with pytest.raises(ServerError):  # the user is REQUIRE SSL
                lean_login(server.host, server.port, mariadb.BENCH_USER, Password(mariadb.BENCH_PASSWORD), tls=False)
        finally:
            server.stop()
