"""The PROXY protocol, as HAProxy sends it (`send-proxy`: v1, text; `send-proxy-v2`: binary), sans-IO.

A load balancer in front of fe opens each connection with one header naming the client it accepted. Feed the
connection's first bytes to a `ProxyHeaderReader`; it answers NEED_DATA, the parsed `ProxyHeader`, or raises
`ProxyProtocolError`, and hands back the bytes that followed the header (they belong to the MySQL protocol).

Which peers must send a header is `ProxyPolicy`'s business (the `proxy_protocol_from` setting): a peer in the
list must open with one, any other peer must not. Waiting for the header is the caller's: bound it with a timeout.

The specification: https://www.haproxy.org/download/3.0/doc/proxy-protocol.txt
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass
from typing import Final

V1_PREFIX: Final = b"PROXY "
V1_MAX_BYTES: Final = 107  # the longest v1 line, "\r\n" included
V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED_BYTES: Final = 16  # signature, version and command, family and protocol, length
# The v2 length field allows 64 KiB of addresses and TLVs; HAProxy's own TLVs (ALPN, authority, unique id, SSL)
# and the cloud balancers' (AWS, GCP) take a few hundred bytes.
DEFAULT_V2_MAX_BYTES: Final = 4096

_PORT = re.compile(r"0|[1-9][0-9]{0,4}")
_V2_ADDRESS_BYTES: Final = {0x0: 0, 0x1: 12, 0x2: 36, 0x3: 216}  # by family: unspecified, inet, inet6, unix
# Family and protocol bytes the specification defines; any other must be rejected.
_V2_FAMILIES: Final = frozenset({0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32})
_V2_TLV_CRC32C: Final = 0x03


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


class _NoHeader:
    def __repr__(self) -> str:
        return "NO_HEADER"


NEED_DATA: Final = _NeedData()
"""More bytes are needed to decide."""

NO_HEADER: Final = _NoHeader()
"""The connection does not start with a PROXY header (and none was required): every byte is the client's."""


class ProxyProtocolError(Exception):
    """The connection's first bytes are not what the policy requires; `reason` says what is wrong. The
    connection must be closed: nothing it sends can be trusted to be framed right."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ProxyCommand(enum.Enum):
    PROXY = "proxy"  # relayed for a client; the addresses, when known, are the client's
    LOCAL = "local"  # the balancer's own connection (a health check): keep the socket's addresses


Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    version: int  # 1 or 2
    command: ProxyCommand
    # None for LOCAL, v1 UNKNOWN, and v2's unspecified and AF_UNIX families: use the socket's own addresses.
    # An IPv4-mapped IPv6 address is given as the IPv4 address, which is what account host patterns match.
    source: Address | None
    destination: Address | None
    length: int  # the header's bytes: what follows belongs to the client

    def client_address(self, peer: Address) -> Address:
        """The client's address: the header's source, or the socket's peer when the header names none."""
        return self.source if self.source is not None else peer


def parse_proxy_header(data: bytes, *, max_v2_bytes: int = DEFAULT_V2_MAX_BYTES) -> ProxyHeader | _NeedData:
    """The PROXY header at the start of `data`, or NEED_DATA; ProxyProtocolError when it cannot be one."""
    kind = _signature(data)
    if kind is NEED_DATA:
        return NEED_DATA
    if kind == 1:
        return _parse_v1(data)
    if kind == 2:
        return _parse_v2(data, max_v2_bytes)
    raise ProxyProtocolError(f"expected a PROXY protocol header, got {_show(data[:16])}")


def starts_with_proxy_signature(data: bytes) -> bool | _NeedData:
    """Whether `data` opens with a v1 or v2 signature; NEED_DATA while it is a proper prefix of one.

    No MySQL client's first packet can match: its fourth byte, the sequence id, is 1, where both signatures
    have a letter or a line feed."""
    kind = _signature(data)
    return kind if kind is NEED_DATA else kind is not None


