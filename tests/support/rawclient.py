"""A deliberately low-level MySQL client over a plain socket, for sending what real clients never would."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import ssl
import struct
import time

from fe.mysql.codec import Cursor, lenenc_bytes
from fe.mysql.constants import Capability

CLIENT_CAPS = (
    Capability.LONG_PASSWORD
    | Capability.PROTOCOL_41
    | Capability.SECURE_CONNECTION
    | Capability.PLUGIN_AUTH
    | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
    | Capability.TRANSACTIONS
    | Capability.MULTI_RESULTS
)


def sha2_scramble(password: bytes, nonce: bytes) -> bytes:
    stage1 = hashlib.sha256(password).digest()
    stage2 = hashlib.sha256(stage1).digest()
    mix = hashlib.sha256(stage2 + nonce).digest()
    return bytes(a ^ b for a, b in zip(stage1, mix, strict=True))


class RawClient:
    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self.sock: socket.socket | ssl.SSLSocket = socket.create_connection((host, port), timeout=timeout)
        self.nonce = b""
        self.seq = 0

    # ---- framing ----

    def recv_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError(f"closed after {len(data)} of {n} bytes")
            data += chunk
        return data

    def read_packet(self) -> bytes:
        header = self.recv_exact(4)
        length = int.from_bytes(header[:3], "little")
        self.seq = (header[3] + 1) & 0xFF
        return self.recv_exact(length)

    def send_packet(self, payload: bytes, seq: int | None = None) -> None:
        seq = self.seq if seq is None else seq
        self.sock.sendall(len(payload).to_bytes(3, "little") + bytes((seq,)) + payload)
        self.seq = (seq + 1) & 0xFF

    def closed_by_server(self, timeout: float = 5.0) -> bool:
        """True when the server closed the connection (EOF or reset) within `timeout`, reading what remains;
        False when it was still open at the deadline."""
        deadline = time.monotonic() + timeout
        try:
            while (left := deadline - time.monotonic()) > 0:
                self.sock.settimeout(left)
                if not self.sock.recv(65536):
                    return True
        except TimeoutError:
            return False
        except (ConnectionResetError, ssl.SSLError, OSError):
            return True
        return False

    # ---- handshake ----

    def read_greeting(self) -> bytes:
        payload = self.read_packet()
        cur = Cursor(payload)
        assert cur.int1() == 10
        cur.nul_bytes()
        cur.int4()
        part1 = cur.take(8)
        cur.take(1 + 2 + 1 + 2 + 2 + 1 + 10)
        part2 = cur.nul_bytes()
        self.nonce = part1 + part2
        return payload

    def start_tls(self, caps: int = CLIENT_CAPS) -> None:
        self.send_packet(struct.pack("<IIB", caps | Capability.SSL, 1 << 24, 255) + b"\x00" * 23)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        assert isinstance(self.sock, socket.socket)
        self.sock = context.wrap_socket(self.sock)

    def handshake_response(
        self, user: str, auth: bytes, plugin: str = "caching_sha2_password", caps: int = CLIENT_CAPS, tls: bool = False
    ) -> bytes:
        if tls:
            caps |= Capability.SSL
        return (
            struct.pack("<IIB", caps, 1 << 24, 255)
            + b"\x00" * 23
            + user.encode()
            + b"\x00"
            + lenenc_bytes(auth)
            + plugin.encode()
            + b"\x00"
        )

    def login(self, user: str, password: str, tls: bool = False) -> bytes:
        """caching_sha2_password login; returns the final OK or ERR payload."""
        self.read_greeting()
        if tls:
            self.start_tls()
        auth = sha2_scramble(password.encode(), self.nonce) if password else b""
        self.send_packet(self.handshake_response(user, auth, tls=tls))
        while True:
            reply = self.read_packet()
            if reply[:1] == b"\x01" and reply[1:] == b"\x03":
                continue
            if reply[:1] == b"\x01" and reply[1:] == b"\x04":
                if not tls:
                    raise AssertionError("full authentication over plain TCP is not used by this client")
                self.send_packet(password.encode() + b"\x00")
                continue
            if reply[:1] == b"\xfe" and len(reply) > 1:
                plugin, _, data = reply[1:].partition(b"\x00")
                if plugin == b"caching_sha2_password":
                    self.nonce = data.rstrip(b"\x00")
                    self.send_packet(sha2_scramble(password.encode(), self.nonce) if password else b"")
                    continue
                return reply
            return reply

    def token_login(self, user: str, token: bytes) -> bytes:
        """Over TLS, naming the OIDC client plugin up front with `[0x01][lenenc token]`; the final OK or ERR."""
        self.read_greeting()
        self.start_tls()
        packet = b"\x01" + lenenc_bytes(token)
        self.send_packet(self.handshake_response(user, packet, plugin="authentication_openid_connect_client", tls=True))
        return self.read_packet()

    def query(self, sql: str) -> bytes:
        self.send_packet(b"\x03" + sql.encode(), seq=0)
        return self.read_packet()

    def query_rows(self, sql: str) -> list[list[bytes | None]]:
        """A text result set's rows (this client does not negotiate DEPRECATE_EOF: EOF packets end each part)."""
        self.send_packet(b"\x03" + sql.encode(), seq=0)
        return self.read_rows()

    def read_rows(self) -> list[list[bytes | None]]:
        """The rows of the text result set that answers the command sent last."""
        first = self.read_packet()
        if first[:1] in (b"\x00", b"\xff"):
            raise AssertionError(f"not a result set: {first!r}")
        while self.read_packet()[:1] != b"\xfe":  # column definitions
            pass
        rows = []
        while (packet := self.read_packet())[:1] != b"\xfe":
            cur, row = Cursor(packet), []
            while not cur.at_end():
                row.append(None if cur.data[cur.pos] == 0xFB and cur.take(1) else cur.lenenc_bytes())
            rows.append(row)
        return rows

    def command(self, code: int, body: bytes = b"") -> bytes:
        self.send_packet(bytes((code,)) + body, seq=0)
        return self.read_packet()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def error_of(payload: bytes) -> tuple[int, str]:
    """(code, message) of an ERR payload."""
    assert payload[:1] == b"\xff", f"not an ERR packet: {payload[:40]!r}"
    code = int.from_bytes(payload[1:3], "little")
    message = payload[3:]
    if message.startswith(b"#"):
        message = message[6:]
    return code, message.decode()
