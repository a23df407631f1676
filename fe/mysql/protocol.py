"""The server side of one MySQL connection as a sans-IO state machine, after h11: fed bytes, it hands back events;
asked to send, it returns the wire bytes, or raises LocalProtocolError if the phase does not allow that packet.

Phases: GREETING (nothing sent) → CLIENT_HELLO (greeting sent; an SSLRequest or a HandshakeResponse may come) →
TLS (the driver runs the TLS handshake, then calls `tls_established`) → HANDSHAKE_RESPONSE → AUTHENTICATION (the
method's packets both ways) → COMMAND (one command, one reply; COM_CHANGE_USER goes back to AUTHENTICATION) →
CLOSED. Sequence ids live here only: every received packet's id is checked (continuation packets included) and
every sent packet is numbered in turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final

from fe.mysql import messages
from fe.mysql.codec import MalformedPacket, PacketTooLarge, frame
from fe.mysql.constants import MAX_PAYLOAD, Capability, Command
from fe.mysql.errors import ErrorCode, sqlstate
from fe.mysql.framing import Packet, PacketDecoder, SequenceMismatch


class Phase(Enum):
    GREETING = "greeting"
    CLIENT_HELLO = "client hello"
    TLS = "tls"
    HANDSHAKE_RESPONSE = "handshake response"
    AUTHENTICATION = "authentication"
    COMMAND = "command"
    CLOSED = "closed"


# The phases, and the other enums' members the per-packet paths use, as module globals: in Python 3.11 each
# `Phase.X` goes through the enum metaclass's __getattr__ hook, about a thousand machine instructions; a global
# costs a few dozen.
_GREETING: Final = Phase.GREETING
_CLIENT_HELLO: Final = Phase.CLIENT_HELLO
_TLS: Final = Phase.TLS
_HANDSHAKE_RESPONSE: Final = Phase.HANDSHAKE_RESPONSE
_AUTHENTICATION: Final = Phase.AUTHENTICATION
_COMMAND: Final = Phase.COMMAND
_CLOSED: Final = Phase.CLOSED
_COM_QUIT: Final = int(Command.QUIT)
_COM_CHANGE_USER: Final = int(Command.CHANGE_USER)
_CLIENT_SSL: Final = int(Capability.SSL)


# ---- events: what the client did ----


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()


@dataclass(slots=True)
class SslRequested:
    request: messages.SSLRequest


@dataclass(slots=True)
class HandshakeReceived:
    response: messages.HandshakeResponse


@dataclass(slots=True)
class AuthReply:
    """The client's answer to an AuthSwitchRequest or AuthMoreData."""

    payload: bytes


@dataclass(slots=True)
class CommandReceived:
    command: int
    body: bytes


@dataclass(slots=True)
class ChangeUserRequested:
    change: messages.ChangeUser


@dataclass(slots=True)
class QuitRequested:
    pass


_QUIT_REQUESTED: Final = QuitRequested()  # it carries nothing: one for every connection


@dataclass(slots=True)
class InfileData:
    """A packet of the file the client sends after a LOCAL INFILE request; an empty one ends the file."""

    payload: bytes


Event = (
    SslRequested | HandshakeReceived | AuthReply | CommandReceived | ChangeUserRequested | QuitRequested | InfileData
)


# ---- errors ----