class ProxyHeaderReader:
    """The start of one connection. With `expect_header` (the peer is a trusted balancer) the bytes must open with
    a PROXY header; without, they must not (a forged header from a client is refused, not ignored).

    `feed()` returns NEED_DATA until it can decide, then the ProxyHeader or NO_HEADER once; `rest` is then what
    came after the header (every byte fed, for NO_HEADER), for the MySQL protocol."""

    def __init__(self, expect_header: bool, *, max_v2_bytes: int = DEFAULT_V2_MAX_BYTES) -> None:
        self.expect_header = expect_header
        self._max_v2_bytes = max_v2_bytes
        self._buffer = bytearray()
        self._rest = b""
        self.done = False

    def feed(self, data: bytes) -> ProxyHeader | _NoHeader | _NeedData:
        if self.done:
            raise RuntimeError("the PROXY header was decided already; pass further bytes on")
        self._buffer += data
        buffer = bytes(self._buffer)
        result: ProxyHeader | _NoHeader | _NeedData
        if self.expect_header:
            result = parse_proxy_header(buffer, max_v2_bytes=self._max_v2_bytes)
            if isinstance(result, ProxyHeader):
                self._rest = buffer[result.length :]
        else:
            forged = starts_with_proxy_signature(buffer)
            if forged is NEED_DATA:
                return NEED_DATA
            if forged:
                raise ProxyProtocolError("a PROXY header from an address not in proxy_protocol_from")
            result = NO_HEADER
            self._rest = buffer
        if result is not NEED_DATA:
            self.done = True
            self._buffer.clear()
        return result

    @property
    def rest(self) -> bytes:
        return self._rest


def _signature(data: bytes) -> int | _NeedData | None:
    """1 or 2 for the protocol version whose signature `data` starts with, None for neither, NEED_DATA while
    `data` is too short to tell."""
    for version, signature in ((1, V1_PREFIX), (2, V2_SIGNATURE)):
        if data[: len(signature)] == signature[: len(data)]:
            return version if len(data) >= len(signature) else NEED_DATA
    return None


# ---- version 1: "PROXY TCP4 192.0.2.1 198.51.100.2 56324 9030\r\n" ----


def _parse_v1(data: bytes) -> ProxyHeader | _NeedData:
    end = data.find(b"\r\n", 0, V1_MAX_BYTES)
    line = data[:end] if end >= 0 else data[:V1_MAX_BYTES]
    bad = re.search(rb"[^\x20-\x7e]", line.rstrip(b"\r") if end < 0 else line)
    if bad is not None:
        raise ProxyProtocolError(f"PROXY v1: byte {_show(bad.group())} in the header line")
    if end < 0:
        if len(data) >= V1_MAX_BYTES:
            raise ProxyProtocolError(f"PROXY v1: no CRLF within {V1_MAX_BYTES} bytes")
        return NEED_DATA
    fields = line.decode("ascii").split(" ")
    protocol = fields[1]
    if protocol == "UNKNOWN":
        # The specification: ignore whatever follows UNKNOWN on the line, and keep the socket's addresses.
        return ProxyHeader(1, ProxyCommand.PROXY, None, None, end + 2)
    if protocol not in ("TCP4", "TCP6"):
        raise ProxyProtocolError(f"PROXY v1: unknown protocol {_show(protocol)} (TCP4, TCP6 or UNKNOWN)")
    if len(fields) != 6:
        raise ProxyProtocolError(f"PROXY v1: expected 'PROXY {protocol} source destination sport dport'")
    version = 4 if protocol == "TCP4" else 6
    source = (_v1_address(fields[2], version), _v1_port(fields[4]))
    destination = (_v1_address(fields[3], version), _v1_port(fields[5]))
    return ProxyHeader(1, ProxyCommand.PROXY, source, destination, end + 2)


def _v1_address(text: str, version: int) -> str:
    try:
        address = ipaddress.IPv4Address(text) if version == 4 else ipaddress.IPv6Address(text)
    except ValueError:
        address = None
    if address is None or "%" in text:  # no IPv6 scope: it names an interface of the balancer's host
        raise ProxyProtocolError(f"PROXY v1: {_show(text)} is not an IPv{version} address")
    return _host(address)


def _v1_port(text: str) -> int:
    if _PORT.fullmatch(text) is None or int(text) > 65535:
        raise ProxyProtocolError(f"PROXY v1: {_show(text)} is not a port")
    return int(text)


# ---- version 2: signature, version/command, family/protocol, length, addresses, TLVs ----


