"""The benchmark's client: scripts/bench/mysqlwire.py's lean asyncio connection (TLS over memory BIOs, one
SSLContext per process, caching_sha2_password or mysql_native_password), plus what this benchmark times:

- `query()` (inherited): one COM_QUERY and its text result set, parsed into rows; used for `SELECT 1`;
- `stream()`: a large result counted as it arrives, never assembled: the bytes of each TLS read are walked
  packet header by packet header (`ResultCounter`), so the client's cost per byte is the decryption and little
  else, and 200 MB pass in a few hundred KiB of client memory.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from scripts.bench.mysqlwire import (
    CLIENT_DEPRECATE_EOF,
    COM_QUERY,
    Connection,
    WireError,
    parse_error,
    read_lenenc_int,
)

MAX_PAYLOAD = 0xFFFFFF
# Enough of a packet's payload to classify it: the column count (a length-encoded integer) fits, and so does an
# ERR packet's message once it is seen to be one.
_PEEK = 9
_ERR_PEEK = 1024

# Where a text result set is.
_COUNT, _COLUMNS, _COLUMNS_EOF, _ROWS, _DONE = range(5)


class ResultCounter:
    """Sans-IO: fed the bytes that answer one COM_QUERY (in pieces of any size), it follows the packets without
    keeping them, counting the rows and their payload bytes, until the packet that ends the result set.

    `feed` returns how many of the bytes belonged to the response (all of them until it is done)."""

    __slots__ = (
        "_continued",
        "_deprecate_eof",
        "_left",
        "_length",
        "_peek",
        "_seq",
        "_skip",
        "_state",
        "_want",
        "columns",
        "error",
        "packets",
        "row_payload_bytes",
        "rows",
        "wire_bytes",
    )

    def __init__(self, *, deprecate_eof: bool) -> None:
        self._deprecate_eof = deprecate_eof
        self._state = _COUNT
        self._seq = 1  # the response's first packet follows the command's (0)
        self._skip = 0  # payload bytes of the current packet still to pass, already classified
        self._peek = bytearray()  # the current packet's header, then its first payload bytes
        self._want = 4  # how many bytes _peek needs before the packet can be classified
        self._length = -1  # the current packet's payload length, once its header is in _peek
        self._continued = False  # the previous packet was MAX_PAYLOAD long: this one continues its payload
        self._left = 0
        self.columns = 0
        self.rows = 0
        self.row_payload_bytes = 0
        self.packets = 0
        self.wire_bytes = 0
        self.error: WireError | None = None

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def feed(self, data: bytes | bytearray | memoryview) -> int:
        end = len(data)
        pos = 0
        while pos < end and self._state != _DONE:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                if not self._skip:
                    self._packet_done()
                continue
            take = min(self._want - len(self._peek), end - pos)
            self._peek += data[pos : pos + take]
            pos += take
            if len(self._peek) < self._want:
                continue
            if self._length < 0:
                self._header()
            else:
                self._classify()
        self.wire_bytes += pos
        return pos

    def _header(self) -> None:
        head = self._peek
        self._length = head[0] | head[1] << 8 | head[2] << 16
        if head[3] != self._seq:
            raise WireError(f"packet with sequence id {head[3]}, expected {self._seq}")
        self._seq = (self._seq + 1) & 0xFF
        self.packets += 1
        if self._continued:  # nothing to look at in the rest of a long payload
            self.row_payload_bytes += self._length
            self._continued = self._length == MAX_PAYLOAD
            self._skip = self._length
            if not self._skip:
                self._packet_done()
            return
        if self._length == 0:
            raise WireError("empty packet in a result set")
        self._want = 4 + min(self._length, _PEEK)

    def _classify(self) -> None:
        payload = bytes(self._peek[4:])
        length = self._length
        first = payload[0]
        if first == 0xFF and length < MAX_PAYLOAD:
            if len(payload) < min(length, _ERR_PEEK):
                self._want = 4 + min(length, _ERR_PEEK)  # the whole message, then classify again
                return
            self.error = parse_error(payload)
            self._state = _DONE
        elif self._state == _COUNT:
            if first == 0x00:
                self._state = _DONE  # an OK: no result set
            elif first == 0xFB:
                raise WireError("LOCAL INFILE request: not supported by this client")
            else:
                self.columns = read_lenenc_int(payload, 0)[0]
                self._left = self.columns
                self._state = _COLUMNS
        elif self._state == _COLUMNS:
            self._left -= 1
            if not self._left:
                self._state = _ROWS if self._deprecate_eof else _COLUMNS_EOF
        elif self._state == _COLUMNS_EOF:
            if first != 0xFE:
                raise WireError(f"expected the EOF after the column definitions, got 0x{first:02x}")
            self._state = _ROWS
        elif first == 0xFE and length < MAX_PAYLOAD:
            self._state = _DONE  # the EOF (or, with DEPRECATE_EOF, the FE-headed OK) ending the result set
        else:
            self.rows += 1
            self.row_payload_bytes += length
            self._continued = length == MAX_PAYLOAD
        self._skip = length - len(payload)
        if not self._skip:
            self._packet_done()

    def _packet_done(self) -> None:
        self._peek.clear()
        self._want = 4
        self._length = -1


@dataclass(frozen=True)
class Streamed:
    rows: int
    row_payload_bytes: int
    wire_bytes: int  # what the server sent for the result, MySQL packet headers included (TLS records not)
    seconds: float  # from just before the command was written to the last packet


class BenchConnection(Connection):
    """mysqlwire's connection with `stream()`; open it with `await BenchConnection.open(...)`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        super().__init__(loop, timeout)
        self._counter: ResultCounter | None = None

    def _append(self, data: bytes) -> None:
        counter = self._counter
        if counter is None or counter.done:
            super()._append(data)
            return
        try:
            used = counter.feed(data)
        except WireError as exc:
            self._fail(exc)
            return
        if used < len(data):
            super()._append(data[used:])  # never expected: the server speaks only when asked

    async def stream(self, sql: str, timeout: float | None = None, stall: tuple[int, float] | None = None) -> Streamed:
        """Run a statement whose result set is large; count it as it arrives. `stall` = (bytes, seconds): once that
        many bytes arrived, stop reading the socket for that long (a slow client). Raises WireError."""
        counter = ResultCounter(deprecate_eof=bool(self.capabilities & CLIENT_DEPRECATE_EOF))
        saved_timeout = self.timeout
        if timeout is not None:
            self.timeout = timeout
        self._counter = counter
        self.seq = 0
        started = time.perf_counter()
        try:
            self._send(COM_QUERY + sql.encode())
            self._arm("stream")
            while not counter.done:
                if stall is not None and counter.wire_bytes >= stall[0] and self.transport is not None:
                    self.transport.pause_reading()
                    await asyncio.sleep(stall[1])
                    self.transport.resume_reading()
                    stall = None
                await self._wait()
        finally:
            self._disarm()
            self._counter = None
            self.timeout = saved_timeout
        seconds = time.perf_counter() - started
        if counter.error is not None:
            raise counter.error
        return Streamed(counter.rows, counter.row_payload_bytes, counter.wire_bytes, seconds)
