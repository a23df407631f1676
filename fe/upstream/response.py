"""Where an upstream response ends, sans-IO: fed the raw bytes the upstream sends after a command, the tracker
says how many of them belong to the response, so they can be forwarded unchanged (headers included) as they
arrive, and when the response is complete, with the status flags of its last OK or EOF packet.

Only packet headers and the first bytes of each packet are looked at; a packet's payload is never gathered,
so a result of any size, and packets of 16 MiB and more (continuation packets), pass in bounded memory. A row or a
column definition is passed on once its header and first byte have arrived; any other packet whose first PEEK bytes
have not all arrived yet is left unconsumed until they have (at most PEEK + 3 bytes).
"""

from __future__ import annotations

from enum import Enum

from fe.mysql.codec import Cursor, MalformedPacket, frame
from fe.mysql.constants import MAX_PAYLOAD, Capability
from fe.upstream.commands import Com, Status
from fe.upstream.errors import ServerError, UpstreamProtocolError, parse_err

# Enough of a packet to classify it and read its status; a whole ERR (code, SQLSTATE, 512-byte message) fits.
PEEK = 1024


class Outcome(Enum):
    OK = "ok"  # an OK packet ended the response
    ERROR = "error"  # an ERR packet ended it
    END = "end"  # the EOF (or FE-headed OK) ending a result set, a field list or a fetch
    DATA = "data"  # COM_STATISTICS' single string packet
    LOCAL_INFILE = "local_infile"  # the upstream asks the client for a file (paused: see infile_packet)
    NONE = "none"  # the command has no response


class UnsupportedCommand(ValueError):
    """A command the relay cannot follow (COM_CHANGE_USER has its own exchange; replication streams never end)."""


# What each command's response looks like.
_NONE, _SINGLE, _RESULT, _PREPARE, _FIELD_LIST, _FETCH = range(6)
_KINDS: dict[int, int] = {
    Com.QUIT: _NONE,
    Com.STMT_SEND_LONG_DATA: _NONE,
    Com.STMT_CLOSE: _NONE,
    Com.QUERY: _RESULT,
    Com.STMT_EXECUTE: _RESULT,
    Com.PROCESS_INFO: _RESULT,
    Com.STMT_PREPARE: _PREPARE,
    Com.FIELD_LIST: _FIELD_LIST,
    Com.STMT_FETCH: _FETCH,
    **dict.fromkeys(
        (
            Com.SLEEP,
            Com.INIT_DB,
            Com.CREATE_DB,
            Com.DROP_DB,
            Com.REFRESH,
            Com.SHUTDOWN,
            Com.STATISTICS,
            Com.CONNECT,
            Com.PROCESS_KILL,
            Com.DEBUG,
            Com.PING,
            Com.TIME,
            Com.DELAYED_INSERT,
            Com.TABLE_DUMP,
            Com.CONNECT_OUT,
            Com.REGISTER_SLAVE,
            Com.STMT_RESET,
            Com.SET_OPTION,
            Com.DAEMON,
            Com.RESET_CONNECTION,
        ),
        _SINGLE,
    ),
}

# Parser states. Every state below _DONE still expects packets.
(
    _S_RESULT,  # the first packet of a result: OK, ERR, LOCAL INFILE request or a column count
    _S_COLUMNS,  # column definitions, _left to go
    _S_COLUMNS_EOF,  # the EOF after the column definitions (without DEPRECATE_EOF)
    _S_ROWS,  # rows until the packet that ends the result set
    _S_FETCH_ROWS,  # COM_STMT_FETCH's rows
    _S_FIELDS,  # COM_FIELD_LIST's definitions until EOF
    _S_PREPARE,  # COM_STMT_PREPARE's OK
    _S_PREP_DEFS,  # its parameter or column definitions, _left to go
    _S_PREP_EOF,  # the EOF after a group of them (without DEPRECATE_EOF)
    _S_SINGLE,  # one packet, whatever it is
    _S_AFTER_INFILE,  # the OK or ERR after the client sent its file
    _S_INFILE,  # paused: the client's file packets go up first
    _S_DONE,
) = range(13)

# The flags and commands the per-packet code looks at, as plain ints (an IntEnum's attribute costs a lookup).
_CHANGE_USER = int(Com.CHANGE_USER)
_STMT_EXECUTE = int(Com.STMT_EXECUTE)
_DEPRECATE_EOF = int(Capability.DEPRECATE_EOF)
_LOCAL_FILES = int(Capability.LOCAL_FILES)
_CURSOR_EXISTS = int(Status.CURSOR_EXISTS)
_MORE_RESULTS_EXISTS = int(Status.MORE_RESULTS_EXISTS)