def _parse_v2(data: bytes, max_bytes: int) -> ProxyHeader | _NeedData:
    # The fixed part is checked byte by byte as it arrives: garbage is refused without waiting for more.
    if len(data) > 12 and data[12] >> 4 != 2:
        raise ProxyProtocolError(f"PROXY v2: unsupported version {data[12] >> 4}")
    if len(data) > 12 and data[12] & 0x0F > 1:
        raise ProxyProtocolError(f"PROXY v2: unknown command {data[12] & 0x0F}")
    if len(data) > 13 and data[13] not in _V2_FAMILIES:
        raise ProxyProtocolError(f"PROXY v2: unknown address family and protocol 0x{data[13]:02x}")
    if len(data) < V2_FIXED_BYTES:
        return NEED_DATA
    command, family, length = data[12] & 0x0F, data[13], int.from_bytes(data[14:16], "big")
    total = V2_FIXED_BYTES + length
    if total > max_bytes:
        raise ProxyProtocolError(f"PROXY v2: header of {total} bytes (at most {max_bytes})")
    if len(data) < total:
        return NEED_DATA
    header = data[:total]
    address_bytes = _V2_ADDRESS_BYTES[family >> 4]
    if length < address_bytes:
        raise ProxyProtocolError(f"PROXY v2: {length} bytes of addresses, family 0x{family:02x} needs {address_bytes}")
    _check_tlvs(header, V2_FIXED_BYTES + address_bytes)
    if command == 0:
        return ProxyHeader(2, ProxyCommand.LOCAL, None, None, total)
    if (family & 0x0F) == 2:
        raise ProxyProtocolError("PROXY v2: a datagram (UDP) header on a stream connection")
    if family >> 4 not in (1, 2):
        return ProxyHeader(2, ProxyCommand.PROXY, None, None, total)  # unspecified or AF_UNIX: no IP to use
    size = 4 if family >> 4 == 1 else 16
    block = header[V2_FIXED_BYTES:]
    ports = block[2 * size :]
    source = (_host(ipaddress.ip_address(block[:size])), int.from_bytes(ports[0:2], "big"))
    destination = (_host(ipaddress.ip_address(block[size : 2 * size])), int.from_bytes(ports[2:4], "big"))
    return ProxyHeader(2, ProxyCommand.PROXY, source, destination, total)


def _check_tlvs(header: bytes, offset: int) -> None:
    """Type-length-values fill the rest of the header exactly; a CRC32C one, if present, must match."""
    total = len(header)
    while offset < total:
        if offset + 3 > total:
            raise ProxyProtocolError("PROXY v2: a truncated TLV")
        kind, length = header[offset], int.from_bytes(header[offset + 1 : offset + 3], "big")
        end = offset + 3 + length
        if end > total:
            raise ProxyProtocolError(f"PROXY v2: TLV 0x{kind:02x} of {length} bytes overruns the header")
        if kind == _V2_TLV_CRC32C:
            if length != 4:
                raise ProxyProtocolError("PROXY v2: a CRC32C TLV must hold 4 bytes")
            zeroed = header[: offset + 3] + b"\x00\x00\x00\x00" + header[end:]
            if crc32c(zeroed) != int.from_bytes(header[offset + 3 : end], "big"):
                raise ProxyProtocolError("PROXY v2: CRC32C checksum mismatch")
        offset = end


def _make_crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE: Final = _make_crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum of the PP2_TYPE_CRC32C TLV."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _host(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _show(value: bytes | str) -> str:
    """Untrusted bytes for an error message: quoted, escaped, and short."""
    text = repr(value[:40])
    return text + "..." if len(value) > 40 else text


# ---- which peers must send a header ----

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxyPolicyError(ValueError):
    """The proxy_protocol_from setting cannot be read; the message says which entry and why."""


def parse_proxy_networks(text: str) -> tuple[Network, ...]:
    """`proxy_protocol_from`: networks (or single addresses) separated by commas or spaces; empty for none."""
    networks: list[Network] = []
    entries = [entry.strip() for entry in text.split(",")] if text.strip() else []
    for entry in entries:
        if not entry:
            raise ProxyPolicyError(f"proxy_protocol_from: an empty entry in {text!r}")
        for word in entry.split():
            networks.append(_network(word))
    return tuple(networks)


def _network(word: str) -> Network:
    try:
        return ipaddress.ip_network(word, strict=True)
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(word, strict=False)
    except ValueError:
        raise ProxyPolicyError(
            f"proxy_protocol_from: {word!r} is not an IP address or network (such as 10.0.0.0/8 or 2001:db8::/32)"
        ) from None
    raise ProxyPolicyError(f"proxy_protocol_from: {word!r} has host bits set; did you mean {loose}?")


@dataclass(frozen=True)
class ProxyPolicy:
    """Which peers are load balancers that must open every connection with a PROXY header."""

    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, text: str) -> ProxyPolicy:
        return cls(parse_proxy_networks(text))

    def requires_header(self, peer_host: str) -> bool:
        """Whether a connection from `peer_host` (the socket's peer) must start with a PROXY header; if not, it
        must not start with one."""
        if not self.networks:
            return False
        try:
            address = ipaddress.ip_address(peer_host.partition("%")[0])
        except ValueError:
            return False  # not an IP peer (a Unix socket): never a balancer
        candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)  # an IPv4 peer on a dual-stack socket
        return any(candidate in network for candidate in candidates for network in self.networks)

    def reader_for(self, peer_host: str, *, max_v2_bytes: int = DEFAULT_V2_MAX_BYTES) -> ProxyHeaderReader:
        return ProxyHeaderReader(self.requires_header(peer_host), max_v2_bytes=max_v2_bytes)
