"""Abuse of the connection phase from raw sockets, COM_CHANGE_USER edge cases, the caching_sha2 fast
path after a password change, peers that stop reading, log-line forgery, shutdown in the middle of a login."""

from __future__ import annotations

import contextlib
import signal
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT_PASSWORD, root_execute
from tests.support.clients import ALL_CLIENTS
from tests.support.rawclient import CLIENT_CAPS, RawClient, error_of, sha2_scramble
from tests.support.server import FeProcess, running_fe

SSL_REQUEST = struct.pack("<IIB", CLIENT_CAPS | 0x800, 1 << 24, 255) + b"\x00" * 23


@pytest.fixture(scope="module")
def server(fe_server: FeProcess) -> FeProcess:
    root_execute(
        fe_server,
        "CREATE USER IF NOT EXISTS lowly IDENTIFIED BY 'Lowly-pw-1'",
        "CREATE USER IF NOT EXISTS fasty IDENTIFIED BY 'Fasty-pw-1'",
        'CREATE USER IF NOT EXISTS tokplain IDENTIFIED WITH authentication_jwt AS \'{"jwks_url": "nothing.jwks"}\'',
    )
    return fe_server


def still_serving(server: FeProcess) -> None:
    assert server.alive
    assert ALL_CLIENTS["pymysql"](server.host, server.port, "root", ROOT_PASSWORD).ok


def no_user_named(server: FeProcess, fragment: str) -> bool:
    return all(fragment not in row[0] for row in root_execute(server, "SHOW USERS"))


def packet(payload: bytes, seq: int) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes((seq,)) + payload


def read_until_closed(sock: socket.socket | ssl.SSLSocket, timeout: float = 5.0) -> bytes:
    """Everything the server still sends until it closes (EOF or reset) or `timeout` passes."""
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except OSError:
        pass
    return received


def closed_within(client: RawClient, timeout: float = 5.0) -> bool:
    """True only if the server really closed (EOF or reset) within `timeout`; False if it kept the line open.

    (RawClient.closed_by_server also answers True when its read times out.)"""
    client.sock.settimeout(timeout)
    try:
        while client.sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


