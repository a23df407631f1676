"""Abuse over raw sockets: every case ends in an error or a close, never a crash, never the command phase."""

from __future__ import annotations

import socket
import ssl
import struct
import time

import pytest

from tests.conftest import ROOT_PASSWORD, root_execute
from tests.support.clients import ALL_CLIENTS
from tests.support.rawclient import CLIENT_CAPS, RawClient, error_of
from tests.support.server import FeProcess, running_fe


def still_serving(server: FeProcess) -> None:
    assert server.alive
    assert ALL_CLIENTS["pymysql"](server.host, server.port, "root", ROOT_PASSWORD).ok


def test_garbage_before_handshake(fe_server: FeProcess) -> None:
    client = RawClient(fe_server.host, fe_server.port)
    client.read_greeting()
    client.sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 4)
    payload = client.read_packet()
    code, _ = error_of(payload)
    assert code in (1043, 1153, 1156)
    assert client.closed_by_server()
    still_serving(fe_server)


def test_truncated_packet_then_close(fe_server: FeProcess) -> None:
    client = RawClient(fe_server.host, fe_server.port)
    client.read_greeting()
    client.sock.sendall(b"\x50\x00\x00\x01" + b"\x00" * 10)
    client.close()
    still_serving(fe_server)


def test_truncated_handshake_response(fe_server: FeProcess) -> None:
    client = RawClient(fe_server.host, fe_server.port)
    client.read_greeting()
    response = client.handshake_response("root", b"x" * 32)
    client.send_packet(response[:40])  # cut inside the user name: no NUL terminator
    code, message = error_of(client.read_packet())
    assert code == 1043 and "Bad handshake" in message
    assert client.closed_by_server()
    still_serving(fe_server)


def test_oversized_packet_before_login(fe_server: FeProcess) -> None:
    client = RawClient(fe_server.host, fe_server.port)
    client.read_greeting()
    client.sock.sendall(b"\x00\x00\x10\x01")  # announces 1 MiB; nothing more is needed to refuse it
    code, _ = error_of(client.read_packet())
    assert code == 1153
    assert client.closed_by_server()
    still_serving(fe_server)


def test_wrong_sequence_id(fe_server: FeProcess) -> None:
    client = RawClient(fe_server.host, fe_server.port)
    client.read_greeting()
    client.send_packet(client.handshake_response("root", b""), seq=5)
    code, _ = error_of(client.read_packet())
    assert code == 1156
    assert client.closed_by_server()
    still_serving(fe_server)


@pytest.mark.parametrize("when", ["with_the_password", "before_the_server_asks"])
def test_query_after_failed_login_is_never_executed(fe_server: FeProcess, when: str) -> None:
    client = RawClient(fe_server.host, fe_server.port)
    client.read_greeting()
    client.start_tls()
    client.send_packet(client.handshake_response("root", b"\x00" * 32, tls=True))
    sneaky = f"CREATE USER sneaky_{when} IDENTIFIED BY 'x'"
    query = struct.pack("<I", len(sneaky) + 1)[:3] + b"\x00\x03" + sneaky.encode()
    if when == "before_the_server_asks":
        client.sock.sendall(query)  # where the password belongs: a packet out of order
        assert client.read_packet() == b"\x01\x04"
        assert error_of(client.read_packet())[0] == 1156
    else:
        assert client.read_packet() == b"\x01\x04"  # full authentication: a wrong password, and the query
        client.sock.sendall(b"\x06\x00\x00\x04wrong\x00" + query)
        assert error_of(client.read_packet())[0] == 1045
    assert client.closed_by_server()
    rows = root_execute(fe_server, "SHOW USERS")
    assert all("sneaky" not in row[0] for row in rows)


def test_sslrequest_and_client_hello_in_one_segment(fe_server: FeProcess) -> None:
    """The ClientHello arriving in the same read as the SSLRequest must reach TLS, not be dropped."""
    for _ in range(20):
        sock = socket.create_connection((fe_server.host, fe_server.port), timeout=5)
        raw = RawClient.__new__(RawClient)
        raw.sock, raw.seq = sock, 0
        raw.read_greeting()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing)
        with pytest.raises(ssl.SSLWantReadError):
            tls.do_handshake()
        ssl_request = struct.pack("<IIB", CLIENT_CAPS | 0x800, 1 << 24, 255) + b"\x00" * 23
        sock.sendall(struct.pack("<I", 32)[:3] + b"\x01" + ssl_request + outgoing.read())
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                if outgoing.pending:
                    sock.sendall(outgoing.read())
                data = sock.recv(65536)
                assert data, "server closed during the TLS handshake"
                incoming.write(data)
        if outgoing.pending:
            sock.sendall(outgoing.read())
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        sock.close()


