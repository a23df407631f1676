"""One session's leg to the upstream database: relay a client command and stream its response back unchanged,
with backpressure (a slow client slows the upstream read) and bounded memory; LOCAL INFILE only as the client
allowed it, the file coming from the client (fe never reads a file of its own)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from fe.mysql.constants import Capability
from fe.mysql.protocol import ClientProtocolError, InfileData, ServerProtocol
from fe.server.gateway import Gateway
from fe.server.stream import ConnectionClosed, PacketStream
from fe.upstream.connection import RelayResult, UpstreamConnection
from fe.upstream.errors import UpstreamError
from fe.upstream.response import Outcome, UnsupportedCommand

log = logging.getLogger("fe.gateway")

# Relayed bytes leave for the client whenever this much is queued (one TLS record, one send), and the relay waits
# while the client's socket buffer is full: memory stays bounded whatever the result's size.
_FLUSH_BYTES = 64 * 1024
WRITE_TIMEOUT_SECONDS = 60.0


class RelayBroken(Exception):
    """The session cannot go on (the upstream failed, or the client did, mid-response): close the connection."""


class UpstreamSession:
    def __init__(
        self, gateway: Gateway, connection: UpstreamConnection, stream: PacketStream, protocol: ServerProtocol
    ) -> None:
        self.gateway = gateway
        self.connection = connection
        self._stream = stream
        self._protocol = protocol
        self._queued = 0
        self.mid_response = False  # bytes of the current response reached the client

    async def _sink(self, chunk: bytes) -> None:
        stream = self._stream
        if stream.transport is None or stream.transport.is_closing():
            raise ConnectionClosed("the client went away mid-result")
        self.mid_response = True
        stream.write(chunk)
        self._queued += len(chunk)
        if self._queued >= _FLUSH_BYTES:
            self._queued = 0
            await stream.drain(WRITE_TIMEOUT_SECONDS)

    async def relay(self, payload: bytes) -> None:
        """One command, command byte first; its whole response reaches the client. Raises RelayBroken."""
        self.mid_response = False
        await self._complete(self.connection.relay(payload, self._sink))

    async def resume_infile(self) -> None:
        """A response the fast relay began stopped for a LOCAL INFILE file: relay the file and the rest of it."""
        await self._complete(self._local_infile())

    async def _complete(self, exchange: Awaitable[RelayResult]) -> None:
        try:
            result = await exchange
            while result.outcome is Outcome.LOCAL_INFILE:
                result = await self._local_infile()
        except UnsupportedCommand as exc:
            raise RelayBroken(str(exc)) from exc
        except UpstreamError as exc:
            raise RelayBroken(exc.message) from exc
        except (ConnectionClosed, ConnectionError, TimeoutError) as exc:
            self.connection.abort()  # mid-response: the upstream connection cannot be reused
            raise RelayBroken(f"the client went away mid-result: {exc}") from exc
        except ClientProtocolError as exc:  # a broken file packet of LOCAL INFILE
            self.connection.abort()
            self.mid_response = True  # the client is inside the command's exchange: close, no ERR can follow
            raise RelayBroken(f"the client broke the protocol mid-command: {exc}") from exc
        self._protocol.relayed(0)
        self._queued = 0

    async def _local_infile(self) -> RelayResult:
        """The upstream asked for a file: the client sends it (if it allowed LOCAL INFILE), packet by packet."""
        connection = self.connection
        if not self._protocol.capabilities & Capability.LOCAL_FILES:
            # The upstream only learns LOCAL_FILES from the client; one that asks anyway gets an empty file.
            result = await connection.infile_packet(b"", self._sink)
            assert result is not None
            return result
        self._protocol.relayed((connection.response_next_seq - 1) & 0xFF, complete=False, infile=True)
        await self._stream.drain(WRITE_TIMEOUT_SECONDS)
        while True:
            event = await self._stream.next_event(WRITE_TIMEOUT_SECONDS)
            assert isinstance(event, InfileData)
            result = await connection.infile_packet(event.payload, self._sink)
            if result is not None:
                return result

    async def end(self) -> None:
        """The session ended: the connection goes back to the pool if it is clean, else it is closed."""
        connection = self.connection
        await self.gateway.release(connection, clean=connection.usable and not connection.busy)
