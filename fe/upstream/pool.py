"""Authenticated upstream connections kept for reuse, per upstream account and relayed capability flags.

A connection's capability flags are fixed when it is opened (COM_CHANGE_USER cannot change them), so a session is
only handed a connection opened with its client's relayed flags. A reused connection goes to its new session
through COM_CHANGE_USER, which resets everything the previous session left (variables, temporary tables,
transactions, prepared statements) and carries the new session's connection attributes. On release a connection
is kept only if it is open and between commands and survives COM_RESET_CONNECTION, which rolls back a transaction
the session left open and drops its locks and temporary tables at once instead of when it is next used.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass

from fe.upstream.capabilities import RELAYED
from fe.upstream.connect import connect
from fe.upstream.connection import UpstreamConnection
from fe.upstream.endpoint import UpstreamAccount, UpstreamServer
from fe.upstream.errors import Reason, UpstreamError
from fe.upstream.protocol import DEFAULT_CHARSET

_Key = tuple[str, int]


@dataclass(frozen=True, slots=True)
class PoolStats:
    open: int  # leased + idle + being opened
    idle: int
    leased: int
    created: int  # connections opened since the pool started
    reused: int  # acquisitions served by COM_CHANGE_USER on an idle connection


@dataclass(slots=True)
class _Idle:
    connection: UpstreamConnection
    since: float


class UpstreamPool:
    def __init__(
        self,
        server: UpstreamServer,
        *,
        max_size: int = 64,
        idle_timeout: float = 60.0,
        acquire_timeout: float = 10.0,
        reset_on_release: bool = True,
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.server = server
        self.max_size = max_size  # open connections in all, idle ones included
        self.idle_timeout = idle_timeout
        self.acquire_timeout = acquire_timeout
        self.reset_on_release = reset_on_release
        self._idle: dict[_Key, list[_Idle]] = {}
        self._leased: dict[UpstreamConnection, _Key] = {}
        self._open = 0
        self._created = 0
        self._reused = 0
        self._waiters: list[asyncio.Future[None]] = []
        self._reaper: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()  # background closes, referenced until done
        self._closed = False

    @property
    def stats(self) -> PoolStats:
        idle = sum(len(entries) for entries in self._idle.values())
        return PoolStats(self._open, idle, len(self._leased), self._created, self._reused)

    # ---- acquiring ----

    async def acquire(
        self,
        account: UpstreamAccount,
        attributes: Mapping[str, str] | None = None,
        *,
        client_capabilities: int,
        database: str = "",
        charset: int = DEFAULT_CHARSET,
    ) -> UpstreamConnection:
        """A connection logged in as `account` with `attributes`, for a client that negotiated
        `client_capabilities` with fe: an idle one handed over with COM_CHANGE_USER, else a new one. Waits up to
        acquire_timeout when max_size connections are open and none can be closed. Raises UpstreamError."""
        key = (account.user, client_capabilities & RELAYED)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.acquire_timeout
        while True:
            if self._closed:
                raise UpstreamError(Reason.CLOSED, "the upstream pool is closed")
            idle = self._take_idle(key, loop.time())
            if idle is not None:
                try:
                    await idle.change_user(account, attributes, database=database, charset=charset)
                except UpstreamError as exc:
                    self._forget(idle)
                    if exc.reason is Reason.REFUSED:
                        raise  # the account itself is refused: a fresh connection would be too
                    continue  # a connection that went stale while idle
                except BaseException:
                    self._forget(idle)
                    raise
                self._reused += 1
                self._leased[idle] = key
                return idle
            if self._open < self.max_size:
                return await self._open_new(key, account, attributes, client_capabilities, database, charset)
            if await self._close_oldest_idle():
                continue
            await self._wait_for_room(deadline - loop.time())

    async def _open_new(
        self,
        key: _Key,
        account: UpstreamAccount,
        attributes: Mapping[str, str] | None,
        client_capabilities: int,
        database: str,
        charset: int,
    ) -> UpstreamConnection:
        self._open += 1
        try:
            connection = await connect(
                self.server,
                account,
                client_capabilities=client_capabilities,
                attributes=attributes,
                database=database,
                charset=charset,
            )
        except BaseException:
            self._open -= 1
            self._wake()
            raise
        self._created += 1
        self._leased[connection] = key
        return connection

    def _take_idle(self, key: _Key, now: float) -> UpstreamConnection | None:
        """The most recently released idle connection for `key` (warmest), expired ones dropped on the way."""
        entries = self._idle.get(key)
        while entries:
            entry = entries.pop()
            if now - entry.since < self.idle_timeout and entry.connection.usable:
                return entry.connection
            self._drop(entry.connection)
        return None

    async def _close_oldest_idle(self) -> bool:
        """Make room for another account's connection by closing the idle connection unused the longest."""
        oldest: tuple[float, _Key] | None = None
        for key, entries in self._idle.items():
            if entries and (oldest is None or entries[0].since < oldest[0]):
                oldest = (entries[0].since, key)
        if oldest is None:
            return False
        entry = self._idle[oldest[1]].pop(0)
        await self._close(entry.connection)
        return True

    async def _wait_for_room(self, remaining: float) -> None:
        if remaining <= 0:
            raise UpstreamError(
                Reason.POOL_EXHAUSTED,
                f"all {self.max_size} connections to upstream {self.server.address} are in use",
            )
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(remaining):
                await waiter
        except TimeoutError:
            raise UpstreamError(
                Reason.POOL_EXHAUSTED,
                f"all {self.max_size} connections to upstream {self.server.address} stayed in use "
                f"for {self.acquire_timeout:g}s",
            ) from None
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # ---- releasing ----

    async def release(self, connection: UpstreamConnection) -> bool:
        """Give a connection back. It is kept for reuse only if open, between commands, and (with
        reset_on_release) COM_RESET_CONNECTION succeeds and leaves no transaction open (it rolls back the one a
        session left: clients whose autocommit is off by default, Connector/Python and PyMySQL among them, leave
        one after any read); without reset_on_release, only outside a transaction. Otherwise it is closed. True
        if kept."""
        key = self._leased.pop(connection, None)
        if key is None:
            await connection.close()  # not ours (or released twice): never pooled
            return False
        keep = not self._closed and connection.usable
        try:
            if keep and self.reset_on_release:
                keep = False  # until the reset succeeds: any failure (a cancellation too) closes the connection
                with contextlib.suppress(UpstreamError):
                    await connection.reset()
                    keep = not connection.in_transaction and not self._closed  # (closed during the reset)
            elif connection.in_transaction:
                keep = False
        finally:
            if not keep:
                await self._close(connection)
        if keep:
            self._idle.setdefault(key, []).append(_Idle(connection, asyncio.get_running_loop().time()))
            self._start_reaper()
            self._wake()
        return keep

    async def discard(self, connection: UpstreamConnection) -> None:
        """Close a leased connection instead of returning it (e.g. the client vanished mid-result)."""
        if self._leased.pop(connection, None) is not None:
            await self._close(connection)
        else:
            await connection.close()

    # ---- closing ----

    def _forget(self, connection: UpstreamConnection) -> None:
        """A connection taken from the idle list that turned out broken: drop it, free its slot."""
        connection.abort()
        self._open -= 1
        self._wake()

    def _drop(self, connection: UpstreamConnection) -> None:
        """Close an expired idle connection in the background (COM_QUIT, then close)."""
        self._open -= 1
        self._wake()
        task = asyncio.get_running_loop().create_task(connection.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, connection: UpstreamConnection) -> None:
        self._open -= 1
        self._wake()
        await connection.close()

    async def prune(self) -> int:
        """Close idle connections unused for idle_timeout; how many were closed."""
        now = asyncio.get_running_loop().time()
        expired: list[UpstreamConnection] = []
        for key, entries in list(self._idle.items()):
            keep: list[_Idle] = []
            for entry in entries:
                if now - entry.since < self.idle_timeout and entry.connection.usable:
                    keep.append(entry)
                else:
                    expired.append(entry.connection)
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]
        for connection in expired:
            await self._close(connection)
        return len(expired)

    def _start_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def _reap(self) -> None:
        interval = min(max(self.idle_timeout / 2, 0.05), 30.0)
        while any(self._idle.values()):
            await asyncio.sleep(interval)
            await self.prune()

    async def close(self) -> None:
        """Close the idle connections and refuse new acquisitions; leased ones close when released."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        idle = [entry.connection for entries in self._idle.values() for entry in entries]
        self._idle.clear()
        for connection in idle:
            await self._close(connection)
        self._wake()