class ClientProtocolError(Exception):
    """The client broke the protocol. The connection is over: send `protocol.fail(exc)` and close."""

    def __init__(self, code: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.code = code
        self.sqlstate = sqlstate(code)
        self.message = message
        self.reason = reason  # the login log's reason code when this ends a login


class LocalProtocolError(Exception):
    """fe tried to send something the connection's phase does not allow: a bug, never put on the wire."""


_PACKET_TOO_LARGE = "Got a packet bigger than 'max_allowed_packet' bytes"
_OUT_OF_ORDER = "Got packets out of order"


class ServerProtocol:
    """One connection's protocol state. `preauth_limit` bounds packets until the login succeeded,
    `packet_limit` after it."""

    __slots__ = (
        "_awaiting_reply",
        "_decoder",
        "_infile",
        "_seq",
        "capabilities",
        "packet_limit",
        "phase",
        "preauth_limit",
        "server_capabilities",
    )

    def __init__(self, preauth_limit: int, packet_limit: int, server_capabilities: int) -> None:
        self._decoder = PacketDecoder(preauth_limit)
        self.preauth_limit = preauth_limit
        self.packet_limit = packet_limit
        self.server_capabilities = server_capabilities
        self.capabilities = 0  # what the client and fe both speak, once the handshake response came
        self.phase = _GREETING
        self._seq = 0  # the id of the next packet, whichever side sends it
        self._awaiting_reply = False  # COMMAND phase: a command came and its reply is not complete yet
        self._infile = False  # COMMAND phase: the client is sending a file for LOCAL INFILE

    # ---- bytes in ----

    def receive_data(self, data: bytes) -> bool:
        """Feed received bytes. True when the client is far ahead (more than two packets' worth buffered and not
        yet handed out): the driver should stop reading until events are taken."""
        decoder = self._decoder
        return decoder.feed(data) > 2 * decoder.limit + 65536

    @property
    def buffered(self) -> int:
        """Bytes received and not yet handed out as events (for the driver's read backpressure)."""
        return self._decoder.buffered

    @property
    def read_limit(self) -> int:
        return self._decoder.limit

    def take_unparsed(self) -> bytes:
        """After SslRequested: the bytes that came behind the SSLRequest belong to TLS."""
        return self._decoder.take_unparsed()

    def next_event(self) -> Event | _NeedData:
        """The next thing the client did, or NEED_DATA; raises ClientProtocolError when it broke the protocol."""
        phase = self.phase
        if phase is _COMMAND:
            if not self._awaiting_reply:
                self._seq = 0  # every command starts a new sequence
                if not self._infile:
                    command = self._whole_command()
                    if command is not None:
                        return command
        elif phase is _GREETING or phase is _TLS or phase is _CLOSED:
            return NEED_DATA  # bytes now are not ours to read (not yet, TLS's, or too late)
        decoder = self._decoder
        if len(decoder.buffer) < 4:
            return NEED_DATA  # not even a header: the usual answer while the client has not sent its next packet
        try:
            packet = decoder.next_packet()
        except PacketTooLarge:
            self._seq = (self._seq + 1) & 0xFF
            raise self._broken(ErrorCode.NET_PACKET_TOO_LARGE, _PACKET_TOO_LARGE, "packet_too_large") from None
        except SequenceMismatch as exc:
            self._seq = (exc.seq + 1) & 0xFF
            raise self._broken(ErrorCode.NET_PACKETS_OUT_OF_ORDER, _OUT_OF_ORDER, "sequence_error") from None
        if packet is None:
            return NEED_DATA
        if packet.seq != self._seq:
            self._seq = packet.next_seq
            raise self._broken(ErrorCode.NET_PACKETS_OUT_OF_ORDER, _OUT_OF_ORDER, "sequence_error")
        self._seq = packet.next_seq
        if phase is _COMMAND:
            if self._infile:
                self._infile = bool(packet.payload)
                return InfileData(packet.payload)
            return self._command(packet)
        if phase is _AUTHENTICATION:
            return AuthReply(packet.payload)
        return self._client_hello(packet)  # CLIENT_HELLO or HANDSHAKE_RESPONSE

    def _whole_command(self) -> CommandReceived | None:
        """The usual case of the command phase, read in place: a whole command packet, not 16 MiB long, numbered
        0, that is neither COM_QUIT nor COM_CHANGE_USER. None for anything else (the general path decides)."""
        decoder = self._decoder
        buffer = decoder.buffer
        if len(buffer) < 5 or decoder.chunks_size:
            return None
        length = buffer[0] | buffer[1] << 8 | buffer[2] << 16
        end = 4 + length
        if buffer[3] or len(buffer) < end or length >= MAX_PAYLOAD or length > decoder.limit or not length:
            return None
        command = buffer[4]
        if command in (_COM_QUIT, _COM_CHANGE_USER):
            return None
        body = bytes(buffer[5:end])
        del buffer[:end]
        self._seq = 1
        self._awaiting_reply = True
        return CommandReceived(command, body)

    def _client_hello(self, packet: Packet) -> Event:
        try:
            hello = messages.parse_client_hello(packet.payload, self.server_capabilities)
            if isinstance(hello, messages.SSLRequest):
                if self.phase is _HANDSHAKE_RESPONSE:
                    raise MalformedPacket("a second SSLRequest")
                self.phase = _TLS
                return SslRequested(hello)
            if self.phase is _CLIENT_HELLO and hello.capabilities & _CLIENT_SSL:
                raise MalformedPacket("client asked for TLS without an SSLRequest")
        except MalformedPacket as exc:
            raise self._broken(ErrorCode.HANDSHAKE, f"Bad handshake: {exc}", "malformed") from None
        self.capabilities = hello.capabilities
        self.phase = _AUTHENTICATION
        return HandshakeReceived(hello)

    def _command(self, packet: Packet) -> Event:
        payload = packet.payload
        if not payload:
            raise self._broken(ErrorCode.MALFORMED_PACKET, "Malformed communication packet.", "malformed")
        command = payload[0]
        if command == _COM_QUIT:
            self.phase = _CLOSED
            return _QUIT_REQUESTED
        self._awaiting_reply = True
        if command == _COM_CHANGE_USER:
            try:
                change = messages.parse_change_user(payload, self.capabilities)
            except MalformedPacket as exc:
                raise self._broken(
                    ErrorCode.MALFORMED_PACKET, f"Malformed COM_CHANGE_USER: {exc}", "malformed"
                ) from None
            self._awaiting_reply = False
            self.phase = _AUTHENTICATION
            self._decoder.limit = self.preauth_limit
            return ChangeUserRequested(change)
        return CommandReceived(command, payload[1:])

    def _broken(self, code: int, message: str, reason: str) -> ClientProtocolError:
        """The client broke the protocol: only `fail` may be sent now."""
        self._awaiting_reply = True
        return ClientProtocolError(code, message, reason)

    # ---- bytes out ----

    def _frame_one(self, payload: bytes) -> bytes:
        wire, self._seq = frame(payload, self._seq)
        return wire

    def _frame(self, payloads: Sequence[bytes]) -> bytes:
        if len(payloads) == 1:
            wire, self._seq = frame(payloads[0], self._seq)
            return wire
        seq = self._seq
        parts = []
        for payload in payloads:
            wire, seq = frame(payload, seq)
            parts.append(wire)
        self._seq = seq
        return b"".join(parts)

    def _require(self, *phases: Phase, sending: str) -> None:
        if self.phase not in phases:
            raise self._wrong_phase(sending)

    def _wrong_phase(self, sending: str) -> LocalProtocolError:
        return LocalProtocolError(f"cannot send {sending} in the {self.phase.value} phase")

    def greeting(self, connection_id: int, nonce: bytes, server_version: str, plugin: str, status: int) -> bytes:
        if self.phase is not _GREETING:
            raise self._wrong_phase("a greeting")
        payload = messages.greeting(connection_id, nonce, self.server_capabilities, server_version, plugin, status)
        self.phase = _CLIENT_HELLO
        return self._frame_one(payload)

    def refuse(self, code: int, message: str) -> bytes:
        """An ERR instead of the greeting (too many connections); the connection is over."""
        self._require(_GREETING, sending="a refusal")
        self.phase = _CLOSED
        return self._frame_one(messages.err(code, sqlstate(code), message, protocol41=False))

    def tls_established(self) -> None:
        if self.phase is not _TLS:
            raise self._wrong_phase("the end of the TLS handshake")
        self.phase = _HANDSHAKE_RESPONSE

    def auth_packet(self, payload: bytes) -> bytes:
        """An AuthSwitchRequest or AuthMoreData of the authentication exchange."""
        if self.phase is not _AUTHENTICATION:
            raise self._wrong_phase("an authentication packet")
        if not payload or payload[0] not in (0x01, 0xFE):
            raise LocalProtocolError("an authentication packet is AuthMoreData (0x01) or AuthSwitchRequest (0xFE)")
        return self._frame_one(payload)

    def login_ok(self, status: int) -> bytes:
        """The login succeeded: OK, and the command phase with its larger packet limit begins."""
        if self.phase is not _AUTHENTICATION:
            raise self._wrong_phase("the login's OK")
        self.phase = _COMMAND
        self._awaiting_reply = False
        self._decoder.limit = self.packet_limit
        return self._frame_one(messages.ok(status=status))

    def login_denied(self, code: int, message: str, state: str | None = None) -> bytes:
        """The login failed: ERR, and the connection is over (nothing after a failed login is ever served)."""
        self._require(_AUTHENTICATION, sending="the login's ERR")
        self.phase = _CLOSED
        return self._frame_one(messages.err(code, state or sqlstate(code), message))

    def reply(self, payloads: Sequence[bytes], *, complete: bool = True) -> bytes:
        """The reply to the current command (OK, ERR, or a result set's packets). A reply sent in parts passes
        complete=False for all but the last."""
        if self.phase is not _COMMAND:
            raise self._wrong_phase("a command's reply")
        if not self._awaiting_reply:
            raise LocalProtocolError("no command is waiting for a reply")
        wire = self._frame(payloads)
        if complete:
            self._awaiting_reply = False
        return wire

    def relayed(self, last_seq: int, *, complete: bool = True, infile: bool = False) -> None:
        """The driver passed packets of the current command's reply through unchanged (from an upstream database,
        numbered by it; `last_seq` is the last one's id). `infile`: that packet was a LOCAL INFILE request, so the
        client's file packets come next (InfileData), and the reply goes on after them."""
        self._require(_COMMAND, sending="a relayed reply")
        if not self._awaiting_reply:
            raise LocalProtocolError("no command is waiting for a reply")
        self._seq = (last_seq + 1) & 0xFF
        self._infile = infile
        if complete:
            self._awaiting_reply = False

    def error(self, code: int, message: str, state: str | None = None) -> bytes:
        """An ERR that answers the current command; the session goes on. `state`: a SQLSTATE other than the
        registry's for `code` (a statement error that carries its own)."""
        return self.reply((messages.err(code, state or sqlstate(code), message),))

    def fail(self, error: ClientProtocolError) -> bytes:
        """The ERR that ends a connection whose client broke the protocol."""
        return self.close_with(error.code, error.message)

    def close_with(self, code: int, message: str) -> bytes:
        """An ERR that ends the connection from any phase after the greeting: a broken protocol, the handshake
        or idle timeout, shutdown. Between commands it is unsolicited and numbered from 0."""
        if self.phase in (_GREETING, _CLOSED):
            raise LocalProtocolError(f"cannot send a closing ERR in the {self.phase.value} phase")
        if self.phase is _COMMAND and not self._awaiting_reply:
            self._seq = 0
        self.phase = _CLOSED
        return self._frame_one(messages.err(code, sqlstate(code), message))

    def close(self) -> None:
        """The driver closes the connection (or lost it): nothing more is sent or read."""
        self.phase = _CLOSED
