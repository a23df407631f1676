"""Connecting and logging in to a real MariaDB: plain TCP to loopback, its Unix socket, and every TLS mode (with
the right and a wrong host name), connection attributes in performance_schema, and the failures: refused account, wrong
password, unsupported plugin, server down, a server that never greets."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
import uvloop

from fe.mysql.constants import Capability
from fe.upstream.capabilities import upstream_capabilities
from fe.upstream.connect import connect
from fe.upstream.endpoint import UpstreamAccount, UpstreamServer
from fe.upstream.errors import Reason, UpstreamError
from fe.upstream.protocol import NEED_DATA, ClientProtocol, GreetingReceived, LoginSucceeded, Phase, SendAuth
from fe.upstream.stream import UpstreamStream
from fe.upstream.tls import TlsMode
from tests.support.mariadb_server import MariaDbServer
from tests.support.upstream_wire import query, scalar
from tests.upstream.conftest import CLIENT_CAPS, ED25519, NATIVE, TLS_ONLY, session_attributes, with_tls

ATTRIBUTES = {"program_name": "fe", "fe_user": "tom@example.com", "fe_client": "10.0.0.7:40026", "fe_roles": "r1,r2"}


async def test_plain_tcp_to_loopback_with_attributes(upstream_plain: UpstreamServer, mariadb: MariaDbServer) -> None:
    connection = await connect(upstream_plain, NATIVE, client_capabilities=CLIENT_CAPS, attributes=ATTRIBUTES)
    try:
        assert not connection.tls and connection.loopback and connection.usable
        assert connection.greeting.is_mariadb and connection.greeting.server_version.startswith("5.5.5-")
        assert not connection.capabilities & Capability.SSL
        assert await scalar(connection, "SELECT CURRENT_USER()") == b"fe_native@%"
        assert await scalar(connection, "SELECT CONNECTION_ID()") == str(connection.connection_id).encode()
        assert session_attributes(mariadb, connection.connection_id) == ATTRIBUTES
    finally:
        await connection.close()


async def test_unix_socket_with_attributes(upstream_socket: UpstreamServer, mariadb: MariaDbServer) -> None:
    connection = await connect(upstream_socket, NATIVE, client_capabilities=CLIENT_CAPS, attributes=ATTRIBUTES)
    try:
        # No TLS on the socket whatever upstream_tls says; MariaDB sees a local socket connection.
        assert not connection.tls and connection.loopback and not connection.capabilities & Capability.SSL
        assert upstream_socket.tls.mode is TlsMode.VERIFY_IDENTITY
        assert await scalar(
            connection, "SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()"
        ) == (b"localhost")
        assert await scalar(connection, "SELECT CURRENT_USER()") == b"fe_native@%"
        assert session_attributes(mariadb, connection.connection_id) == ATTRIBUTES
    finally:
        await connection.close()


async def test_a_missing_unix_socket_is_down(tmp_path: Path) -> None:
    server = UpstreamServer("localhost", 0, socket_path=str(tmp_path / "mysqld.sock"))
    with pytest.raises(UpstreamError, match=r"upstream .*mysqld\.sock is down: no such file") as caught:
        await connect(server, NATIVE, client_capabilities=CLIENT_CAPS)
    assert caught.value.reason is Reason.DOWN


async def test_a_unix_socket_nobody_listens_on_is_down(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(path))  # bound, never listening: what a crashed server leaves behind
        server = UpstreamServer("localhost", 0, socket_path=str(path))
        with pytest.raises(UpstreamError, match=r"is down: connection refused") as caught:
            await connect(server, NATIVE, client_capabilities=CLIENT_CAPS)
    assert caught.value.reason is Reason.DOWN


async def test_a_unix_socket_fe_may_not_open_says_what_it_needs(
    upstream_socket: UpstreamServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refused(path: str) -> UpstreamStream:  # root, who runs the tests, is never refused: a fake
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)

    monkeypatch.setattr(UpstreamStream, "open_unix", refused)
    with pytest.raises(UpstreamError, match=r"is down: permission denied \(fe's user needs write permission") as caught:
        await connect(upstream_socket, NATIVE, client_capabilities=CLIENT_CAPS)
    assert caught.value.reason is Reason.DOWN


@pytest.mark.parametrize("mode", [TlsMode.REQUIRED, TlsMode.VERIFY_CA, TlsMode.VERIFY_IDENTITY])
async def test_each_tls_mode(upstream_tls: UpstreamServer, mode: TlsMode) -> None:
    server = with_tls(upstream_tls, mode=mode)
    connection = await connect(server, TLS_ONLY, client_capabilities=CLIENT_CAPS, attributes=ATTRIBUTES)
    try:
        assert connection.tls and connection.capabilities & Capability.SSL
        cipher = await query(connection, "SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        assert cipher[0][1]  # TLS as the server sees it
        assert await scalar(connection, "SELECT CURRENT_USER()") == b"fe_tls_only@%"
    finally:
        await connection.close()


async def test_verify_identity_accepts_the_certificates_name(upstream_tls: UpstreamServer) -> None:
    connection = await connect(with_tls(upstream_tls, server_name="localhost"), NATIVE, client_capabilities=CLIENT_CAPS)
    await connection.close()


async def test_verify_identity_refuses_a_wrong_host_name(upstream_tls: UpstreamServer) -> None:
    server = with_tls(upstream_tls, server_name="db.example.com")
    with pytest.raises(UpstreamError, match="certificate did not verify") as caught:
        await connect(server, NATIVE, client_capabilities=CLIENT_CAPS)
    assert caught.value.reason is Reason.TLS
    # verify_ca does not look at the name.
    connection = await connect(with_tls(server, mode=TlsMode.VERIFY_CA), NATIVE, client_capabilities=CLIENT_CAPS)
    await connection.close()


async def test_verify_ca_refuses_a_certificate_from_another_ca(upstream_tls: UpstreamServer) -> None:
    server = with_tls(upstream_tls, mode=TlsMode.VERIFY_CA, ca_file=None)  # the system's CAs
    with pytest.raises(UpstreamError) as caught:
        await connect(server, NATIVE, client_capabilities=CLIENT_CAPS)
    assert caught.value.reason is Reason.TLS


async def test_an_account_that_requires_tls_is_refused_over_plain_tcp(upstream_plain: UpstreamServer) -> None:
    with pytest.raises(UpstreamError) as caught:
        await connect(upstream_plain, TLS_ONLY, client_capabilities=CLIENT_CAPS)
    assert caught.value.reason is Reason.REFUSED
    assert caught.value.server_error is not None and caught.value.server_error.code == 1045


async def test_wrong_password_carries_the_upstreams_err(upstream_tls: UpstreamServer) -> None:
    with pytest.raises(UpstreamError) as caught:
        await connect(upstream_tls, UpstreamAccount(NATIVE.user, "wrong"), client_capabilities=CLIENT_CAPS)
    error = caught.value.server_error
    assert caught.value.reason is Reason.REFUSED and error is not None
    assert (error.code, error.sqlstate) == (1045, "28000") and "Access denied for user 'fe_native'" in error.message
    assert "wrong" not in str(caught.value)


async def test_an_unsupported_plugin_is_named(upstream_tls: UpstreamServer) -> None:
    with pytest.raises(UpstreamError, match="client_ed25519") as caught:
        await connect(upstream_tls, ED25519, client_capabilities=CLIENT_CAPS)
    assert caught.value.reason is Reason.PROTOCOL


async def test_a_real_auth_switch(upstream_plain: UpstreamServer) -> None:
    """Announced with caching_sha2_password, which MariaDB lacks, the login is switched to the account's plugin."""
    reader, writer = await asyncio.open_connection(upstream_plain.host, upstream_plain.port)
    try:
        protocol = ClientProtocol()
        while not isinstance(event := protocol.next_event(), GreetingReceived):
            protocol.receive_data(await reader.read(65536))
        protocol.greeting = replace(event.greeting, auth_plugin="caching_sha2_password")
        caps = upstream_capabilities(CLIENT_CAPS, event.greeting.capabilities)
        writer.write(protocol.handshake_response(caps, NATIVE.user, NATIVE.password, loopback=True))
        switched = False
        while True:
            event = protocol.next_event()
            if event is NEED_DATA:
                protocol.receive_data(await reader.read(65536))
            elif isinstance(event, SendAuth):
                switched = True
                writer.write(event.data)
            else:
                break
        assert switched and isinstance(event, LoginSucceeded) and protocol.phase is Phase.COMMAND
    finally:
        writer.close()


