"""The sans-IO client protocol on hand-made packets: greetings (MySQL's and MariaDB's), the SSLRequest and
HandshakeResponse41 (read back with fe's own server-side parser), the authentication exchanges, COM_CHANGE_USER,
commands and their responses, and fuzzed greetings."""

from __future__ import annotations

import contextlib
import random
import struct

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pymysql import _auth as pymysql_auth

from fe.mysql import messages
from fe.mysql.codec import MalformedPacket, frame
from fe.mysql.constants import SERVER_CAPABILITIES, Capability
from fe.upstream import packets
from fe.upstream.capabilities import FORBIDDEN, RELAYED, relayable, upstream_capabilities
from fe.upstream.commands import Com, Status
from fe.upstream.errors import Reason, UpstreamError, UpstreamProtocolError
from fe.upstream.protocol import (
    NEED_DATA,
    ClientProtocol,
    GreetingReceived,
    GreetingRefused,
    LocalProtocolError,
    LoginRefused,
    LoginSucceeded,
    Phase,
    SendAuth,
)
from fe.upstream.response import Outcome, UnsupportedCommand

NONCE = bytes(range(65, 85))
UPSTREAM_CAPS = SERVER_CAPABILITIES | Capability.SSL | Capability.MULTI_STATEMENTS | Capability.LOCAL_FILES
CLIENT = (
    Capability.LONG_PASSWORD
    | Capability.PROTOCOL_41
    | Capability.SECURE_CONNECTION
    | Capability.PLUGIN_AUTH
    | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
    | Capability.CONNECT_ATTRS
    | Capability.DEPRECATE_EOF
    | Capability.MULTI_RESULTS
)


def wire(payload: bytes, seq: int) -> bytes:
    return frame(payload, seq)[0]


def mysql_greeting(plugin: str = "caching_sha2_password", caps: int = UPSTREAM_CAPS) -> bytes:
    return messages.greeting(42, NONCE, caps, "8.4.3", plugin, Status.AUTOCOMMIT)


def mariadb_greeting() -> bytes:
    caps = (UPSTREAM_CAPS & ~Capability.LONG_PASSWORD) | Capability.SESSION_TRACK
    return b"".join(
        (
            b"\x0a5.5.5-10.11.19-MariaDB-0+deb12u1\x00",
            struct.pack("<I", 7),
            NONCE[:8],
            b"\x00",
            struct.pack("<H", caps & 0xFFFF),
            bytes((8,)),
            struct.pack("<H", 2),
            struct.pack("<H", caps >> 16),
            bytes((21,)),
            bytes(6),
            struct.pack("<I", 0x1D),  # MariaDB's extended capabilities
            NONCE[8:] + b"\x00",
            b"mysql_native_password\x00",
        )
    )


def greeted(greeting: bytes | None = None, *, unix_socket: bool = False) -> ClientProtocol:
    protocol = ClientProtocol(unix_socket=unix_socket)
    protocol.receive_data(wire(greeting or mysql_greeting(), 0))
    event = protocol.next_event()
    assert isinstance(event, GreetingReceived) and protocol.phase is Phase.HANDSHAKE
    return protocol


def caps_for(protocol: ClientProtocol, client: int = CLIENT) -> int:
    assert protocol.greeting is not None
    return upstream_capabilities(client, protocol.greeting.capabilities)


def logged_in(deprecate: bool = True, local_files: bool = False) -> ClientProtocol:
    protocol = greeted()
    client = CLIENT if deprecate else CLIENT & ~Capability.DEPRECATE_EOF
    if local_files:
        client |= Capability.LOCAL_FILES
    protocol.handshake_response(caps_for(protocol, client), "svc", "", loopback=False)
    protocol.receive_data(wire(messages.ok(status=Status.AUTOCOMMIT), 2))
    assert isinstance(protocol.next_event(), LoginSucceeded)
    return protocol


# ---- greetings ----


def test_mysql_greeting() -> None:
    greeting = greeted().greeting
    assert greeting is not None
    assert (greeting.server_version, greeting.version, greeting.connection_id) == ("8.4.3", "8.4.3", 42)
    assert greeting.nonce == NONCE and greeting.auth_plugin == "caching_sha2_password"
    assert greeting.capabilities == UPSTREAM_CAPS and greeting.mariadb_capabilities == 0
    assert not greeting.is_mariadb


