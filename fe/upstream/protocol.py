"""The client side of one upstream connection as a sans-IO state machine (the mirror of fe.mysql.protocol's
ServerProtocol): fed bytes, it hands back events; asked to send, it returns the wire bytes, or raises
LocalProtocolError if the phase does not allow that.

Phases: GREETING (waiting for HandshakeV10) → HANDSHAKE (the caller chooses: SSLRequest, then TLS, or the
HandshakeResponse41 at once) → TLS (the driver runs the TLS handshake, then calls `tls_established`) →
AUTHENTICATION (the exchange answers the server itself: SendAuth events carry its packets) → COMMAND (one command,
its response tracked by a ResponseTracker; COM_CHANGE_USER goes back to AUTHENTICATION) → CLOSED.
Sequence ids live here (and in the tracker during a response): every packet received is checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Final

from fe.mysql.codec import MalformedPacket, PacketTooLarge, frame
from fe.mysql.constants import Capability
from fe.mysql.framing import PacketDecoder, SequenceMismatch
from fe.upstream import packets
from fe.upstream.auth import ClientAuth, Finished, Refused, Reply
from fe.upstream.capabilities import FORBIDDEN, REQUIRED
from fe.upstream.commands import CURSOR_TYPE_MASK, Com, Status
from fe.upstream.errors import Reason, ServerError, UpstreamError, UpstreamProtocolError, parse_err
from fe.upstream.packets import Greeting, OkPacket
from fe.upstream.response import ResponseTracker, UnsupportedCommand

# Packets before the command phase are small (the greeting, auth data, an RSA key, OK with session state).
HANDSHAKE_PACKET_LIMIT = 1 << 20
DEFAULT_CHARSET = 45  # utf8mb4_general_ci: known to MariaDB and MySQL alike


class Phase(Enum):
    GREETING = "greeting"
    HANDSHAKE = "handshake"
    TLS = "tls"
    AUTHENTICATION = "authentication"
    COMMAND = "command"
    CLOSED = "closed"


# Looked at on every relayed command, as plain values (an enum's attribute costs a lookup).
_COMMAND = Phase.COMMAND
_QUIT = int(Com.QUIT)
_STMT_EXECUTE = int(Com.STMT_EXECUTE)


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()


@dataclass(frozen=True, slots=True)
class GreetingReceived:
    greeting: Greeting


@dataclass(frozen=True, slots=True)
class GreetingRefused:
    """An ERR instead of the greeting (too many connections, host blocked); the connection is over."""

    error: ServerError


@dataclass(frozen=True, slots=True)
class SendAuth:
    """Wire bytes of the authentication exchange's next packet: send them and keep reading."""

    data: bytes


@dataclass(frozen=True, slots=True)
class LoginSucceeded:
    ok: OkPacket


@dataclass(frozen=True, slots=True)
class LoginRefused:
    """The upstream refused the login (or COM_CHANGE_USER); the connection is over."""

    error: ServerError


Event = GreetingReceived | GreetingRefused | SendAuth | LoginSucceeded | LoginRefused


class LocalProtocolError(Exception):
    """fe tried to send something the connection's phase does not allow: a bug, never put on the wire."""


