"""The sans-IO ServerProtocol: phases, sequence ids (continuation packets included), and local protocol errors for
packets the phase does not allow."""

from __future__ import annotations

import pytest

from fe.mysql import messages
from fe.mysql.codec import frame, lenenc_bytes
from fe.mysql.constants import MAX_PAYLOAD, SERVER_CAPABILITIES, Capability, Command
from fe.mysql.errors import ErrorCode
from fe.mysql.protocol import (
    NEED_DATA,
    AuthReply,
    ChangeUserRequested,
    ClientProtocolError,
    CommandReceived,
    HandshakeReceived,
    LocalProtocolError,
    Phase,
    QuitRequested,
    ServerProtocol,
    SslRequested,
)

CAPS = SERVER_CAPABILITIES | Capability.SSL
CLIENT_CAPS = (
    Capability.LONG_PASSWORD | Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH
    | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA | Capability.DEPRECATE_EOF
)  # fmt: skip


def wire(payload: bytes, seq: int) -> bytes:
    return frame(payload, seq)[0]


def handshake_response(user: bytes = b"tom", caps: int = CLIENT_CAPS, auth: bytes = b"") -> bytes:
    head = caps.to_bytes(4, "little") + (1 << 24).to_bytes(4, "little") + bytes((255,)) + bytes(23)
    return head + user + b"\x00" + lenenc_bytes(auth) + b"caching_sha2_password\x00"


def ssl_request() -> bytes:
    caps = CLIENT_CAPS | Capability.SSL
    return caps.to_bytes(4, "little") + (1 << 24).to_bytes(4, "little") + bytes((255,)) + bytes(23)


def header_seq(data: bytes) -> int:
    return data[3]


def greeted(preauth: int = 32 * 1024, limit: int = 64 * 1024 * 1024) -> ServerProtocol:
    protocol = ServerProtocol(preauth, limit, CAPS)
    greeting = protocol.greeting(7, b"n" * 20, "9.2.0-test", "caching_sha2_password", 2)
    assert header_seq(greeting) == 0 and protocol.phase is Phase.CLIENT_HELLO
    return protocol


def logged_in() -> ServerProtocol:
    protocol = greeted()
    protocol.receive_data(wire(handshake_response(), 1))
    assert isinstance(protocol.next_event(), HandshakeReceived)
    protocol.login_ok(2)
    return protocol


def test_a_plain_login_numbers_every_packet_in_turn() -> None:
    protocol = greeted()
    assert protocol.next_event() is NEED_DATA
    protocol.receive_data(wire(handshake_response(), 1))
    event = protocol.next_event()
    assert isinstance(event, HandshakeReceived) and event.response.user == "tom"
    assert protocol.phase is Phase.AUTHENTICATION
    switch = protocol.auth_packet(messages.auth_switch("mysql_native_password", b"n" * 20 + b"\x00"))
    assert header_seq(switch) == 2
    protocol.receive_data(wire(b"p" * 20, 3))
    assert protocol.next_event() == AuthReply(b"p" * 20)
    ok = protocol.login_ok(2)
    assert header_seq(ok) == 4 and protocol.phase is Phase.COMMAND


def test_tls_upgrade_hands_trailing_bytes_to_tls_and_continues_at_sequence_two() -> None:
    protocol = greeted()
    client_hello = b"\x16\x03\x01\x02\x00" + b"\x01" * 40
    protocol.receive_data(wire(ssl_request(), 1) + client_hello)
    assert isinstance(protocol.next_event(), SslRequested)
    assert protocol.phase is Phase.TLS
    assert protocol.take_unparsed() == client_hello
    assert protocol.next_event() is NEED_DATA  # during the TLS handshake nothing is read as packets
    protocol.tls_established()
    protocol.receive_data(wire(handshake_response(caps=CLIENT_CAPS | Capability.SSL), 2))
    assert isinstance(protocol.next_event(), HandshakeReceived)
    assert header_seq(protocol.login_ok(2)) == 3