def test_mariadb_greeting_with_extended_capabilities_and_version_prefix() -> None:
    greeting = greeted(mariadb_greeting()).greeting
    assert greeting is not None
    assert greeting.server_version.startswith("5.5.5-") and greeting.version == "10.11.19-MariaDB-0+deb12u1"
    assert greeting.is_mariadb and greeting.mariadb_capabilities == 0x1D
    assert greeting.nonce == NONCE and greeting.auth_plugin == "mysql_native_password"
    assert greeting.charset == 8 and greeting.connection_id == 7


def test_an_err_instead_of_a_greeting() -> None:
    protocol = ClientProtocol()
    protocol.receive_data(wire(b"\xff\x10\x04Too many connections", 0))
    event = protocol.next_event()
    assert isinstance(event, GreetingRefused) and event.error.code == 1040
    assert event.error.message == "Too many connections" and protocol.phase is Phase.CLOSED


def test_fuzzed_greetings_fail_only_as_malformed() -> None:
    rng = random.Random(77)
    sample = mariadb_greeting()
    for _ in range(3000):
        data = bytearray(sample)
        for _ in range(rng.randint(1, 5)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.4:
            del data[rng.randrange(1, len(data)) :]
        data[0] = 0x0A
        with contextlib.suppress(MalformedPacket):
            packets.parse_greeting(bytes(data))


# ---- capabilities ----


def test_upstream_capabilities_are_the_clients_relayed_flags_and_fes_login_flags() -> None:
    client = CLIENT | Capability.COMPRESS | Capability.SSL | Capability.LOCAL_FILES | Capability.QUERY_ATTRIBUTES
    caps = upstream_capabilities(client, UPSTREAM_CAPS)
    assert not caps & FORBIDDEN
    assert caps & Capability.LOCAL_FILES and caps & Capability.DEPRECATE_EOF
    assert not caps & Capability.QUERY_ATTRIBUTES  # the upstream does not offer it
    assert caps & Capability.CONNECT_ATTRS and caps & Capability.CONNECT_WITH_DB
    # fe's login flags even when the client did not set them; relayed ones only when it did.
    bare = upstream_capabilities(Capability.PROTOCOL_41, UPSTREAM_CAPS)
    assert bare & Capability.PLUGIN_AUTH and not bare & Capability.MULTI_RESULTS
    assert relayable(UPSTREAM_CAPS) == UPSTREAM_CAPS & RELAYED


def test_forbidden_or_unoffered_flags_are_never_sent() -> None:
    protocol = greeted()
    for flag in (Capability.COMPRESS, Capability.ZSTD_COMPRESSION, Capability.SSL, Capability.QUERY_ATTRIBUTES):
        with pytest.raises(LocalProtocolError):
            protocol.handshake_response(caps_for(protocol) | flag, "svc", "pw", loopback=False)
    assert protocol.phase is Phase.HANDSHAKE


# ---- handshake response ----


def test_handshake_response_has_exactly_the_given_flags_and_attributes() -> None:
    protocol = greeted()
    caps = caps_for(protocol)
    attributes = {"program_name": "fe", "fe_user": "tom", "ünïcode": "välue"}
    data = protocol.handshake_response(caps, "svc", "pw", loopback=False, database="db1", attributes=attributes)
    assert data[3] == 1 and protocol.phase is Phase.AUTHENTICATION
    hello = messages.parse_client_hello(data[4:], 0xFFFFFFFF)
    assert isinstance(hello, messages.HandshakeResponse)
    assert hello.capabilities == caps and hello.user == "svc" and hello.database == "db1"
    assert hello.plugin == "caching_sha2_password" and hello.attributes == attributes
    assert hello.auth_response == pymysql_auth.scramble_caching_sha2(b"pw", NONCE)


def test_ssl_request_then_handshake_response_inside_tls() -> None:
    protocol = greeted()
    caps = caps_for(protocol)
    request = protocol.ssl_request(caps)
    assert request[:4] == b"\x20\x00\x00\x01" and protocol.phase is Phase.TLS
    parsed = messages.parse_client_hello(request[4:], 0xFFFFFFFF)
    assert isinstance(parsed, messages.SSLRequest) and parsed.capabilities == caps | Capability.SSL
    protocol.tls_established()
    data = protocol.handshake_response(caps, "svc", "pw", loopback=False)
    assert data[3] == 2
    hello = messages.parse_client_hello(data[4:], 0xFFFFFFFF)
    assert isinstance(hello, messages.HandshakeResponse) and hello.capabilities == caps | Capability.SSL


def test_no_tls_when_the_upstream_does_not_offer_it() -> None:
    protocol = greeted(mysql_greeting(caps=UPSTREAM_CAPS & ~Capability.SSL))
    with pytest.raises(LocalProtocolError, match="TLS"):
        protocol.ssl_request(caps_for(protocol))


# ---- authentication ----


def login(protocol: ClientProtocol, password: str = "pw", *, tls: bool = False, loopback: bool = False) -> int:
    if tls:
        protocol.ssl_request(caps_for(protocol))
        protocol.tls_established()
    protocol.handshake_response(caps_for(protocol), "svc", password, loopback=loopback)
    return 3 if tls else 2


def test_native_password_login() -> None:
    protocol = greeted(mariadb_greeting())
    data = protocol.handshake_response(caps_for(protocol), "svc", "secret", loopback=False)
    hello = messages.parse_client_hello(data[4:], 0xFFFFFFFF)
    assert isinstance(hello, messages.HandshakeResponse)
    assert hello.auth_response == pymysql_auth.scramble_native_password(b"secret", NONCE)
    protocol.receive_data(wire(messages.ok(status=Status.AUTOCOMMIT), 2))
    event = protocol.next_event()
    assert isinstance(event, LoginSucceeded) and protocol.phase is Phase.COMMAND
    assert protocol.status == Status.AUTOCOMMIT


@pytest.mark.parametrize("plugin", ["mysql_native_password", "caching_sha2_password"])
def test_an_empty_password_sends_an_empty_response(plugin: str) -> None:
    protocol = greeted(mysql_greeting(plugin))
    data = protocol.handshake_response(caps_for(protocol), "svc", "", loopback=False)
    hello = messages.parse_client_hello(data[4:], 0xFFFFFFFF)
    assert isinstance(hello, messages.HandshakeResponse) and hello.auth_response == b"" and hello.plugin == plugin


def test_caching_sha2_fast_path() -> None:
    protocol = greeted()
    seq = login(protocol)
    protocol.receive_data(wire(b"\x01\x03", seq) + wire(messages.ok(), seq + 1))
    assert isinstance(protocol.next_event(), LoginSucceeded)


def test_caching_sha2_full_authentication_over_tls_sends_the_password() -> None:
    protocol = greeted()
    seq = login(protocol, tls=True)
    protocol.receive_data(wire(b"\x01\x04", seq))
    event = protocol.next_event()
    assert isinstance(event, SendAuth) and event.data == wire(b"pw\x00", seq + 1)
    protocol.receive_data(wire(messages.ok(), seq + 2))
    assert isinstance(protocol.next_event(), LoginSucceeded)


def test_caching_sha2_full_authentication_over_a_unix_socket_sends_the_password() -> None:
    # A Unix socket is a secure transport to MySQL (as to libmysqlclient): the password, no TLS, no RSA.
    protocol = greeted(unix_socket=True)
    data = protocol.handshake_response(caps_for(protocol), "svc", "pw", loopback=True)
    hello = messages.parse_client_hello(data[4:], 0xFFFFFFFF)
    assert isinstance(hello, messages.HandshakeResponse) and not hello.capabilities & Capability.SSL
    protocol.receive_data(wire(b"\x01\x04", 2))
    event = protocol.next_event()
    assert isinstance(event, SendAuth) and event.data == wire(b"pw\x00", 3)
    protocol.receive_data(wire(messages.ok(), 4))
    assert isinstance(protocol.next_event(), LoginSucceeded) and not protocol.tls


def _rsa_key() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, pem


def _decrypt(key: rsa.RSAPrivateKey, ciphertext: bytes, nonce: bytes) -> bytes:
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    mixed = key.decrypt(ciphertext, oaep)
    return bytes(b ^ nonce[i % len(nonce)] for i, b in enumerate(mixed))


@pytest.mark.parametrize("loopback", [False, True])
def test_caching_sha2_full_authentication_without_tls_uses_the_servers_rsa_key(loopback: bool) -> None:
    key, pem = _rsa_key()
    protocol = greeted()
    seq = login(protocol, loopback=loopback)
    protocol.receive_data(wire(b"\x01\x04", seq))
    event = protocol.next_event()
    assert isinstance(event, SendAuth) and event.data == wire(b"\x02", seq + 1)  # the key, please
    protocol.receive_data(wire(b"\x01" + pem, seq + 2))
    event = protocol.next_event()
    assert isinstance(event, SendAuth) and event.data[3] == seq + 3
    assert _decrypt(key, event.data[4:], NONCE) == b"pw\x00"
    assert b"pw" not in event.data
    protocol.receive_data(wire(messages.ok(), seq + 4))
    assert isinstance(protocol.next_event(), LoginSucceeded)


def test_a_pinned_public_key_is_used_without_asking() -> None:
    key, pem = _rsa_key()
    protocol = greeted()
    protocol.handshake_response(caps_for(protocol), "svc", "pw", loopback=False, server_public_key=pem)
    protocol.receive_data(wire(b"\x01\x04", 2))
    event = protocol.next_event()
    assert isinstance(event, SendAuth) and _decrypt(key, event.data[4:], NONCE) == b"pw\x00"


def test_auth_switch_to_native_uses_the_new_nonce() -> None:
    nonce = b"N" * 20
    protocol = greeted()
    seq = login(protocol, "secret")
    protocol.receive_data(wire(b"\xfemysql_native_password\x00" + nonce + b"\x00", seq))
    event = protocol.next_event()
    assert isinstance(event, SendAuth)
    assert event.data == wire(pymysql_auth.scramble_native_password(b"secret", nonce), seq + 1)


@pytest.mark.parametrize(
    ("tls", "loopback", "allowed"), [(False, False, False), (False, True, True), (True, False, True)]
)
def test_cleartext_plugin_only_over_tls_or_to_loopback(tls: bool, loopback: bool, allowed: bool) -> None:
    protocol = greeted()
    seq = login(protocol, tls=tls, loopback=loopback)
    protocol.receive_data(wire(b"\xfemysql_clear_password\x00", seq))
    if allowed:
        event = protocol.next_event()
        assert isinstance(event, SendAuth) and event.data == wire(b"pw\x00", seq + 1)
    else:
        with pytest.raises(UpstreamError) as caught:
            protocol.next_event()
        assert caught.value.reason is Reason.INSECURE and protocol.phase is Phase.CLOSED


def test_unknown_plugins_and_old_passwords_are_refused() -> None:
    protocol = greeted()
    seq = login(protocol)
    protocol.receive_data(wire(b"\xfeclient_ed25519\x00" + NONCE, seq))
    with pytest.raises(UpstreamError, match="client_ed25519") as caught:
        protocol.next_event()
    assert caught.value.reason is Reason.PROTOCOL
    protocol = greeted()
    seq = login(protocol)
    protocol.receive_data(wire(b"\xfe", seq))
    with pytest.raises(UpstreamError, match=r"pre-4\.1"):
        protocol.next_event()


def test_refused_login() -> None:
    protocol = greeted()
    seq = login(protocol)
    protocol.receive_data(wire(messages.err(1045, "28000", "Access denied for user 'svc'@'h'"), seq))
    event = protocol.next_event()
    assert isinstance(event, LoginRefused) and event.error.code == 1045 and event.error.sqlstate == "28000"
    assert protocol.phase is Phase.CLOSED


def test_out_of_order_packets_during_the_login() -> None:
    protocol = greeted()
    login(protocol)
    protocol.receive_data(wire(messages.ok(), 5))
    with pytest.raises(UpstreamProtocolError, match="sequence"):
        protocol.next_event()


def test_bytes_after_the_logins_ok_fail_the_next_command() -> None:
    protocol = greeted()
    seq = login(protocol)
    protocol.receive_data(wire(messages.ok(), seq) + b"\x01")
    assert isinstance(protocol.next_event(), LoginSucceeded)
    with pytest.raises(UpstreamProtocolError, match="between commands"):
        protocol.command(b"\x0e")
    assert protocol.phase is Phase.CLOSED


# ---- command phase ----


def test_change_user_layout_and_login_events() -> None:
    protocol = logged_in()
    data = protocol.change_user("other", "pw2", loopback=False, database="db2", attributes={"fe_user": "ann"})
    assert data[3] == 0 and protocol.phase is Phase.AUTHENTICATION
    change = messages.parse_change_user(data[4:], protocol.capabilities)
    assert (change.user, change.database, change.plugin) == ("other", "db2", "caching_sha2_password")
    assert change.attributes == {"fe_user": "ann"}
    assert change.auth_response == pymysql_auth.scramble_caching_sha2(b"pw2", NONCE)
    protocol.receive_data(wire(b"\x01\x03", 1) + wire(messages.ok(status=Status.AUTOCOMMIT), 2))
    assert isinstance(protocol.next_event(), LoginSucceeded) and protocol.phase is Phase.COMMAND


def test_command_response_and_the_bytes_held_back() -> None:
    protocol = logged_in()
    assert protocol.command(b"\x03SELECT 1") == wire(b"\x03SELECT 1", 0)
    response = wire(b"\x01", 1) + wire(messages.column_definition("1"), 2) + wire(b"\x011", 3)
    end = wire(messages.ok(status=Status.AUTOCOMMIT | Status.IN_TRANS, header=0xFE), 4)
    assert protocol.response_data(response + end[:2]) == response  # a header's start waits for the rest
    assert protocol.busy
    assert protocol.response_data(end[2:]) == end
    assert not protocol.busy and protocol.in_transaction
    assert protocol.response is not None and protocol.response.outcome is Outcome.END


def test_long_commands_go_in_continuation_packets() -> None:
    protocol = logged_in()
    payload = b"\x03" + b"x" * (1 << 24)
    data = protocol.command(payload)
    assert len(data) == len(payload) + 8 and data[3] == 0 and data[4 + 0xFFFFFF + 3] == 1
    assert protocol.response is not None and protocol.response.next_seq == 2


def test_commands_that_have_their_own_exchange() -> None:
    protocol = logged_in()
    with pytest.raises(UnsupportedCommand):
        protocol.command(b"\x11user\x00")
    with pytest.raises(UnsupportedCommand):
        protocol.command(b"\x01")
    assert protocol.quit() == wire(b"\x01", 0) and protocol.phase is Phase.CLOSED


def test_no_command_while_a_response_is_in_progress() -> None:
    protocol = logged_in()
    protocol.command(b"\x03SELECT 1")
    with pytest.raises(LocalProtocolError, match="in progress"):
        protocol.command(b"\x0e")
    with pytest.raises(LocalProtocolError):
        protocol.change_user("x", "y", loopback=False)


def test_an_unsolicited_err_between_commands_closes() -> None:
    protocol = logged_in()
    protocol.command(bytes((Com.PING,)))
    ok = wire(messages.ok(), 1)
    goodbye = wire(messages.err(1927, "70100", "Connection was killed"), 0)
    assert protocol.response_data(ok + goodbye) == ok
    with pytest.raises(UpstreamError, match="Connection was killed") as caught:
        protocol.command(bytes((Com.PING,)))
    assert caught.value.reason is Reason.CLOSED and protocol.phase is Phase.CLOSED


def test_a_local_infile_request_the_client_did_not_allow_is_never_passed_on() -> None:
    protocol = logged_in()
    protocol.command(b"\x03SELECT 1")
    with pytest.raises(UpstreamProtocolError, match="LOCAL_FILES"):
        protocol.response_data(wire(b"\xfb/etc/passwd", 1))
    assert protocol.phase is Phase.CLOSED


def test_local_infile_through_the_protocol() -> None:
    protocol = logged_in(local_files=True)
    protocol.command(b"\x03LOAD DATA LOCAL INFILE 'f.csv' INTO TABLE t")
    request = wire(b"\xfbf.csv", 1)
    assert protocol.response_data(request) == request and protocol.busy
    assert protocol.infile_packet(b"1,2\n") == wire(b"1,2\n", 2)
    assert protocol.infile_packet(b"") == wire(b"", 3)
    ok = wire(messages.ok(affected_rows=1), 4)
    assert protocol.response_data(ok) == ok and not protocol.busy


def test_nothing_is_read_before_the_greeting_is_handled() -> None:
    protocol = ClientProtocol()
    assert protocol.next_event() is NEED_DATA
    protocol.receive_data(wire(mysql_greeting(), 0)[:10])
    assert protocol.next_event() is NEED_DATA