class ClientProtocol:
    __slots__ = (
        "_answered",
        "_auth",
        "_decoder",
        "_seq",
        "_tail",
        "capabilities",
        "greeting",
        "phase",
        "response",
        "secure",
        "status",
        "tls",
    )

    def __init__(self, *, unix_socket: bool = False) -> None:
        """`unix_socket`: the connection is the database's Unix socket, a secure transport without TLS."""
        self._decoder = PacketDecoder(HANDSHAKE_PACKET_LIMIT)
        self._seq = 0
        self._auth: ClientAuth | None = None
        self._tail = b""  # response bytes received but not yet classifiable (part of a packet's first bytes)
        self._answered = False  # some of the current response has been passed on
        self.phase = Phase.GREETING
        self.greeting: Greeting | None = None
        self.capabilities = 0  # as sent in the HandshakeResponse (SSL included when on TLS)
        self.tls = False
        self.secure = unix_socket  # a password may go in cleartext: over TLS or a Unix socket
        self.status = 0  # the session's status flags as of the last OK or EOF
        self.response: ResponseTracker | None = None  # the current (or last) command's response

    # ---- connection phase ----

    def receive_data(self, data: bytes) -> None:
        """Bytes received before the command phase."""
        self._decoder.feed(data)

    def next_event(self) -> Event | _NeedData:
        """The upstream's next step in the greeting or authentication; raises UpstreamProtocolError when its
        packets are broken, UpstreamError when the exchange asks for what fe will not do."""
        if self.phase not in (Phase.GREETING, Phase.AUTHENTICATION):
            return NEED_DATA
        try:
            packet = self._decoder.next_packet()
        except (PacketTooLarge, SequenceMismatch) as exc:
            raise self._broken(str(exc)) from None
        if packet is None:
            return NEED_DATA
        if packet.seq != self._seq:
            raise self._broken(f"packet with sequence id {packet.seq}, expected {self._seq}")
        self._seq = packet.next_seq
        try:
            if self.phase is Phase.GREETING:
                return self._on_greeting(packet.payload)
            return self._on_auth(packet.payload)
        except MalformedPacket as exc:
            raise self._broken(str(exc)) from None
        except UpstreamError:
            self.phase = Phase.CLOSED
            raise

    def _broken(self, message: str) -> UpstreamProtocolError:
        self.phase = Phase.CLOSED
        return UpstreamProtocolError(message)

    def _on_greeting(self, payload: bytes) -> Event:
        if payload[:1] == b"\xff":
            self.phase = Phase.CLOSED
            return GreetingRefused(parse_err(payload))
        self.greeting = packets.parse_greeting(payload)
        self.status = self.greeting.status
        self.phase = Phase.HANDSHAKE
        return GreetingReceived(self.greeting)

    def _on_auth(self, payload: bytes) -> Event | _NeedData:
        assert self._auth is not None
        step = self._auth.receive(payload)
        if step is None:
            return self.next_event()
        if isinstance(step, Reply):
            return SendAuth(self._frame(step.payload))
        self._auth = None
        if isinstance(step, Refused):
            self.phase = Phase.CLOSED
            return LoginRefused(step.error)
        assert isinstance(step, Finished)
        self.phase = Phase.COMMAND
        self.status = step.ok.status
        # Anything after the OK is unsolicited (a goodbye ERR, say): the next command finds it.
        self._tail = self._decoder.take_unparsed()
        return LoginSucceeded(step.ok)

    def _frame(self, payload: bytes) -> bytes:
        wire, self._seq = frame(payload, self._seq)
        return wire

    def _require(self, phase: Phase, sending: str) -> None:
        if self.phase is not phase:
            raise LocalProtocolError(f"cannot send {sending} in the {self.phase.value} phase")

    def _check_capabilities(self, capabilities: int) -> None:
        assert self.greeting is not None
        if capabilities & FORBIDDEN:
            raise LocalProtocolError(f"capabilities 0x{capabilities & FORBIDDEN:08x} are never sent upstream")
        if capabilities & REQUIRED != REQUIRED:
            raise LocalProtocolError("PROTOCOL_41, SECURE_CONNECTION and PLUGIN_AUTH are required")
        if capabilities & ~self.greeting.capabilities & 0xFFFFFFFF:
            raise LocalProtocolError("capabilities the upstream does not offer")

    def ssl_request(self, capabilities: int, *, charset: int = DEFAULT_CHARSET, max_packet: int = 0) -> bytes:
        """The SSLRequest (sequence id 1); the caller then runs the TLS handshake and calls tls_established."""
        self._require(Phase.HANDSHAKE, "an SSLRequest")
        self._check_capabilities(capabilities)
        assert self.greeting is not None
        if not self.greeting.capabilities & Capability.SSL:
            raise LocalProtocolError("the upstream does not offer TLS")
        self.phase = Phase.TLS
        return self._frame(packets.ssl_request(capabilities, max_packet or packets.DEFAULT_MAX_PACKET, charset))

    def tls_established(self) -> None:
        self._require(Phase.TLS, "the end of the TLS handshake")
        self.tls = True
        self.secure = True
        self.phase = Phase.HANDSHAKE

    def handshake_response(
        self,
        capabilities: int,
        user: str,
        password: str,
        *,
        loopback: bool,
        database: str = "",
        attributes: Mapping[str, str] | None = None,
        charset: int = DEFAULT_CHARSET,
        max_packet: int = 0,
        server_public_key: bytes | None = None,
    ) -> bytes:
        """HandshakeResponse41 with exactly `capabilities` (plus SSL when on TLS). `loopback`: the upstream is
        this host (a cleartext plugin may then run without TLS)."""
        self._require(Phase.HANDSHAKE, "a handshake response")
        self._check_capabilities(capabilities)
        assert self.greeting is not None
        self._auth = ClientAuth(password, secure=self.secure, loopback=loopback, server_public_key=server_public_key)
        plugin, auth_response = self._auth.start(self.greeting.auth_plugin, self.greeting.nonce)
        if self.tls:
            capabilities |= Capability.SSL
        self.capabilities = capabilities
        payload = packets.handshake_response(
            capabilities,
            max_packet or packets.DEFAULT_MAX_PACKET,
            charset,
            user,
            auth_response,
            database,
            plugin,
            attributes or {},
        )
        self.phase = Phase.AUTHENTICATION
        return self._frame(payload)

    # ---- command phase ----

    @property
    def busy(self) -> bool:
        """A command's response has not completed (or a LOCAL INFILE file is owed)."""
        return self.response is not None and not self.response.done

    @property
    def in_transaction(self) -> bool:
        return bool(self.status & Status.IN_TRANS)

    def _require_idle(self, sending: str) -> None:
        if self.phase is not _COMMAND:
            self._require(_COMMAND, sending)  # (raises)
        response = self.response
        if response is not None and not response.done:  # (busy, read in place: this runs for every command)
            raise LocalProtocolError(f"cannot send {sending} while a response is in progress")
        if self._tail:
            # Between commands the upstream only ever speaks to say goodbye (shutdown, idle timeout, KILL).
            unsolicited, self._tail = self._tail, b""
            self.phase = Phase.CLOSED
            error = _err_in(unsolicited)
            if error is not None:
                raise UpstreamError(Reason.CLOSED, f"the upstream ended the connection: {error}", error)
            raise UpstreamProtocolError("the upstream sent bytes between commands")

    def change_user(
        self,
        user: str,
        password: str,
        *,
        loopback: bool,
        database: str = "",
        attributes: Mapping[str, str] | None = None,
        charset: int = DEFAULT_CHARSET,
        server_public_key: bytes | None = None,
    ) -> bytes:
        """COM_CHANGE_USER: the upstream resets the session and logs `user` in again (events as for the login)."""
        self._require_idle("COM_CHANGE_USER")
        assert self.greeting is not None
        self._auth = ClientAuth(password, secure=self.secure, loopback=loopback, server_public_key=server_public_key)
        plugin, auth_response = self._auth.start(self.greeting.auth_plugin, self.greeting.nonce)
        payload = packets.change_user(
            self.capabilities, charset, user, auth_response, database, plugin, attributes or {}
        )
        self._seq = 0
        self.response = None
        self.phase = Phase.AUTHENTICATION
        return self._frame(payload)

    def command(self, payload: bytes) -> bytes:
        """A command's wire bytes (sequence ids from 0; a payload of 16 MiB or more goes in continuation packets).
        Its response is then followed by `response_data`. Raises UnsupportedCommand for COM_CHANGE_USER (see
        change_user), COM_QUIT (see quit) and commands whose response cannot be followed; UpstreamError when
        the upstream said goodbye since the last response."""
        self._require_idle("a command")
        if not payload:
            raise LocalProtocolError("empty command")
        command = payload[0]
        if command == _QUIT:
            raise UnsupportedCommand("COM_QUIT is not relayed: it would end the upstream connection")
        cursor = command == _STMT_EXECUTE and len(payload) > 5 and bool(payload[5] & CURSOR_TYPE_MASK)
        wire, seq = frame(payload, 0)
        self.response = ResponseTracker(command, self.capabilities, cursor=cursor, seq=seq, status=self.status)
        self._answered = False
        return wire

    def response_data(self, data: bytes) -> bytes:
        """Bytes received during a response → the part to forward now (possibly empty). Bytes that cannot be
        classified yet are kept and come out with the next call; so are bytes after the response's end, which
        make the next command fail (the upstream sends nothing unsolicited but a closing ERR)."""
        response = self.response
        if response is None or self.phase is not _COMMAND:
            raise LocalProtocolError("no command is waiting for its response")
        if self._tail:
            data = self._tail + data
            self._tail = b""
        if response.done:
            self._tail = data
            return b""
        try:
            used = response.feed(data)
        except UpstreamProtocolError:
            self.phase = Phase.CLOSED
            goodbye = _err_in(data) if not self._answered and data[3:4] == b"\x00" else None
            if goodbye is not None:  # numbered 0, it answers nothing: the upstream is closing the session
                raise UpstreamError(Reason.CLOSED, f"the upstream ended the connection: {goodbye}", goodbye) from None
            raise
        self.status = response.status
        self._answered = self._answered or used > 0
        if used == len(data):
            return data
        self._tail = data[used:]
        return data[:used]

    def infile_packet(self, payload: bytes) -> bytes:
        """Wire bytes for one packet of the client's LOCAL INFILE file (the empty packet ends the file)."""
        self._require(Phase.COMMAND, "LOCAL INFILE data")
        if self.response is None or not self.response.awaiting_infile:
            raise LocalProtocolError("the upstream did not ask for a file")
        return self.response.infile_packet(payload)

    def quit(self) -> bytes:
        """COM_QUIT; the connection is over (the upstream closes it without an answer)."""
        if self.phase is not Phase.COMMAND or self.busy:
            raise LocalProtocolError("COM_QUIT only between commands")
        self.phase = Phase.CLOSED
        return frame(bytes((Com.QUIT,)), 0)[0]

    def close(self) -> None:
        self.phase = Phase.CLOSED


def _err_in(data: bytes) -> ServerError | None:
    """The ERR packet at the start of `data`, if that is what it is."""
    if len(data) < 5 or data[4] != 0xFF:
        return None
    length = int.from_bytes(data[:3], "little")
    try:
        return parse_err(data[4 : 4 + length])
    except MalformedPacket:
        return None