def test_a_second_ssl_request_is_a_bad_handshake() -> None:
    protocol = greeted()
    protocol.receive_data(wire(ssl_request(), 1))
    assert isinstance(protocol.next_event(), SslRequested)
    protocol.tls_established()
    protocol.receive_data(wire(ssl_request(), 2))
    with pytest.raises(ClientProtocolError) as caught:
        protocol.next_event()
    assert caught.value.code == ErrorCode.HANDSHAKE and caught.value.sqlstate == "08S01"
    err = protocol.fail(caught.value)
    assert header_seq(err) == 3 and protocol.phase is Phase.CLOSED


def test_wrong_sequence_id_in_the_handshake_is_out_of_order() -> None:
    protocol = greeted()
    protocol.receive_data(wire(handshake_response(), 5))
    with pytest.raises(ClientProtocolError) as caught:
        protocol.next_event()
    assert caught.value.code == ErrorCode.NET_PACKETS_OUT_OF_ORDER and caught.value.reason == "sequence_error"
    assert header_seq(protocol.fail(caught.value)) == 6


def test_each_command_starts_at_sequence_zero_and_its_reply_follows() -> None:
    protocol = logged_in()
    for _ in range(3):
        protocol.receive_data(wire(bytes((Command.QUERY,)) + b"SELECT 1", 0))
        event = protocol.next_event()
        assert event == CommandReceived(Command.QUERY, b"SELECT 1")
        reply = protocol.reply([b"\x01", b"col", b"row", b"\xfe\x00\x00\x02\x00\x00\x00"])
        seqs = []
        offset = 0
        while offset < len(reply):
            length = int.from_bytes(reply[offset : offset + 3], "little")
            seqs.append(reply[offset + 3])
            offset += 4 + length
        assert seqs == [1, 2, 3, 4]


def test_a_command_with_a_nonzero_sequence_id_is_out_of_order() -> None:
    protocol = logged_in()
    protocol.receive_data(wire(bytes((Command.PING,)), 3))
    with pytest.raises(ClientProtocolError) as caught:
        protocol.next_event()
    assert header_seq(protocol.fail(caught.value)) == 4


def test_continuation_packets_have_their_sequence_ids_checked() -> None:
    protocol = logged_in()
    payload = bytes((Command.QUERY,)) + b"x" * MAX_PAYLOAD  # one full packet and a short one
    data = bytearray(frame(payload, 0)[0])
    assert data[3] == 0 and data[4 + MAX_PAYLOAD + 3] == 1
    data[4 + MAX_PAYLOAD + 3] = 5  # the continuation claims the wrong id
    protocol.receive_data(bytes(data))
    with pytest.raises(ClientProtocolError) as caught:
        protocol.next_event()
    assert caught.value.code == ErrorCode.NET_PACKETS_OUT_OF_ORDER


def test_continuation_packets_in_order_are_joined() -> None:
    protocol = logged_in()
    payload = bytes((Command.QUERY,)) + b"x" * (MAX_PAYLOAD + 10)
    protocol.receive_data(frame(payload, 0)[0])
    event = protocol.next_event()
    assert isinstance(event, CommandReceived) and len(event.body) == MAX_PAYLOAD + 10
    reply = protocol.reply([messages.ok()])
    assert header_seq(reply) == 2  # after the two packets of the command


def test_packets_over_the_preauth_limit_are_refused_before_login_but_not_after() -> None:
    protocol = greeted(preauth=1024, limit=1 << 20)
    protocol.receive_data(b"\x00\x08\x00\x01")  # announces 2 KiB
    with pytest.raises(ClientProtocolError) as caught:
        protocol.next_event()
    assert caught.value.code == ErrorCode.NET_PACKET_TOO_LARGE
    protocol = logged_in()
    protocol.receive_data(wire(bytes((Command.QUERY,)) + b"x" * 4096, 0))
    assert isinstance(protocol.next_event(), CommandReceived)