def send_quietly(sock: socket.socket | ssl.SSLSocket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(data)


def root_session(server: FeProcess, tls: bool = True) -> RawClient:
    client = RawClient(server.host, server.port)
    assert client.login("root", ROOT_PASSWORD, tls=tls)[:1] == b"\x00"
    return client


# ---------------------------------------------------------------------------------------------- COM_CHANGE_USER


def test_change_user_whose_database_fails_does_not_leave_the_new_identity_behind(server: FeProcess) -> None:
    """The client is told the change failed (1049), so it believes it is still the old user: the server must not
    go on running its statements as the new one (a pool that switches lowly -> root would keep root's rights)."""
    import mysql.connector

    connection = mysql.connector.connect(
        host=server.host, port=server.port, user="lowly", password="Lowly-pw-1", use_pure=True, ssl_verify_cert=False
    )
    try:
        with pytest.raises(mysql.connector.Error) as failure:
            connection.cmd_change_user(username="root", password=ROOT_PASSWORD, database="no_such_db")
        assert failure.value.errno == 1049
        with pytest.raises(mysql.connector.Error):
            cursor = connection.cursor()
            cursor.execute("CREATE USER sneaky_change_db IDENTIFIED BY 'x'")
    finally:
        connection.close()
    assert no_user_named(server, "sneaky_change_db")
    still_serving(server)


@pytest.mark.parametrize(
    "change",
    [
        b"\x11nobody",  # no NUL after the user name
        b"\x11root\x00\xff",  # auth length 255, nothing follows
        b"\x11",  # nothing at all
        b"\x11root\x00\x00",  # no database field
    ],
    ids=["no_nul", "short_auth", "empty", "no_database"],
)
def test_malformed_change_user_closes_and_pipelined_query_is_never_run(server: FeProcess, change: bytes) -> None:
    client = root_session(server)
    sneaky = b"\x03CREATE USER sneaky_malformed IDENTIFIED BY 'x'"
    client.sock.sendall(packet(change, 0) + packet(sneaky, 0))
    code, _ = error_of(client.read_packet())
    assert code == 1835
    assert closed_within(client)
    assert no_user_named(server, "sneaky_malformed")


def test_change_user_to_unknown_user_is_denied_like_a_wrong_password(server: FeProcess) -> None:
    replies = {}
    for user in ("nobody_here", "lowly"):
        client = root_session(server)
        # A proof made with the greeting's nonce: the exchange restarts with a new one.
        client.send_packet(b"\x11" + user.encode() + b"\x00\x14" + b"p" * 20 + b"\x00", seq=0)
        switch = client.read_packet()
        assert switch.startswith(b"\xfecaching_sha2_password\x00")
        client.send_packet(b"x" * 32)
        assert client.read_packet() == b"\x01\x04"  # full authentication, for both
        client.send_packet(b"wrong\x00")
        code, message = error_of(client.read_packet())
        replies[user] = (code, message.replace(user, "U"))
        assert closed_within(client)
    assert replies["nobody_here"] == replies["lowly"]
    assert replies["lowly"][0] == 1045


def test_change_user_to_a_token_user_over_plain_tcp_is_refused_and_closes(server: FeProcess) -> None:
    root_session(server, tls=True).close()  # one full authentication: plain TCP then takes the fast path
    client = root_session(server, tls=False)
    sneaky = b"\x03CREATE USER sneaky_token_plain IDENTIFIED BY 'x'"
    client.sock.sendall(packet(b"\x11tokplain\x00\x00\x00", 0) + packet(sneaky, 0))
    code, message = error_of(client.read_packet())
    # As for any name with no password over plain TCP (a token is never taken there); the log says why.
    assert code == 1045 and message == "Access denied for user 'tokplain'@'127.0.0.1' (using password: NO)"
    assert closed_within(client)
    assert no_user_named(server, "sneaky_token_plain")
    server.wait_for_log(r"login user=tokplain .*outcome=failure reason=insecure_transport")


# ----------------------------------------------------------------------------------- caching_sha2 fast path


@pytest.mark.parametrize(
    "change",
    ["ALTER USER fasty IDENTIFIED BY '{pw}'", "SET PASSWORD FOR fasty = '{pw}'"],
    ids=["alter_user", "set_password"],
)
def test_fast_path_forgets_the_old_password(server: FeProcess, change: str) -> None:
    """Connector/Python over plain TCP can only log in through the fast path (the in-memory cache of a previous
    full authentication): after a password change, the old password must not get in that way."""
    root_execute(server, "ALTER USER fasty IDENTIFIED BY 'Fasty-old-1'")
    pure = ALL_CLIENTS["connector_pure"]
    assert pure(server.host, server.port, "fasty", "Fasty-old-1", tls=True).ok  # full auth: cached
    assert pure(server.host, server.port, "fasty", "Fasty-old-1", tls=False).ok  # fast path
    root_execute(server, change.format(pw="Fasty-new-1"))
    assert pure(server.host, server.port, "fasty", "Fasty-old-1", tls=False).errno == 1045
    assert pure(server.host, server.port, "fasty", "Fasty-old-1", tls=True).errno == 1045
    assert pure(server.host, server.port, "fasty", "Fasty-new-1", tls=True).ok
    assert pure(server.host, server.port, "fasty", "Fasty-new-1", tls=False).ok


# ---------------------------------------------------------------------------------- plain-TCP RSA exchange


@pytest.mark.parametrize(
    "ciphertext", [b"\x00" * 256, b"abc", b"", b"\x01" * 512], ids=["zeros", "short", "empty", "long"]
)
def test_rsa_exchange_with_garbage_ciphertext_is_denied(server: FeProcess, ciphertext: bytes) -> None:
    client = RawClient(server.host, server.port)
    client.read_greeting()
    client.send_packet(client.handshake_response("root", b"\x00" * 32))
    assert client.read_packet() == b"\x01\x04"
    client.send_packet(b"\x02")  # ask for the public key
    assert client.read_packet().startswith(b"\x01-----BEGIN PUBLIC KEY-----")
    client.sock.sendall(packet(ciphertext, client.seq) + packet(b"\x03SELECT 1", 0))
    code, message = error_of(client.read_packet())
    assert code == 1045 and "using password: YES" in message
    assert closed_within(client)


# --------------------------------------------------------------------------------------- connection phase


def test_login_split_at_every_byte_boundary(server: FeProcess) -> None:
    root_session(server, tls=True).close()  # the fast path, so the plain login needs no RSA exchange
    client = RawClient(server.host, server.port)
    client.read_greeting()
    wire = packet(client.handshake_response("root", sha2_scramble(ROOT_PASSWORD.encode(), client.nonce)), 1)
    for i in range(len(wire)):
        client.sock.send(wire[i : i + 1])
        time.sleep(0.001)
    client.seq = 2
    assert client.read_packet() == b"\x01\x03"
    assert client.read_packet()[:1] == b"\x00"
    assert client.query_rows("SELECT CURRENT_USER()") == [[b"root@%"]]
    client.close()


def test_sslrequest_followed_by_garbage_closes_at_once(server: FeProcess) -> None:
    client = RawClient(server.host, server.port)
    client.read_greeting()
    client.sock.sendall(packet(SSL_REQUEST, 1) + b"GET / HTTP/1.1\r\nHost: fe\r\n\r\n")
    started = time.monotonic()
    assert closed_within(client, timeout=5)
    assert time.monotonic() - started < 2
    still_serving(server)


def test_sslrequest_followed_by_plaintext_login_never_logs_in(server: FeProcess) -> None:
    client = RawClient(server.host, server.port)
    client.read_greeting()
    response = client.handshake_response("root", sha2_scramble(ROOT_PASSWORD.encode(), client.nonce), tls=True)
    client.sock.sendall(packet(SSL_REQUEST, 1) + packet(response, 2) + packet(b"\x03SELECT 1", 0))
    received = read_until_closed(client.sock)
    assert b"\x00\x00\x00\x02\x00" not in received  # no OK packet in the clear


def test_non_utf8_user_name_is_a_bad_handshake(server: FeProcess) -> None:
    client = RawClient(server.host, server.port)
    client.read_greeting()
    response = client.handshake_response("x", b"")
    client.send_packet(response[:32] + b"\xff\xfe\xc3(\x00" + response[34:])
    code, _ = error_of(client.read_packet())
    assert code == 1043
    assert closed_within(client)


def test_control_characters_in_a_user_name_cannot_forge_log_lines(server: FeProcess) -> None:
    forged = "evil\r2026-01-01 00:00:00 INFO fe.login login user=root outcome=success\x1b[2K"
    client = RawClient(server.host, server.port)
    client.read_greeting()
    client.send_packet(client.handshake_response(forged, b""))
    assert error_of(client.read_packet())[0] == 1045
    server.wait_for_log(r"login user=\"?evil")
    forged_lines = [line for line in server.lines if line.startswith("2026-01-01 00:00:00")]
    assert not forged_lines, forged_lines  # a line of its own (the log is read with universal newlines)
    assert "\x1b" not in server.log


def test_empty_query_is_an_error_and_the_session_goes_on(server: FeProcess) -> None:
    client = root_session(server)
    assert error_of(client.query(""))[0] == 1065
    assert client.query_rows("SELECT 1") == [[b"1"]]
    client.close()


# ------------------------------------------------------------------------------------------- memory bounds


def _bytes_accepted(sock: socket.socket, chunk: bytes, seconds: float) -> int:
    """How much the server takes in before it stops reading (the send blocks), within `seconds`."""
    sent = 0
    sock.settimeout(0.5)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            sent += sock.send(chunk)
        except TimeoutError:
            continue
        except OSError:
            break
    return sent


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_preauth_pipelined_flood_is_not_buffered_without_bound(server: FeProcess, tls: bool) -> None:
    """Before login, a client that floods whole packets while the server waits for its password is read only up
    to a small bound (then the server stops reading); it never gets a command phase."""
    client = RawClient(server.host, server.port)
    client.read_greeting()
    if tls:
        client.start_tls()
    client.send_packet(client.handshake_response("root", b"\x00" * 32, tls=tls))
    assert client.read_packet() == b"\x01\x04"  # full authentication: the server now waits for the password
    flood = packet(b"\x03" + b"x" * 16000, 0) * 64  # ~1 MiB of COM_QUERY packets, out of order
    accepted = _bytes_accepted(client.sock, flood, 3.0)  # type: ignore[arg-type]
    # Kernel socket buffers on loopback hold a few MiB; the server itself keeps at most ~128 KiB + one read.
    assert accepted < 24 * 1024 * 1024, accepted
    client.close()
    still_serving(server)


# ----------------------------------------------------------------------- dedicated servers (own settings)


@pytest.fixture
def quick_server(tmp_path) -> Iterator[FeProcess]:
    env = {
        "FE_ROOT_PASSWORD": ROOT_PASSWORD,
        "FE_HANDSHAKE_TIMEOUT_SECONDS": "1",
        "FE_IDLE_TIMEOUT_SECONDS": "2",
        "FE_SHUTDOWN_GRACE_SECONDS": "2",
    }
    with running_fe(tmp_path, env=env) as server:
        yield server


def test_tls_handshake_that_never_finishes_is_cut_by_the_handshake_timeout(quick_server: FeProcess) -> None:
    stalled = []
    for partial in (b"", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"):  # nothing, or half a ClientHello
        client = RawClient(quick_server.host, quick_server.port)
        client.read_greeting()
        client.sock.sendall(packet(SSL_REQUEST, 1) + partial)
        stalled.append(client)
    started = time.monotonic()
    for client in stalled:
        assert closed_within(client, timeout=5)
    assert time.monotonic() - started < 4
    still_serving(quick_server)


def test_a_peer_that_stops_reading_is_disconnected(quick_server: FeProcess) -> None:
    """A session that pipelines queries and never reads the replies must not hold its connection (and the
    replies in memory) forever: the server gives up on it like on an idle one."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((quick_server.host, quick_server.port))
    client = RawClient.__new__(RawClient)
    client.sock, client.seq, client.nonce = sock, 0, b""
    assert client.login("root", ROOT_PASSWORD, tls=True)[:1] == b"\x00"
    client.send_packet(b"\x03SHOW VARIABLES", seq=0)
    reply_size = 0
    eofs = 0
    while eofs < 2:
        payload = client.read_packet()
        reply_size += 4 + len(payload)
        eofs += payload[:1] == b"\xfe"
    count = 12_000  # far more replies than the socket buffers hold
    client.sock.sendall(packet(b"\x03SHOW VARIABLES", 0) * count)
    time.sleep(7)  # idle timeout 2 s: long past it
    received = len(read_until_closed(client.sock))
    assert received < reply_size * count, "the server waited for the reader as long as it took"
    quick_server.wait_for_log(r"stopped reading")
    still_serving(quick_server)


def test_sigterm_in_the_middle_of_a_login(quick_server: FeProcess) -> None:
    client = RawClient(quick_server.host, quick_server.port)
    client.read_greeting()
    client.start_tls()
    client.send_packet(client.handshake_response("root", b"\x00" * 32, tls=True))
    assert client.read_packet() == b"\x01\x04"
    assert quick_server.process is not None
    quick_server.process.send_signal(signal.SIGTERM)
    late = threading.Timer(0.2, send_quietly, (client.sock, packet(ROOT_PASSWORD.encode() + b"\x00", 4)))
    late.start()
    assert quick_server.process.wait(10) == 0
    late.join()
    received = read_until_closed(client.sock)
    assert not received.startswith(b"\x07\x00\x00\x05\x00"), "a login completed during shutdown"