def test_tls_session_ends_with_a_quiet_shutdown_like_mysql(fe_server: FeProcess) -> None:
    """After COM_QUIT (and after a failed login) the server closes the socket without a TLS close_notify, as
    MySQL's vio_ssl_shutdown does; the client still gets every byte before the close."""
    client = RawClient(fe_server.host, fe_server.port)
    assert client.login("root", ROOT_PASSWORD, tls=True)[:1] == b"\x00"
    assert isinstance(client.sock, ssl.SSLSocket)
    client.sock.suppress_ragged_eofs = False
    client.send_packet(b"\x01", seq=0)  # COM_QUIT
    with pytest.raises(ssl.SSLEOFError):  # a close_notify would end the read with b"" instead
        client.sock.recv(1)
    client.close()

    refused = RawClient(fe_server.host, fe_server.port)
    code, _ = error_of(refused.login("root", "wrong password", tls=True))
    assert code == 1045
    assert refused.closed_by_server()
    still_serving(fe_server)


def test_unknown_command_and_bad_queries_keep_the_session(fe_server: FeProcess) -> None:
    client = RawClient(fe_server.host, fe_server.port)
    assert client.login("root", ROOT_PASSWORD, tls=True)[:1] == b"\x00"
    client.send_packet(b"\x1b\x00", seq=0)  # COM_SET_OPTION: not supported
    assert error_of(client.read_packet())[0] == 1047
    assert error_of(client.query("SELEC nonsense"))[0] == 1064
    client.send_packet(b"\x03\xff\xfe", seq=0)  # not UTF-8
    assert error_of(client.read_packet())[0] == 1300
    assert client.query("SELECT 1")[:1] == b"\x01"  # one column: the session is still fine
    client.close()


def test_oversized_packet_after_login(tmp_path) -> None:
    env = {"FE_ROOT_PASSWORD": ROOT_PASSWORD, "FE_MAX_PACKET_SIZE": "65536"}
    with running_fe(tmp_path, env=env) as server:
        client = RawClient(server.host, server.port)
        assert client.login("root", ROOT_PASSWORD, tls=True)[:1] == b"\x00"
        client.sock.sendall(b"\x00\x00\x02\x00\x03")
        assert error_of(client.read_packet())[0] == 1153
        assert client.closed_by_server()
        still_serving(server)


def test_handshake_timeout_and_max_connections(tmp_path) -> None:
    env = {"FE_ROOT_PASSWORD": ROOT_PASSWORD, "FE_HANDSHAKE_TIMEOUT_SECONDS": "1", "FE_MAX_CONNECTIONS": "3"}
    with running_fe(tmp_path, env=env) as server:
        idle = [RawClient(server.host, server.port) for _ in range(3)]
        for client in idle:
            client.read_greeting()
        extra = RawClient(server.host, server.port)
        code, message = error_of(extra.read_packet())
        assert code == 1040 and message == "Too many connections"
        started = time.monotonic()
        for client in idle:
            assert client.closed_by_server(timeout=5)
        assert time.monotonic() - started < 4
        still_serving(server)


def test_idle_timeout(tmp_path) -> None:
    env = {"FE_ROOT_PASSWORD": ROOT_PASSWORD, "FE_IDLE_TIMEOUT_SECONDS": "1"}
    with running_fe(tmp_path, env=env) as server:
        client = RawClient(server.host, server.port)
        assert client.login("root", ROOT_PASSWORD, tls=True)[:1] == b"\x00"
        code, _ = error_of(client.read_packet())
        assert code == 4031
        assert client.closed_by_server()


def test_login_that_stalls_mid_exchange_times_out_and_is_logged(tmp_path) -> None:
    env = {"FE_ROOT_PASSWORD": ROOT_PASSWORD, "FE_HANDSHAKE_TIMEOUT_SECONDS": "1"}
    with running_fe(tmp_path, env=env) as server:
        client = RawClient(server.host, server.port)
        client.read_greeting()
        client.start_tls()
        client.send_packet(client.handshake_response("root", b"\x00" * 32, tls=True))
        assert client.read_packet() == b"\x01\x04"  # the server asks for the password, which never comes
        assert client.closed_by_server(timeout=5)
        server.wait_for_log(r"login user=root .*outcome=failure reason=timeout")
        still_serving(server)
