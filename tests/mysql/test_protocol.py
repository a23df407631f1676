"""The sans-IO protocol layer alone: framing, message parsing and building, and fuzzed parsers."""

from __future__ import annotations

import contextlib
import random
import struct

import pytest

from fe.mysql import messages
from fe.mysql.codec import Cursor, MalformedPacket, PacketTooLarge, frame, lenenc_bytes, lenenc_int
from fe.mysql.constants import MAX_PAYLOAD, SERVER_CAPABILITIES, Capability
from fe.mysql.framing import PacketDecoder

CAPS = int(SERVER_CAPABILITIES | Capability.SSL)


def wire(payload: bytes, seq: int) -> bytes:
    return frame(payload, seq)[0]


def test_decoder_reassembles_packets_fed_byte_by_byte() -> None:
    decoder = PacketDecoder(1024)
    data = wire(b"hello", 0) + wire(b"", 1) + wire(b"world", 2)
    for byte in data:
        decoder.feed(bytes((byte,)))
    packets = [decoder.next_packet() for _ in range(3)]
    assert [(p.seq, p.next_seq, p.payload) for p in packets if p] == [(0, 1, b"hello"), (1, 2, b""), (2, 3, b"world")]
    assert decoder.next_packet() is None


def test_decoder_joins_continuation_packets() -> None:
    payload = bytes(range(256)) * (MAX_PAYLOAD // 256 + 3)
    data, next_seq = frame(payload, 7)
    assert next_seq == 9
    decoder = PacketDecoder(len(payload))
    decoder.feed(data)
    packet = decoder.next_packet()
    assert packet is not None and packet.payload == payload and packet.seq == 7 and packet.next_seq == 9


def test_decoder_refuses_an_oversized_header_before_the_body_arrives() -> None:
    decoder = PacketDecoder(32 * 1024)
    decoder.feed(b"\x00\x00\x10\x01")
    with pytest.raises(PacketTooLarge):
        decoder.next_packet()


def test_bytes_after_a_packet_stay_unparsed_for_tls() -> None:
    decoder = PacketDecoder(32 * 1024)
    client_hello = b"\x16\x03\x01\x02\x00" + b"\x01" * 40  # would read as a 66 KiB packet header
    decoder.feed(wire(b"x" * 32, 1) + client_hello)
    packet = decoder.next_packet()
    assert packet is not None and packet.payload == b"x" * 32
    assert decoder.take_unparsed() == client_hello
    assert decoder.next_packet() is None


@pytest.mark.parametrize("value", [0, 250, 251, 0xFFFF, 0x10000, 0xFFFFFF, 0x1000000, 2**63])
def test_lenenc_round_trip(value: int) -> None:
    assert Cursor(lenenc_int(value)).lenenc_int() == value


def handshake_response(
    user: bytes = b"tom", auth: bytes = b"\x01\x05token", caps: int = CAPS & ~Capability.SSL, attrs: bytes = b""
) -> bytes:
    body = struct.pack("<IIB", caps, 1 << 24, 255) + b"\x00" * 23 + user + b"\x00" + lenenc_bytes(auth)
    body += b"db\x00" + b"authentication_openid_connect_client\x00"
    return body + lenenc_bytes(attrs)


def test_parse_ssl_request_and_handshake_response() -> None:
    ssl_request = struct.pack("<IIB", CAPS, 1 << 24, 255) + b"\x00" * 23
    assert isinstance(messages.parse_client_hello(ssl_request, CAPS), messages.SSLRequest)
    attrs = lenenc_bytes(b"_client_name") + lenenc_bytes(b"libmysql")
    hello = messages.parse_client_hello(handshake_response(attrs=attrs), CAPS)
    assert isinstance(hello, messages.HandshakeResponse)
    assert (hello.user, hello.auth_response, hello.database) == ("tom", b"\x01\x05token", "db")
    assert hello.plugin == "authentication_openid_connect_client"
    assert hello.attributes == {"_client_name": "libmysql"}


def test_capabilities_are_intersected() -> None:
    hello = messages.parse_client_hello(handshake_response(caps=0xFFFFFFFF & ~Capability.SSL), CAPS)
    assert isinstance(hello, messages.HandshakeResponse)
    assert not hello.capabilities & Capability.QUERY_ATTRIBUTES  # offered by the client, never by us


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x00" * 10, handshake_response()[:40], struct.pack("<IIB", 0, 0, 0) + b"\x00" * 23 + b"u\x00"],
    ids=["empty", "short", "cut-in-user", "pre-4.1"],
)
def test_malformed_handshake_responses(payload: bytes) -> None:
    with pytest.raises(MalformedPacket):
        messages.parse_client_hello(payload, CAPS)


def test_token_packet() -> None:
    token = b"e" * 1408
    assert messages.parse_token_packet(b"\x01" + lenenc_bytes(token)) == token
    for bad in (b"", b"\x02\x01x", b"\x01\x05abc", b"\x01\x01xy", b"\x01\x00"):
        with pytest.raises(MalformedPacket):
            messages.parse_token_packet(bad)


def test_result_set_terminators() -> None:
    classic = messages.result_set([("a", 0xFD)], [["1"], [None]], status=2, deprecate_eof=False)
    assert classic[2][:1] == b"\xfe" and classic[-1][:1] == b"\xfe" and len(classic) == 6
    modern = messages.result_set([("a", 0xFD)], [["1"]], status=2, deprecate_eof=True)
    assert len(modern) == 4 and modern[-1][:1] == b"\xfe" and len(modern[-1]) >= 7
    assert messages.text_row([None, 5, b"x"]) == b"\xfb\x015\x01x"


def test_greeting_layout() -> None:
    greeting = messages.greeting(7, b"A" * 20, CAPS, "9.2.0-fe", "caching_sha2_password", 2)
    cur = Cursor(greeting)
    assert cur.int1() == 10 and cur.nul_bytes() == b"9.2.0-fe" and cur.int4() == 7
    assert cur.take(8) == b"A" * 8 and cur.int1() == 0
    low, _charset, _status, high, auth_len = cur.int2(), cur.int1(), cur.int2(), cur.int2(), cur.int1()
    assert low | high << 16 == CAPS and auth_len == 21
    cur.take(10)
    assert cur.nul_bytes() == b"A" * 12 and cur.nul_bytes() == b"caching_sha2_password"


def test_fuzzed_parsers_raise_only_malformed_packet() -> None:
    rng = random.Random(20261123)
    seeds = [handshake_response(), b"\x11tom\x00\x00db\x00\xff\x00plugin\x00", b"\x01" + lenenc_bytes(b"tok")]
    parsers = [
        lambda p: messages.parse_client_hello(p, CAPS),
        lambda p: messages.parse_change_user(p, CAPS),
        messages.parse_token_packet,
    ]
    for _ in range(6000):
        seed = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            action = rng.random()
            if action < 0.4 and seed:
                seed[rng.randrange(len(seed))] = rng.randrange(256)
            elif action < 0.7:
                del seed[rng.randrange(len(seed) + 1) :]
            else:
                seed[rng.randrange(len(seed) + 1) : 0] = rng.randbytes(rng.randint(1, 8))
        for parse in parsers:
            with contextlib.suppress(MalformedPacket):
                parse(bytes(seed))


def test_fuzzed_decoder_never_misbehaves() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        decoder = PacketDecoder(4096)
        try:
            decoder.feed(rng.randbytes(rng.randint(0, 64)))
            while decoder.next_packet() is not None:
                pass
        except PacketTooLarge:
            pass