_ROW_STATES = frozenset({_S_ROWS, _S_FETCH_ROWS})
# States in which an EOF packet may come, and ends something.
_EOF_STATES = frozenset({_S_ROWS, _S_FETCH_ROWS, _S_COLUMNS_EOF})

_INITIAL_STATES = {
    _SINGLE: _S_SINGLE,
    _RESULT: _S_RESULT,
    _PREPARE: _S_PREPARE,
    _FIELD_LIST: _S_FIELDS,
    _FETCH: _S_FETCH_ROWS,
}


# How many bytes a length-encoded integer takes, by its first byte (0xFB, NULL, and 0xFF are not integers).
_LENENC_SIZE = bytes(1 if first < 0xFB else {0xFC: 3, 0xFD: 4, 0xFE: 9}.get(first, 0) for first in range(256))


def _out_of_sequence(got: int, expected: int) -> UpstreamProtocolError:
    return UpstreamProtocolError(f"packet with sequence id {got}, expected {expected}")


def response_kind(command: int) -> int:
    try:
        return _KINDS[command]
    except KeyError:
        name = Com(command).name if command in Com._value2member_map_ else f"0x{command:02x}"
        raise UnsupportedCommand(f"command {name} cannot be relayed") from None


class ResponseTracker:
    """One command's response. `seq` is the sequence id of the response's first packet (1 after a one-packet
    command); `status` the session's status flags before it (kept when the response carries none)."""

    __slots__ = (
        "_continued",
        "_cursor",
        "_deprecate_eof",
        "_groups",
        "_left",
        "_local_files",
        "_seq",
        "_skip",
        "_state",
        "column_count",
        "command",
        "done",
        "error",
        "infile_name",
        "outcome",
        "param_count",
        "statement_id",
        "status",
        "warnings",
    )

    def __init__(self, command: int, capabilities: int, *, cursor: bool = False, seq: int = 1, status: int = 0):
        if command == _CHANGE_USER:
            raise UnsupportedCommand("COM_CHANGE_USER is an authentication exchange, not a relayed command")
        kind = _KINDS.get(command)
        if kind is None:
            kind = response_kind(command)  # (raises)
        self.command = command
        self._deprecate_eof = bool(capabilities & _DEPRECATE_EOF)
        self._local_files = bool(capabilities & _LOCAL_FILES)
        self._cursor = cursor and command == _STMT_EXECUTE
        self._seq = seq & 0xFF
        self._skip = 0  # bytes of the current packet still to pass, already classified
        self._continued = False  # the last packet was 0xFFFFFF long: the next one continues its payload
        self._left = 0
        self._groups: list[int] = []
        self.status = status
        self.warnings = 0
        self.error: ServerError | None = None
        self.infile_name = b""
        self.statement_id = self.param_count = self.column_count = 0
        if kind == _NONE:
            self._state = _S_DONE
            self.outcome: Outcome | None = Outcome.NONE
        else:
            self._state = _INITIAL_STATES[kind]
            self.outcome = None
        # The response is complete: nothing more of it will come (set by feed).
        self.done = self._state == _S_DONE

    @property
    def awaiting_infile(self) -> bool:
        """The upstream sent a LOCAL INFILE request and waits for the client's file (see infile_packet)."""
        return self._state == _S_INFILE

    @property
    def in_transaction(self) -> bool:
        return bool(self.status & Status.IN_TRANS)

    @property
    def next_seq(self) -> int:
        return self._seq

    # ---- bytes in ----

    def feed(self, data: bytes | bytearray | memoryview) -> int:
        """How many bytes from the start of `data` belong to the response (forward exactly those). Fewer than
        given: the rest is either the start of a packet not yet classifiable (feed it again with more bytes
        behind it) or, once done, bytes after the response. Raises UpstreamProtocolError."""
        end = len(data)
        pos = 0
        if self._skip:
            pos = min(self._skip, end)
            self._skip -= pos
            if self._skip:
                return pos
        # One loop over the packets, its state in locals (this runs for every response): rows and column
        # definitions, most packets, need a look at their header and first byte; so do a result's column count and
        # the EOF packets; anything else is classified by _classify.
        state, seq, left, continued = self._state, self._seq, self._left, self._continued
        while state < _S_INFILE and end - pos >= 4:
            length = data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16
            body = pos + 4
            if continued:  # the rest of a long payload: nothing to look at
                if data[pos + 3] != seq:
                    raise _out_of_sequence(data[pos + 3], seq)
                continued = length == MAX_PAYLOAD
            else:
                if not length:  # (a server never sends one as a packet of a response)
                    if data[pos + 3] != seq:
                        raise _out_of_sequence(data[pos + 3], seq)
                    raise UpstreamProtocolError("empty packet in a response")
                if end == body:
                    break
                first = data[body]
                if state in _ROW_STATES and first < 0xFE:  # one more row
                    if data[pos + 3] != seq:
                        raise _out_of_sequence(data[pos + 3], seq)
                    continued = length == MAX_PAYLOAD
                elif state == _S_COLUMNS and first != 0xFF and length < MAX_PAYLOAD:
                    if data[pos + 3] != seq:
                        raise _out_of_sequence(data[pos + 3], seq)
                    left -= 1
                    if not left:
                        state = _S_ROWS if self._deprecate_eof else _S_COLUMNS_EOF
                else:
                    if end - body < (length if length < PEEK else PEEK):
                        break
                    if data[pos + 3] != seq:
                        raise _out_of_sequence(data[pos + 3], seq)
                    continued = length == MAX_PAYLOAD
                    if state == _S_RESULT and 0 < first < 0xFB and not continued:
                        left = first  # a result set's column count, in one byte: the usual first packet
                        state = _S_COLUMNS
                    else:
                        self._state, self._seq, self._left = state, (seq + 1) & 0xFF, left
                        if first == 0xFE and 5 <= length < 7 and state in _EOF_STATES:
                            # An EOF packet (FE, warnings, status) ends the column definitions or the rows.
                            self._status(data, body, length)
                            self._ended(state)
                        else:
                            try:
                                self._classify(data, body, length)
                            except MalformedPacket as exc:
                                raise UpstreamProtocolError(f"malformed packet in a response: {exc}") from None
                        state, left = self._state, self._left
            seq = (seq + 1) & 0xFF
            pos = body + length
            if pos > end:  # the rest of this packet comes in later data
                self._skip = pos - end
                pos = end
                break
        self._state, self._seq, self._left, self._continued = state, seq, left, continued
        self.done = state == _S_DONE and not self._skip
        return pos

    def infile_packet(self, payload: bytes) -> bytes:
        """Wire bytes for one packet of the client's file, numbered after the LOCAL INFILE request; the empty
        packet that ends the file resumes the tracking (the upstream then answers OK or ERR)."""
        if self._state != _S_INFILE:
            raise UnsupportedCommand("the upstream is not waiting for a LOCAL INFILE file")
        wire, self._seq = frame(payload, self._seq)
        if not payload:
            self._state = _S_AFTER_INFILE
            self.outcome = None
        return wire

    # ---- classification ----

    def _classify(self, data: bytes | bytearray | memoryview, start: int, length: int) -> None:
        first = data[start]
        state = self._state
        long_packet = length == MAX_PAYLOAD
        if first == 0xFF and not long_packet:
            self._finish_error(data, start, length)
            return
        # An FE-headed packet shorter than a continued one ends a result set: a row that starts with 0xFE (an
        # 8-byte length) is at least 16 MiB long.
        is_end = first == 0xFE and not long_packet
        if state in (_S_ROWS, _S_FETCH_ROWS):
            if is_end:
                self._status(data, start, length)
                self._ended(state)
        elif state in (_S_RESULT, _S_AFTER_INFILE):
            self._result_start(data, start, length, first, is_end)
        elif state == _S_COLUMNS:
            self._left -= 1
            if not self._left:
                self._state = _S_ROWS if self._deprecate_eof else _S_COLUMNS_EOF
        elif state == _S_COLUMNS_EOF:
            self._expect_eof(is_end, "column definitions")
            self._status(data, start, length)
            self._ended(state)
        elif state == _S_FIELDS:
            if is_end:
                self._status(data, start, length)
                self._finish(Outcome.END)
        elif state == _S_PREPARE:
            self._prepare_ok(data, start, length, first)
        elif state == _S_PREP_DEFS:
            self._left -= 1
            if not self._left:
                if self._deprecate_eof:
                    self._next_group()
                else:
                    self._state = _S_PREP_EOF
        elif state == _S_PREP_EOF:
            self._expect_eof(is_end, "statement definitions")
            self._next_group()
        else:  # _S_SINGLE
            self._single(data, start, length, first)

    def _ended(self, state: int) -> None:
        """After the status of the packet that ends the column definitions (_S_COLUMNS_EOF) or the rows: what comes
        next."""
        if state == _S_COLUMNS_EOF:
            # A cursor: COM_STMT_EXECUTE ends after the metadata; rows come with COM_STMT_FETCH.
            if self._cursor and self.status & _CURSOR_EXISTS:
                self._finish(Outcome.END)
            else:
                self._state = _S_ROWS
        elif state == _S_ROWS and self.status & _MORE_RESULTS_EXISTS:
            self._state = _S_RESULT
        else:
            self._finish(Outcome.END)

    def _peek(self, data: bytes | bytearray | memoryview, start: int, length: int) -> bytes:
        return bytes(data[start : start + min(length, PEEK)])

    def _result_start(
        self, data: bytes | bytearray | memoryview, start: int, length: int, first: int, is_end: bool
    ) -> None:
        if first == 0x00 or is_end:
            self._status(data, start, length)
            if self.status & Status.MORE_RESULTS_EXISTS:
                self._state = _S_RESULT
            else:
                self._finish(Outcome.OK if first == 0x00 else Outcome.END)
            return
        if self._state == _S_AFTER_INFILE:
            raise UpstreamProtocolError(f"expected OK or ERR after the LOCAL INFILE file, got 0x{first:02x}")
        if first == 0xFB:
            # The server asks for a client-side file. Passed on only when the client itself allowed it.
            if not self._local_files:
                raise UpstreamProtocolError("LOCAL INFILE request although the client did not allow LOCAL_FILES")
            self.infile_name = self._peek(data, start, length)[1:]
            self._state = _S_INFILE
            self.outcome = Outcome.LOCAL_INFILE
            return
        columns = Cursor(self._peek(data, start, length)).lenenc_int()
        if not columns:
            raise UpstreamProtocolError("result set with zero columns")
        self._left = columns
        self._state = _S_COLUMNS

    def _prepare_ok(self, data: bytes | bytearray | memoryview, start: int, length: int, first: int) -> None:
        if first != 0x00:
            raise UpstreamProtocolError(f"expected the COM_STMT_PREPARE OK, got 0x{first:02x}")
        cur = Cursor(self._peek(data, start, length))
        cur.take(1)
        self.statement_id = cur.int4()
        self.column_count = cur.int2()
        self.param_count = cur.int2()
        cur.take(1)
        self.warnings = cur.int2() if cur.remaining >= 2 else 0
        self._groups = [n for n in (self.param_count, self.column_count) if n]
        self._next_group()

    def _next_group(self) -> None:
        if self._groups:
            self._left = self._groups.pop(0)
            self._state = _S_PREP_DEFS
        else:
            self._finish(Outcome.OK)

    def _single(self, data: bytes | bytearray | memoryview, start: int, length: int, first: int) -> None:
        if length < MAX_PAYLOAD and (first == 0x00 or (first == 0xFE and (length < 9 or self._deprecate_eof))):
            self._status(data, start, length)
            self._finish(Outcome.OK if first == 0x00 else Outcome.END)
        else:
            self._finish(Outcome.DATA)

    def _expect_eof(self, is_end: bool, after: str) -> None:
        if not is_end:
            raise UpstreamProtocolError(f"expected an EOF packet after the {after}")

    def _status(self, data: bytes | bytearray | memoryview, start: int, length: int) -> None:
        """Status flags and warnings of an OK packet or an EOF packet (as fe.upstream.packets.parse_ok reads them),
        read in place: this runs at the end of every response."""
        end = start + min(length, PEEK)
        if data[start] == 0xFE and length < 7:  # EOF: FE, warnings, status
            if length < 5:
                raise MalformedPacket("truncated EOF packet")
            self.warnings = data[start + 1] | data[start + 2] << 8
            self.status = data[start + 3] | data[start + 4] << 8
            return
        pos = start + 1
        for _ in range(2):  # affected rows and the last insert id, length-encoded
            if pos >= end:
                raise MalformedPacket("truncated OK packet")
            size = _LENENC_SIZE[data[pos]]
            if not size:
                raise MalformedPacket(f"invalid length-encoded integer prefix 0x{data[pos]:02x}")
            pos += size
        if pos + 2 > end:
            raise MalformedPacket("truncated OK packet")
        self.status = data[pos] | data[pos + 1] << 8
        self.warnings = data[pos + 2] | data[pos + 3] << 8 if pos + 4 <= end else 0

    def _finish_error(self, data: bytes | bytearray | memoryview, start: int, length: int) -> None:
        self.error = parse_err(self._peek(data, start, length))
        self._finish(Outcome.ERROR)

    def _finish(self, outcome: Outcome) -> None:
        self._state = _S_DONE
        self.outcome = outcome
