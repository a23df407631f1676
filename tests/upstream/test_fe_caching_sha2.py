"""caching_sha2_password against a real server that implements it: MariaDB has no such server plugin, so the
upstream here is a real `fe serve`. Full authentication over TLS (the password inside TLS), then the fast path;
over plain TCP the password goes RSA-encrypted with the key the server sends (or a pinned one), never in
cleartext; COM_CHANGE_USER between a native and a caching_sha2_password account."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from fe.upstream.auth import ClientAuth
from fe.upstream.connect import connect
from fe.upstream.endpoint import UpstreamAccount, UpstreamServer
from fe.upstream.errors import Reason, UpstreamError
from fe.upstream.tls import TlsMode, TlsOptions
from tests.conftest import ROOT_PASSWORD, root_execute
from tests.support.server import FeProcess, running_fe
from tests.support.upstream_wire import scalar
from tests.upstream.conftest import CLIENT_CAPS

SHA_TLS = UpstreamAccount("sha_tls", "Sha#tls-1")
SHA_RSA = UpstreamAccount("sha_rsa", "Sha#rsa-2")
NATIVE = UpstreamAccount("nat_user", "Nat#pw-4")


@pytest.fixture(scope="module")
def fe_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeProcess]:
    home = tmp_path_factory.mktemp("fe-upstream")
    with running_fe(home, env={"FE_ROOT_PASSWORD": ROOT_PASSWORD}) as server:
        root_execute(
            server,
            *(f"CREATE USER {a.user} IDENTIFIED BY '{a.password}'" for a in (SHA_TLS, SHA_RSA)),
            f"CREATE USER {NATIVE.user} IDENTIFIED WITH mysql_native_password BY '{NATIVE.password}'",
        )
        yield server


def tls_server(fe: FeProcess) -> UpstreamServer:
    # fe's generated certificate is self-signed for localhost and 127.0.0.1: it is its own CA.
    ca = fe.home / "meta" / "tls" / "server-cert.pem"
    return UpstreamServer(fe.host, fe.port, TlsOptions(TlsMode.VERIFY_IDENTITY, str(ca)))


def plain_server(fe: FeProcess) -> UpstreamServer:
    return UpstreamServer(fe.host, fe.port, TlsOptions(TlsMode.DISABLED))


@pytest.fixture
def auth_packets(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every packet the server sends during authentication, as the exchange receives it."""
    seen: list[bytes] = []
    receive = ClientAuth.receive

    def recording(self: ClientAuth, payload: bytes) -> object:
        seen.append(payload)
        return receive(self, payload)

    monkeypatch.setattr(ClientAuth, "receive", recording)
    return seen


async def test_full_authentication_over_tls_then_the_fast_path(
    fe_upstream: FeProcess, auth_packets: list[bytes]
) -> None:
    for expected in (b"\x01\x04", b"\x01\x03"):  # full authentication first, then the cached fast path
        auth_packets.clear()
        connection = await connect(tls_server(fe_upstream), SHA_TLS, client_capabilities=CLIENT_CAPS)
        try:
            assert connection.tls and auth_packets[0] == expected
            assert await scalar(connection, "SELECT CURRENT_USER()") == b"sha_tls@%"
        finally:
            await connection.close()


async def test_plain_tcp_sends_the_password_rsa_encrypted(fe_upstream: FeProcess, auth_packets: list[bytes]) -> None:
    connection = await connect(plain_server(fe_upstream), SHA_RSA, client_capabilities=CLIENT_CAPS)
    try:
        assert not connection.tls and connection.loopback
        assert auth_packets[0] == b"\x01\x04" and auth_packets[1].startswith(b"\x01-----BEGIN PUBLIC KEY-----")
        assert await scalar(connection, "SELECT CURRENT_USER()") == b"sha_rsa@%"
    finally:
        await connection.close()
    assert "insecure_password" not in fe_upstream.log
    wrong = replace(SHA_RSA, password="not-it")
    with pytest.raises(UpstreamError) as caught:
        await connect(plain_server(fe_upstream), wrong, client_capabilities=CLIENT_CAPS)
    assert caught.value.reason is Reason.REFUSED and caught.value.server_error is not None
    assert caught.value.server_error.code == 1045


async def test_change_user_between_native_and_caching_sha2_accounts(fe_upstream: FeProcess) -> None:
    connection = await connect(tls_server(fe_upstream), NATIVE, client_capabilities=CLIENT_CAPS)
    try:
        assert await scalar(connection, "SELECT CURRENT_USER()") == b"nat_user@%"
        await connection.change_user(SHA_TLS, {"fe_user": "someone"})
        assert await scalar(connection, "SELECT CURRENT_USER()") == b"sha_tls@%"
        await connection.reset()
        await connection.ping()
    finally:
        await connection.close()
