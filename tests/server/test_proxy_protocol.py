"""The PROXY protocol parser (v1 and v2 as HAProxy sends them) and the proxy_protocol_from policy: valid and
malformed headers, byte-by-byte feeding, what is left for the MySQL protocol, and random bytes."""

from __future__ import annotations

import ipaddress
import random
import struct

import pytest

from fe.server.proxy_protocol import (
    NEED_DATA,
    NO_HEADER,
    V2_SIGNATURE,
    ProxyCommand,
    ProxyHeader,
    ProxyHeaderReader,
    ProxyPolicy,
    ProxyPolicyError,
    ProxyProtocolError,
    crc32c,
    parse_proxy_header,
    parse_proxy_networks,
    starts_with_proxy_signature,
)

# A MySQL client's first packet: a 3-byte length, sequence id 1, then the handshake response (or SSLRequest).
MYSQL_FIRST_PACKET = b"\x20\x00\x00\x01" + bytes(range(32))


def v2(command: int, family: int, body: bytes, *, version: int = 2, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return V2_SIGNATURE + bytes([version << 4 | command, family]) + struct.pack("!H", size) + body


def ports(sport: int, dport: int) -> bytes:
    return struct.pack("!HH", sport, dport)


def inet4(source: str, destination: str, sport: int, dport: int) -> bytes:
    return ipaddress.IPv4Address(source).packed + ipaddress.IPv4Address(destination).packed + ports(sport, dport)


def inet6(source: str, destination: str, sport: int, dport: int) -> bytes:
    return ipaddress.IPv6Address(source).packed + ipaddress.IPv6Address(destination).packed + ports(sport, dport)


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value


def with_crc32c(command: int, family: int, body: bytes, *, corrupt: bool = False) -> bytes:
    header = v2(command, family, body + tlv(0x03, b"\x00\x00\x00\x00"))
    checksum = crc32c(header) ^ (1 if corrupt else 0)
    return header[:-4] + struct.pack("!I", checksum)


FFFF = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
# The longest v1 header the specification allows (107 bytes), and the longest with addresses (104).
MAX_V1 = f"PROXY UNKNOWN {FFFF} {FFFF} 65535 65535\r\n".encode()
MAX_V1_TCP6 = f"PROXY TCP6 {FFFF} {FFFF} 65535 65535\r\n".encode()
UNIX_PATHS = b"/run/haproxy.sock".ljust(108, b"\x00") + b"/run/fe.sock".ljust(108, b"\x00")
# What HAProxy may add after the addresses: ALPN, authority, unique id, SSL with sub-TLVs, NOOP padding.
HAPROXY_TLVS = (
    tlv(0x01, b"mysql")
    + tlv(0x02, b"db.example")
    + tlv(0x05, b"u" * 128)
    + tlv(0x20, b"\x07\x00\x00\x00\x00" + tlv(0x21, b"TLSv1.3"))
    + tlv(0x04, b"")
)
PROXY, LOCAL = ProxyCommand.PROXY, ProxyCommand.LOCAL

VALID: list[tuple[bytes, ProxyHeader]] = [
    (
        b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 9030\r\n",
        ProxyHeader(1, PROXY, ("192.0.2.1", 56324), ("198.51.100.2", 9030), 46),
    ),
    (
        b"PROXY TCP6 2001:db8::1 2001:db8::2 0 65535\r\n",
        ProxyHeader(1, PROXY, ("2001:db8::1", 0), ("2001:db8::2", 65535), 44),
    ),
    (
        b"PROXY TCP6 ::ffff:10.1.2.3 ::ffff:10.0.0.1 40000 9030\r\n",
        ProxyHeader(1, PROXY, ("10.1.2.3", 40000), ("10.0.0.1", 9030), 55),
    ),
    (
        b"PROXY TCP6 2001:DB8:0:0:0:0:0:1 2001:db8::2 1 2\r\n",
        ProxyHeader(1, PROXY, ("2001:db8::1", 1), ("2001:db8::2", 2), 49),
    ),
    (MAX_V1_TCP6, ProxyHeader(1, PROXY, (FFFF, 65535), (FFFF, 65535), 104)),
    (MAX_V1, ProxyHeader(1, PROXY, None, None, 107)),
    (b"PROXY UNKNOWN\r\n", ProxyHeader(1, PROXY, None, None, 15)),
    (
        v2(1, 0x11, inet4("192.0.2.1", "198.51.100.2", 56324, 9030)),
        ProxyHeader(2, PROXY, ("192.0.2.1", 56324), ("198.51.100.2", 9030), 28),
    ),
    (
        v2(1, 0x21, inet6("2001:db8::1", "2001:db8::2", 1, 2)),
        ProxyHeader(2, PROXY, ("2001:db8::1", 1), ("2001:db8::2", 2), 52),
    ),
    (v2(1, 0x21, inet6("::ffff:192.0.2.7", "::1", 5, 6)), ProxyHeader(2, PROXY, ("192.0.2.7", 5), ("::1", 6), 52)),
    (
        v2(1, 0x11, inet4("0.0.0.0", "255.255.255.255", 0, 0)),
        ProxyHeader(2, PROXY, ("0.0.0.0", 0), ("255.255.255.255", 0), 28),
    ),
    # HAProxy's health checks: LOCAL, unspecified family, no addresses.
    (v2(0, 0x00, b""), ProxyHeader(2, LOCAL, None, None, 16)),
    # LOCAL ignores whatever addresses come with it.
    (v2(0, 0x11, inet4("192.0.2.1", "192.0.2.2", 1, 2)), ProxyHeader(2, LOCAL, None, None, 28)),
    (v2(1, 0x00, b""), ProxyHeader(2, PROXY, None, None, 16)),
    (v2(1, 0x31, UNIX_PATHS), ProxyHeader(2, PROXY, None, None, 232)),
    (
        v2(1, 0x11, inet4("10.9.8.7", "10.0.0.1", 1234, 9030) + HAPROXY_TLVS),
        ProxyHeader(2, PROXY, ("10.9.8.7", 1234), ("10.0.0.1", 9030), 201),
    ),
    (
        with_crc32c(1, 0x11, inet4("10.9.8.7", "10.0.0.1", 1234, 9030)),
        ProxyHeader(2, PROXY, ("10.9.8.7", 1234), ("10.0.0.1", 9030), 35),
    ),
]

MALFORMED: list[tuple[bytes, str]] = [
    (b"GET / HTTP/1.1\r\n\r\n", "expected a PROXY protocol header"),
    (b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "expected a PROXY protocol header"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "byte"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", "byte"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\t2\r\n", "byte"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x00\r\n", "byte"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \xc3\xa9\r\n", "byte"),
    (b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "expected 'PROXY TCP4"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "expected 'PROXY TCP4"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "expected 'PROXY TCP4"),
    (b"PROXY \r\n", "unknown protocol"),
    (b"PROXY\r\n", "expected a PROXY protocol header"),
    (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "unknown protocol"),
    (b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", "unknown protocol"),
    (b"PROXY UNKNOWNX\r\n", "unknown protocol"),
    (b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "unknown protocol"),
    (b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "not an IPv4 address"),
    (b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "not an IPv4 address"),
    (b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "not an IPv4 address"),
    (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "not an IPv4 address"),
    (b"PROXY TCP4 1.2.3.4 example.com 1 2\r\n", "not an IPv4 address"),
    (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "not an IPv6 address"),
    (b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "not an IPv6 address"),
    (b"PROXY TCP6 ::1::2 ::1 1 2\r\n", "not an IPv6 address"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "not a port"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", "not a port"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "not a port"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", "not a port"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n", "not a port"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999999999999999999\r\n", "not a port"),
    (b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n", "no CRLF within 107 bytes"),
    (MAX_V1[:-2] + b"0\r\n", "no CRLF within 107 bytes"),
    (v2(1, 0x11, inet4("1.2.3.4", "5.6.7.8", 1, 2), version=1), "unsupported version 1"),
    (v2(1, 0x11, inet4("1.2.3.4", "5.6.7.8", 1, 2), version=3), "unsupported version 3"),
    (v2(2, 0x11, inet4("1.2.3.4", "5.6.7.8", 1, 2)), "unknown command 2"),
    (v2(15, 0x11, inet4("1.2.3.4", "5.6.7.8", 1, 2)), "unknown command 15"),
    (v2(1, 0x13, inet4("1.2.3.4", "5.6.7.8", 1, 2)), "unknown address family and protocol 0x13"),
    (v2(1, 0x10, inet4("1.2.3.4", "5.6.7.8", 1, 2)), "unknown address family and protocol 0x10"),
    (v2(1, 0x41, inet4("1.2.3.4", "5.6.7.8", 1, 2)), "unknown address family and protocol 0x41"),
    (v2(0, 0x01, b""), "unknown address family and protocol 0x01"),
    (v2(1, 0x12, inet4("1.2.3.4", "5.6.7.8", 1, 2)), "datagram"),
    (v2(1, 0x22, inet6("::1", "::2", 1, 2)), "datagram"),
    (v2(1, 0x11, inet4("1.2.3.4", "5.6.7.8", 1, 2)[:11]), "11 bytes of addresses"),
    (v2(1, 0x21, inet4("1.2.3.4", "5.6.7.8", 1, 2)), "needs 36"),
    (v2(0, 0x11, b""), "needs 12"),
    (v2(1, 0x31, UNIX_PATHS[:200]), "needs 216"),
    (v2(1, 0x11, inet4("1.2.3.4", "5.6.7.8", 1, 2) + b"\x01"), "truncated TLV"),
    (v2(1, 0x11, inet4("1.2.3.4", "5.6.7.8", 1, 2) + b"\x01\x00"), "truncated TLV"),
    (v2(1, 0x11, inet4("1.2.3.4", "5.6.7.8", 1, 2) + b"\x01\x00\x05abcd"), "overruns the header"),
    (v2(0, 0x00, b"\x02\xff\xff"), "overruns the header"),
    (with_crc32c(1, 0x11, inet4("1.2.3.4", "5.6.7.8", 1, 2), corrupt=True), "CRC32C checksum mismatch"),
    (v2(1, 0x11, inet4("1.2.3.4", "5.6.7.8", 1, 2) + tlv(0x03, b"abc")), "must hold 4 bytes"),
    (v2(1, 0x11, inet4("1.2.3.4", "5.6.7.8", 1, 2) + tlv(0x01, b"x" * 4080)), "at most 4096"),
    (V2_SIGNATURE + b"\x21\x11\xff\xff", "header of 65551 bytes"),
    (b"\r\n\r\n\x00\r\nQUIZ\n", "expected a PROXY protocol header"),
]


def feed_bytewise(reader: ProxyHeaderReader, data: bytes) -> object:
    """Feed one byte at a time; the first answer that is not NEED_DATA, or NEED_DATA if none."""
    for index in range(len(data)):
        result = reader.feed(data[index : index + 1])
        if result is not NEED_DATA:
            return result
    return NEED_DATA


@pytest.mark.parametrize(("wire", "expected"), VALID)
def test_valid_header(wire: bytes, expected: ProxyHeader) -> None:
    assert parse_proxy_header(wire) == expected
    assert parse_proxy_header(wire + MYSQL_FIRST_PACKET) == expected
    assert expected.length == len(wire)


@pytest.mark.parametrize(("wire", "expected"), VALID)
def test_valid_header_fed_byte_by_byte(wire: bytes, expected: ProxyHeader) -> None:
    reader = ProxyHeaderReader(expect_header=True)
    for index, byte in enumerate(wire):
        result = reader.feed(bytes([byte]))
        if index < len(wire) - 1:
            assert result is NEED_DATA, index
    assert result == expected
    assert reader.rest == b""


@pytest.mark.parametrize(("wire", "expected"), VALID)
def test_bytes_after_the_header_go_on_at_every_split(wire: bytes, expected: ProxyHeader) -> None:
    data = wire + MYSQL_FIRST_PACKET
    for split in range(1, len(data)):
        reader = ProxyHeaderReader(expect_header=True)
        first = reader.feed(data[:split])
        result = first if first is not NEED_DATA else reader.feed(data[split:])
        assert result == expected
        fed_when_complete = split if split >= len(wire) else len(data)
        assert reader.rest == data[len(wire) : fed_when_complete]


@pytest.mark.parametrize(("wire", "reason"), MALFORMED)
def test_malformed_header(wire: bytes, reason: str) -> None:
    with pytest.raises(ProxyProtocolError) as caught:
        parse_proxy_header(wire + MYSQL_FIRST_PACKET)
    assert reason in caught.value.reason


@pytest.mark.parametrize(("wire", "reason"), MALFORMED)
def test_malformed_header_fed_byte_by_byte(wire: bytes, reason: str) -> None:
    reader = ProxyHeaderReader(expect_header=True)
    with pytest.raises(ProxyProtocolError) as caught:
        feed_bytewise(reader, wire + MYSQL_FIRST_PACKET)
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    ("start", "bytes_needed"),
    [(b"G", 1), (b"\x16\x03\x01", 1), (b"PROXX", 5), (b"PROXY TCP4 1.2.3.4\n", 19), (V2_SIGNATURE + b"\x11", 13)],
)
def test_garbage_refused_as_soon_as_it_shows(start: bytes, bytes_needed: int) -> None:
    reader = ProxyHeaderReader(expect_header=True)
    for index in range(bytes_needed - 1):
        assert reader.feed(start[index : index + 1]) is NEED_DATA
    with pytest.raises(ProxyProtocolError):
        reader.feed(start[bytes_needed - 1 : bytes_needed])


def test_a_v2_header_waits_for_its_length() -> None:
    wire = v2(1, 0x11, inet4("1.2.3.4", "5.6.7.8", 1, 2) + tlv(0x04, b"\x00" * 1000))
    for end in range(len(wire)):
        assert parse_proxy_header(wire[:end]) is NEED_DATA
    assert isinstance(parse_proxy_header(wire), ProxyHeader)


def test_v2_size_bound_is_configurable() -> None:
    wire = v2(1, 0x11, inet4("1.2.3.4", "5.6.7.8", 1, 2) + tlv(0x04, b"\x00" * 100))
    with pytest.raises(ProxyProtocolError, match="at most 64"):
        parse_proxy_header(wire, max_v2_bytes=64)
    assert isinstance(parse_proxy_header(wire, max_v2_bytes=len(wire)), ProxyHeader)


def test_client_address_falls_back_to_the_socket_peer() -> None:
    peer = ("10.0.0.5", 41000)
    proxied = parse_proxy_header(b"PROXY TCP4 192.0.2.1 10.0.0.1 5555 9030\r\n")
    local = parse_proxy_header(v2(0, 0x00, b""))
    unknown = parse_proxy_header(b"PROXY UNKNOWN\r\n")
    assert isinstance(proxied, ProxyHeader) and isinstance(local, ProxyHeader) and isinstance(unknown, ProxyHeader)
    assert proxied.client_address(peer) == ("192.0.2.1", 5555)
    assert local.client_address(peer) == peer and unknown.client_address(peer) == peer


def test_crc32c_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0


# ---- a peer that must not send a header ----


@pytest.mark.parametrize("packet", [MYSQL_FIRST_PACKET, b"\x01\x00\x00\x01\x0e", b"P\x00\x00\x01" + b"x" * 80])
def test_no_header_passes_every_byte_on(packet: bytes) -> None:
    reader = ProxyHeaderReader(expect_header=False)
    assert reader.feed(packet) is NO_HEADER
    assert reader.rest == packet
    byte_by_byte = ProxyHeaderReader(expect_header=False)
    assert feed_bytewise(byte_by_byte, packet) is NO_HEADER
    assert packet.startswith(byte_by_byte.rest)


@pytest.mark.parametrize("wire", [wire for wire, _ in VALID] + [b"PROXY garbage\r\n", V2_SIGNATURE])
def test_forged_header_refused(wire: bytes) -> None:
    with pytest.raises(ProxyProtocolError, match="not in proxy_protocol_from"):
        ProxyHeaderReader(expect_header=False).feed(wire)
    with pytest.raises(ProxyProtocolError, match="not in proxy_protocol_from"):
        feed_bytewise(ProxyHeaderReader(expect_header=False), wire)


def test_required_header_missing() -> None:
    with pytest.raises(ProxyProtocolError, match="expected a PROXY protocol header"):
        ProxyHeaderReader(expect_header=True).feed(MYSQL_FIRST_PACKET)


def test_signature_detection() -> None:
    assert starts_with_proxy_signature(b"") is NEED_DATA
    assert starts_with_proxy_signature(b"PROXY") is NEED_DATA
    assert starts_with_proxy_signature(b"PROXY ") is True
    assert starts_with_proxy_signature(V2_SIGNATURE[:11]) is NEED_DATA
    assert starts_with_proxy_signature(V2_SIGNATURE) is True
    assert starts_with_proxy_signature(b"PROXI") is False
    assert starts_with_proxy_signature(MYSQL_FIRST_PACKET) is False


def test_reader_decides_once() -> None:
    reader = ProxyHeaderReader(expect_header=True)
    assert isinstance(reader.feed(b"PROXY UNKNOWN\r\nabc"), ProxyHeader)
    assert reader.done and reader.rest == b"abc"
    with pytest.raises(RuntimeError):
        reader.feed(b"more")


# ---- random bytes raise nothing but ProxyProtocolError ----


def mutations(rng: random.Random, wire: bytes) -> bytes:
    data = bytearray(wire)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(4)
        position = rng.randrange(len(data) + 1)
        if choice == 0 and data:
            data[min(position, len(data) - 1)] = rng.randrange(256)
        elif choice == 1:
            data[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif choice == 2:
            del data[position : position + rng.randint(1, 8)]
        else:
            data = data[:position]
    return bytes(data)


def check_fuzzed(data: bytes, expect_header: bool, chunk_sizes: random.Random) -> None:
    reader = ProxyHeaderReader(expect_header=expect_header)
    offset = 0
    result: object = NEED_DATA
    try:
        while result is NEED_DATA and offset < len(data):
            step = chunk_sizes.randint(1, 40)
            result = reader.feed(data[offset : offset + step])
            offset += step
    except ProxyProtocolError as exc:
        assert exc.reason and isinstance(exc.reason, str)
        return
    if isinstance(result, ProxyHeader):
        assert 15 <= result.length <= min(offset, 4096)
        assert reader.rest == data[result.length : offset]
        for address in (result.source, result.destination):
            if address is not None:
                ipaddress.ip_address(address[0])
                assert 0 <= address[1] <= 65535
        if result.command is ProxyCommand.LOCAL:
            assert result.source is None and result.version == 2
    elif result is NO_HEADER:
        assert not expect_header and reader.rest == data[:offset]


def test_fuzz_random_bytes() -> None:
    rng = random.Random(20261123)
    for _ in range(3000):
        prefix = rng.choice([b"", b"PROXY ", b"PROXY TCP4 ", b"PROXY TCP6 ", V2_SIGNATURE, V2_SIGNATURE + b"\x21"])
        data = prefix + bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
        check_fuzzed(data, rng.random() < 0.8, rng)


def test_fuzz_mutated_headers() -> None:
    rng = random.Random(9030)
    seeds = [wire for wire, _ in VALID]
    for _ in range(5000):
        check_fuzzed(mutations(rng, rng.choice(seeds)) + MYSQL_FIRST_PACKET, rng.random() < 0.8, rng)


# ---- proxy_protocol_from ----


def test_policy_parsing() -> None:
    assert parse_proxy_networks("") == () == parse_proxy_networks("  ")
    networks = parse_proxy_networks("127.0.0.1/32, 10.0.0.0/8")
    assert [str(network) for network in networks] == ["127.0.0.1/32", "10.0.0.0/8"]
    networks = parse_proxy_networks("192.0.2.7 2001:db8::/32,::1")
    assert [str(network) for network in networks] == ["192.0.2.7/32", "2001:db8::/32", "::1/128"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.0.0.1/8", "'10.0.0.1/8' has host bits set; did you mean 10.0.0.0/8?"),
        ("10.0.0.0/33", "'10.0.0.0/33' is not an IP address or network"),
        ("lb.example.com", "'lb.example.com' is not an IP address or network"),
        ("127.0.0.1/32,,10.0.0.0/8", "an empty entry"),
        ("127.0.0.1/32,", "an empty entry"),
        ("*", "'*' is not an IP address or network"),
    ],
)
def test_policy_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ProxyPolicyError) as caught:
        ProxyPolicy.parse(text)
    assert message in str(caught.value) and str(caught.value).startswith("proxy_protocol_from: ")


def test_policy_decides_by_peer() -> None:
    policy = ProxyPolicy.parse("127.0.0.1/32, 10.0.0.0/8, 2001:db8::/32")
    assert policy.requires_header("127.0.0.1")
    assert policy.requires_header("10.200.3.4")
    assert policy.requires_header("::ffff:10.1.1.1")  # an IPv4 peer on a dual-stack socket
    assert policy.requires_header("2001:db8::5%eth0")
    assert not policy.requires_header("127.0.0.2")
    assert not policy.requires_header("192.0.2.1")
    assert not policy.requires_header("::1")
    assert not policy.requires_header("")
    assert not policy.requires_header("not-an-address")
    assert policy.reader_for("10.0.0.1").expect_header
    assert not policy.reader_for("192.0.2.1").expect_header
    assert not ProxyPolicy().requires_header("127.0.0.1")
