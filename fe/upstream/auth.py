"""The client side of an authentication exchange, sans-IO: given the server's packets during the login (or a
COM_CHANGE_USER), what to answer. Supports caching_sha2_password (fast path; full authentication with the
password over TLS or a Unix socket, else RSA-encrypted), mysql_native_password, and mysql_clear_password where
cleartext is safe.
"""

from __future__ import annotations

from dataclasses import dataclass

from fe.mysql.codec import Cursor, MalformedPacket
from fe.mysql.constants import PLUGIN_CACHING_SHA2, PLUGIN_NATIVE
from fe.upstream import scramble
from fe.upstream.errors import Reason, ServerError, UpstreamError, parse_err
from fe.upstream.packets import OkPacket, parse_ok

PLUGIN_CLEARTEXT = "mysql_clear_password"
_SCRAMBLED = (PLUGIN_CACHING_SHA2, PLUGIN_NATIVE)

# caching_sha2_password's AuthMoreData bytes.
_FAST_AUTH_OK = b"\x03"
_FULL_AUTH = b"\x04"
_REQUEST_PUBLIC_KEY = b"\x02"


@dataclass(frozen=True, slots=True)
class Reply:
    """Send this payload as the next packet of the exchange."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Finished:
    ok: OkPacket


@dataclass(frozen=True, slots=True)
class Refused:
    error: ServerError


AuthStep = Reply | Finished | Refused | None  # None: nothing to send, wait for the next packet


class ClientAuth:
    """One exchange. `secure`: the connection is encrypted or the database's Unix socket; `loopback`: the peer is
    this host. The password goes in cleartext only over a secure connection, or, for mysql_clear_password, to a
    loopback peer. caching_sha2_password's full authentication over plain TCP always encrypts with the server's
    RSA key (servers refuse a cleartext password over plain TCP, loopback included), `server_public_key` (PEM) if
    pinned, else the key the server sends."""

    __slots__ = ("_awaiting_key", "loopback", "nonce", "password", "plugin", "secure", "server_public_key")

    def __init__(self, password: str, *, secure: bool, loopback: bool, server_public_key: bytes | None = None) -> None:
        self.password = password.encode()
        self.secure = secure
        self.loopback = loopback
        self.server_public_key = server_public_key
        self.plugin = ""
        self.nonce = b""
        self._awaiting_key = False

    def start(self, plugin: str, nonce: bytes) -> tuple[str, bytes]:
        """The plugin to name in the first packet and its auth data. An unknown plugin gets a native scramble:
        the server then switches the client to the account's plugin."""
        self.plugin = plugin if plugin in _SCRAMBLED else PLUGIN_NATIVE
        self.nonce = nonce
        return self.plugin, self._scramble()

    def _scramble(self) -> bytes:
        if self.plugin == PLUGIN_CACHING_SHA2:
            return scramble.caching_sha2(self.password, self.nonce)
        return scramble.native(self.password, self.nonce)

    def receive(self, payload: bytes) -> AuthStep:
        """The server's next packet; raises UpstreamError when it asks for something fe will not or cannot do,
        MalformedPacket when it does not parse."""
        if not payload:
            raise MalformedPacket("empty packet during authentication")
        header = payload[0]
        if header == 0x00:
            return Finished(parse_ok(payload))
        if header == 0xFF:
            return Refused(parse_err(payload))
        if header == 0xFE:
            return self._switch(payload)
        if header == 0x01:
            return self._more_data(payload[1:])
        raise MalformedPacket(f"unexpected packet 0x{header:02x} during authentication")

    def _switch(self, payload: bytes) -> Reply:
        if len(payload) == 1:
            raise UpstreamError(Reason.PROTOCOL, "the upstream asked for the pre-4.1 password hash, which fe refuses")
        cur = Cursor(payload)
        cur.take(1)
        plugin = cur.nul_bytes().decode("ascii", "replace")
        data = cur.rest()
        self.nonce = data[:-1] if data.endswith(b"\x00") else data
        self.plugin = plugin
        self._awaiting_key = False
        if plugin in _SCRAMBLED:
            return Reply(self._scramble())
        if plugin == PLUGIN_CLEARTEXT:
            return Reply(self._cleartext(allowed=self.secure or self.loopback))
        raise UpstreamError(Reason.PROTOCOL, f"the upstream account uses authentication plugin {plugin!r}")

    def _cleartext(self, allowed: bool) -> bytes:
        if not allowed:
            raise UpstreamError(
                Reason.INSECURE, f"{self.plugin} would send the password in cleartext: use TLS to the upstream"
            )
        return self.password + b"\x00"

    def _more_data(self, data: bytes) -> AuthStep:
        if self.plugin != PLUGIN_CACHING_SHA2:
            raise MalformedPacket(f"unexpected AuthMoreData for {self.plugin}")
        if self._awaiting_key:
            self._awaiting_key = False
            return Reply(self._encrypted(data))
        if data == _FAST_AUTH_OK:
            return None
        if data != _FULL_AUTH:
            raise MalformedPacket(f"unexpected caching_sha2_password data {data[:8]!r}")
        if self.secure:
            return Reply(self._cleartext(allowed=True))
        if self.server_public_key is not None:
            return Reply(self._encrypted(self.server_public_key))
        self._awaiting_key = True
        return Reply(_REQUEST_PUBLIC_KEY)

    def _encrypted(self, public_key_pem: bytes) -> bytes:
        try:
            return scramble.rsa_encrypted_password(self.password, self.nonce, public_key_pem)
        except ValueError as exc:
            raise UpstreamError(Reason.PROTOCOL, str(exc)) from None