def test_change_user_goes_back_to_authentication_and_its_ok_continues_the_sequence() -> None:
    protocol = logged_in()
    change = bytes((Command.CHANGE_USER,)) + b"ann\x00" + b"\x00" + b"\x00" + (255).to_bytes(2, "little")
    change += b"caching_sha2_password\x00"
    protocol.receive_data(wire(change, 0))
    event = protocol.next_event()
    assert isinstance(event, ChangeUserRequested) and event.change.user == "ann"
    assert protocol.phase is Phase.AUTHENTICATION
    assert header_seq(protocol.auth_packet(messages.auth_switch("caching_sha2_password", b"n" * 21))) == 1
    protocol.receive_data(wire(b"secret", 2))
    assert protocol.next_event() == AuthReply(b"secret")
    assert header_seq(protocol.login_ok(2)) == 3 and protocol.phase is Phase.COMMAND


def test_a_failed_login_closes_the_protocol() -> None:
    protocol = greeted()
    protocol.receive_data(wire(handshake_response(), 1))
    protocol.next_event()
    err = protocol.login_denied(ErrorCode.ACCESS_DENIED, "Access denied")
    assert header_seq(err) == 2 and b"#28000" in err
    assert protocol.phase is Phase.CLOSED
    protocol.receive_data(wire(bytes((Command.QUERY,)) + b"SELECT 1", 0))
    assert protocol.next_event() is NEED_DATA  # nothing after a failed login is ever read
    with pytest.raises(LocalProtocolError):
        protocol.reply([messages.ok()])


def test_quit_closes() -> None:
    protocol = logged_in()
    protocol.receive_data(wire(bytes((Command.QUIT,)), 0))
    assert isinstance(protocol.next_event(), QuitRequested)
    assert protocol.phase is Phase.CLOSED


def test_an_idle_timeout_error_between_commands_is_numbered_from_zero() -> None:
    protocol = logged_in()
    err = protocol.close_with(ErrorCode.CLIENT_INTERACTION_TIMEOUT, "inactive")
    assert header_seq(err) == 0 and protocol.phase is Phase.CLOSED


@pytest.mark.parametrize(
    ("phase_setup", "send"),
    [
        ("greeted", lambda p: p.login_ok(2)),  # no OK before the handshake response
        ("greeted", lambda p: p.reply([messages.ok()])),
        ("greeted", lambda p: p.auth_packet(b"\x01\x03")),
        ("greeted", lambda p: p.greeting(1, b"n" * 20, "v", "caching_sha2_password", 2)),
        ("logged_in", lambda p: p.auth_packet(b"\x01\x03")),  # no auth packets in the command phase
        ("logged_in", lambda p: p.login_ok(2)),
        ("logged_in", lambda p: p.reply([messages.ok()])),  # no reply without a command
        ("logged_in", lambda p: p.tls_established()),
        ("logged_in", lambda p: p.refuse(ErrorCode.CON_COUNT, "Too many connections")),
    ],
)
def test_sending_what_the_phase_does_not_allow_is_a_local_error(phase_setup: str, send: object) -> None:
    protocol = greeted() if phase_setup == "greeted" else logged_in()
    with pytest.raises(LocalProtocolError):
        send(protocol)  # type: ignore[operator]


def test_an_auth_packet_must_be_more_data_or_a_switch() -> None:
    protocol = greeted()
    protocol.receive_data(wire(handshake_response(), 1))
    protocol.next_event()
    with pytest.raises(LocalProtocolError):
        protocol.auth_packet(messages.ok())


def test_a_refusal_replaces_the_greeting() -> None:
    protocol = ServerProtocol(1024, 1024, CAPS)
    err = protocol.refuse(ErrorCode.CON_COUNT, "Too many connections")
    assert header_seq(err) == 0 and err[4:7] == b"\xff\x10\x04" and protocol.phase is Phase.CLOSED


def test_an_empty_command_packet_is_malformed() -> None:
    protocol = logged_in()
    protocol.receive_data(wire(b"", 0))
    with pytest.raises(ClientProtocolError) as caught:
        protocol.next_event()
    assert caught.value.code == ErrorCode.MALFORMED_PACKET
    assert header_seq(protocol.fail(caught.value)) == 1