async def test_database_chosen_at_login(upstream_tls: UpstreamServer) -> None:
    connection = await connect(upstream_tls, NATIVE, client_capabilities=CLIENT_CAPS, database="fe_test")
    try:
        assert await scalar(connection, "SELECT DATABASE()") == b"fe_test"
    finally:
        await connection.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_server_down_at_connect() -> None:
    server = UpstreamServer("127.0.0.1", _closed_port())
    with pytest.raises(UpstreamError, match=r"is down: .*refused") as caught:
        await connect(server, NATIVE, client_capabilities=CLIENT_CAPS)
    assert caught.value.reason is Reason.DOWN


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A listener that accepts connections and never says anything (a hung upstream)."""
    accepted: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    listener = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield int(listener.sockets[0].getsockname()[1])
    finally:
        for writer in accepted:
            writer.close()
        listener.close()
        await listener.wait_closed()


async def test_a_server_that_never_greets_times_out(silent_server: int) -> None:
    server = UpstreamServer("127.0.0.1", silent_server, connect_timeout=0.3)
    with pytest.raises(UpstreamError, match="did not answer in time") as caught:
        await connect(server, NATIVE, client_capabilities=CLIENT_CAPS)
    assert caught.value.reason is Reason.TIMEOUT


def test_login_and_relay_on_uvloop(upstream_tls: UpstreamServer) -> None:
    async def run() -> bytes | None:
        connection = await connect(upstream_tls, NATIVE, client_capabilities=CLIENT_CAPS, attributes=ATTRIBUTES)
        try:
            return await scalar(connection, "SELECT 40 + 2")
        finally:
            await connection.close()

    assert uvloop.run(run()) == b"42"
