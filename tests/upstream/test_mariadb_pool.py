"""The upstream pool against a real MariaDB: reuse through COM_CHANGE_USER with the new session's attributes,
the release rules (a reset, which rolls back a transaction left open; never mid-response or broken), one key per
account and relayed flags, the size bound, idle expiry, connections that died while idle, refused accounts."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pymysql
import pytest

from fe.upstream.commands import Status
from fe.upstream.endpoint import UpstreamAccount, UpstreamServer
from fe.upstream.errors import Reason, UpstreamError
from fe.upstream.pool import PoolStats, UpstreamPool
from tests.support.mariadb_server import MariaDbServer
from tests.support.upstream_wire import query, scalar
from tests.upstream.conftest import CLIENT_CAPS, EOF_CLIENT_CAPS, NATIVE, OTHER, session_attributes


@pytest.fixture
async def pool(upstream_tls: UpstreamServer) -> AsyncIterator[UpstreamPool]:
    pool = UpstreamPool(upstream_tls, max_size=3, idle_timeout=30.0, acquire_timeout=1.0)
    try:
        yield pool
    finally:
        await pool.close()


def on_server(mariadb: MariaDbServer, connection_id: int) -> bool:
    rows = mariadb.execute(f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {connection_id}")
    return rows == [(1,)]


def wait_until_gone(mariadb: MariaDbServer, connection_id: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while on_server(mariadb, connection_id):
        assert time.monotonic() < deadline, f"connection {connection_id} still open on the server"
        time.sleep(0.02)


async def test_reuse_goes_through_change_user_with_the_new_attributes(
    pool: UpstreamPool, mariadb: MariaDbServer
) -> None:
    first = await pool.acquire(NATIVE, {"fe_user": "ann"}, client_capabilities=CLIENT_CAPS)
    await query(first, "SET @mine = 'ann'")
    assert await pool.release(first)
    assert pool.stats == PoolStats(open=1, idle=1, leased=0, created=1, reused=0)
    second = await pool.acquire(NATIVE, {"fe_user": "bob"}, client_capabilities=CLIENT_CAPS, database="fe_test")
    assert second is first and pool.stats == PoolStats(open=1, idle=0, leased=1, created=1, reused=1)
    assert await scalar(second, "SELECT @mine") is None
    assert await scalar(second, "SELECT DATABASE()") == b"fe_test"
    assert session_attributes(mariadb, second.connection_id) == {"fe_user": "bob"}


async def test_release_drops_the_old_sessions_locks_at_once(pool: UpstreamPool, mariadb: MariaDbServer) -> None:
    connection = await pool.acquire(NATIVE, client_capabilities=CLIENT_CAPS)
    assert await scalar(connection, "SELECT GET_LOCK('fe_pool_lock', 0)") == b"1"
    assert mariadb.execute("SELECT IS_FREE_LOCK('fe_pool_lock')") == [(0,)]
    assert await pool.release(connection)
    assert mariadb.execute("SELECT IS_FREE_LOCK('fe_pool_lock')") == [(1,)]


async def test_a_transaction_left_open_is_rolled_back_and_the_connection_kept(
    pool: UpstreamPool, mariadb: MariaDbServer
) -> None:
    """What a session of a client whose autocommit is off (PyMySQL's and Connector/Python's default) leaves after
    any read or write: the reset rolls it back, its locks go, and the connection serves the next session."""
    connection = await pool.acquire(NATIVE, client_capabilities=CLIENT_CAPS)
    await query(connection, "SET autocommit = 0")
    await query(connection, "INSERT INTO fe_test.t VALUES (300, 'never committed')")
    await query(connection, "SELECT * FROM fe_test.t WHERE id = 1 FOR UPDATE")
    assert connection.in_transaction
    assert await pool.release(connection)
    assert not connection.in_transaction and pool.stats.idle == 1
    assert mariadb.execute("SELECT COUNT(*) FROM fe_test.t WHERE id = 300") == [(0,)]
    mariadb.execute("UPDATE fe_test.t SET v = 'one' WHERE id = 1")  # the row lock went with the transaction
    again = await pool.acquire(NATIVE, client_capabilities=CLIENT_CAPS)
    assert again is connection and await scalar(again, "SELECT @@autocommit") == b"1"


async def test_an_xa_transaction_left_open_never_reaches_the_next_session(
    pool: UpstreamPool, mariadb: MariaDbServer
) -> None:
    for steps in (["XA START 'fe-xa-1'"], ["XA START 'fe-xa-2'", "XA END 'fe-xa-2'", "XA PREPARE 'fe-xa-2'"]):
        connection = await pool.acquire(NATIVE, client_capabilities=CLIENT_CAPS)
        for step in steps:
            await query(connection, step)
        # MariaDB's reset ends an active XA transaction and detaches a prepared one: both connections are kept,
        # and the next session starts a transaction of its own.
        assert await pool.release(connection)
        again = await pool.acquire(NATIVE, client_capabilities=CLIENT_CAPS)
        assert again is connection and not again.in_transaction
        await query(again, "XA START 'fe-xa-next'")
        await query(again, "XA END 'fe-xa-next'")
        await query(again, "XA ROLLBACK 'fe-xa-next'")
        assert await pool.release(again)
    # A prepared XA transaction outlives its session on MariaDB (as it would a disconnection), detached from the
    # connection: someone who knows its xid ends it (MariaDB reports the rollback as error 1402).
    assert [row[3] for row in mariadb.execute("XA RECOVER")] == [b"fe-xa-2"]
    with contextlib.suppress(pymysql.err.OperationalError):
        mariadb.execute("XA ROLLBACK 'fe-xa-2'")
    assert mariadb.execute("XA RECOVER") == []


async def test_a_reset_that_leaves_a_transaction_open_closes_the_connection(
    pool: UpstreamPool, mariadb: MariaDbServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = await pool.acquire(NATIVE, client_capabilities=CLIENT_CAPS)
    await query(connection, "BEGIN")
    reset = connection.reset

    async def reset_that_keeps_the_transaction() -> None:  # no real server does this: a fake status after it
        await reset()
        connection._protocol.status |= Status.IN_TRANS

    monkeypatch.setattr(connection, "reset", reset_that_keeps_the_transaction)
    assert not await pool.release(connection)
    assert connection.broken and pool.stats.open == 0
    await asyncio.to_thread(wait_until_gone, mariadb, connection.connection_id)


async def test_a_pool_closed_during_a_release_closes_the_connection(pool: UpstreamPool, mariadb: MariaDbServer) -> None:
    connection = await pool.acquire(NATIVE, client_capabilities=CLIENT_CAPS)
    release = asyncio.create_task(pool.release(connection))
    await asyncio.sleep(0)  # the release is waiting for its COM_RESET_CONNECTION's answer
    await pool.close()
    assert not await release
    assert connection.broken and pool.stats.open == 0 and pool.stats.idle == 0
    await asyncio.to_thread(wait_until_gone, mariadb, connection.connection_id)


async def test_without_reset_a_connection_in_a_transaction_is_closed(
    upstream_tls: UpstreamServer, mariadb: MariaDbServer
) -> None:
    pool = UpstreamPool(upstream_tls, max_size=1, reset_on_release=False)
    try:
        connection = await pool.acquire(NATIVE, client_capabilities=CLIENT_CAPS)
        await query(connection, "BEGIN")
        assert not await pool.release(connection)
        assert connection.broken and pool.stats.open == 0
        await asyncio.to_thread(wait_until_gone, mariadb, connection.connection_id)
    finally:
        await pool.close()


async def test_a_connection_mid_response_is_closed_on_release(pool: UpstreamPool, mariadb: MariaDbServer) -> None:
    connection = await pool.acquire(NATIVE, client_capabilities=CLIENT_CAPS)

    async def client_gone(chunk: bytes) -> None:
        raise ConnectionResetError

    with pytest.raises(ConnectionResetError):
        await connection.relay(b"\x03SELECT seq FROM fe_test.seq_1_to_100000", client_gone)
    assert connection.busy
    assert not await pool.release(connection)
    assert pool.stats.open == 0
    await asyncio.to_thread(wait_until_gone, mariadb, connection.connection_id)


async def test_a_broken_connection_is_never_reused(pool: UpstreamPool, mariadb: MariaDbServer) -> None:
    connection = await pool.acquire(NATIVE, client_capabilities=CLIENT_CAPS)
    mariadb.execute(f"KILL {connection.connection_id}")
    with pytest.raises(UpstreamError):
        await query(connection, "SELECT 1")
    assert not await pool.release(connection)
    fresh = await pool.acquire(NATIVE, client_capabilities=CLIENT_CAPS)
    assert fresh is not connection and await scalar(fresh, "SELECT 1") == b"1"


async def test_connections_are_kept_per_account_and_relayed_flags(pool: UpstreamPool) -> None:
    native = await pool.acquire(NATIVE, client_capabilities=CLIENT_CAPS)
    assert await pool.release(native)
    other = await pool.acquire(OTHER, client_capabilities=CLIENT_CAPS)
    assert other is not native and await scalar(other, "SELECT CURRENT_USER()") == b"fe_other@%"
    with_eof = await pool.acquire(NATIVE, client_capabilities=EOF_CLIENT_CAPS)
    assert with_eof is not native  # COM_CHANGE_USER cannot change a connection's flags
    again = await pool.acquire(NATIVE, client_capabilities=CLIENT_CAPS)
    assert again is native and pool.stats.created == 3


async def test_the_pool_is_bounded(upstream_tls: UpstreamServer) -> None:
    pool = UpstreamPool(upstream_tls, max_size=2, acquire_timeout=0.2)
    try:
        first = await pool.acquire(NATIVE, client_capabilities=CLIENT_CAPS)
        second = await pool.acquire(NATIVE, client_capabilities=CLIENT_CAPS)
        with pytest.raises(UpstreamError, match="in use") as caught:
            await pool.acquire(NATIVE, client_capabilities=CLIENT_CAPS)
        assert caught.value.reason is Reason.POOL_EXHAUSTED
        pool.acquire_timeout = 10.0
        waiting = asyncio.create_task(pool.acquire(NATIVE, {"fe_user": "next"}, client_capabilities=CLIENT_CAPS))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        assert await pool.release(first)
        assert await waiting is first
        # An idle connection of another key makes room when the pool is full.
        assert await pool.release(second)
        other = await pool.acquire(OTHER, client_capabilities=CLIENT_CAPS)
        assert other is not second and second.broken
        assert pool.stats == PoolStats(open=2, idle=0, leased=2, created=3, reused=1)
    finally:
        await pool.close()


async def test_idle_connections_expire(upstream_tls: UpstreamServer, mariadb: MariaDbServer) -> None:
    pool = UpstreamPool(upstream_tls, idle_timeout=0.2)
    try:
        connection = await pool.acquire(NATIVE, client_capabilities=CLIENT_CAPS)
        assert await pool.release(connection)
        await asyncio.sleep(0.6)
        assert pool.stats.open == 0 and pool.stats.idle == 0
        await asyncio.to_thread(wait_until_gone, mariadb, connection.connection_id)
    finally:
        await pool.close()


async def test_a_connection_that_died_while_idle_is_replaced(pool: UpstreamPool, mariadb: MariaDbServer) -> None:
    connection = await pool.acquire(NATIVE, client_capabilities=CLIENT_CAPS)
    assert await pool.release(connection)
    mariadb.execute(f"KILL {connection.connection_id}")
    await asyncio.sleep(0.1)
    fresh = await pool.acquire(NATIVE, {"fe_user": "after"}, client_capabilities=CLIENT_CAPS)
    assert fresh is not connection and await scalar(fresh, "SELECT 1") == b"1"
    assert pool.stats == PoolStats(open=1, idle=0, leased=1, created=2, reused=0)


async def test_a_refused_account_frees_its_slot(pool: UpstreamPool) -> None:
    wrong = UpstreamAccount(NATIVE.user, "wrong")
    with pytest.raises(UpstreamError) as caught:
        await pool.acquire(wrong, client_capabilities=CLIENT_CAPS)
    assert caught.value.reason is Reason.REFUSED and pool.stats.open == 0
    connection = await pool.acquire(NATIVE, client_capabilities=CLIENT_CAPS)
    assert await pool.release(connection)
    with pytest.raises(UpstreamError) as caught:  # refused on the reused connection's COM_CHANGE_USER
        await pool.acquire(wrong, client_capabilities=CLIENT_CAPS)
    assert caught.value.reason is Reason.REFUSED and connection.broken and pool.stats.open == 0


async def test_a_closed_pool(pool: UpstreamPool) -> None:
    leased = await pool.acquire(NATIVE, client_capabilities=CLIENT_CAPS)
    idle = await pool.acquire(NATIVE, client_capabilities=CLIENT_CAPS)
    assert await pool.release(idle)
    await pool.close()
    assert idle.broken and pool.stats.open == 1
    with pytest.raises(UpstreamError) as caught:
        await pool.acquire(NATIVE, client_capabilities=CLIENT_CAPS)
    assert caught.value.reason is Reason.CLOSED
    assert not await pool.release(leased) and pool.stats.open == 0
