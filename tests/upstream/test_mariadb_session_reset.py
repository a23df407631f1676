"""COM_CHANGE_USER and COM_RESET_CONNECTION on a real MariaDB: what one session leaves behind (a user variable, a
temporary table, an open transaction, a prepared statement) is gone, and the new attributes are what the server
shows."""

from __future__ import annotations

import pytest

from fe.upstream.connect import connect
from fe.upstream.connection import UpstreamConnection
from fe.upstream.endpoint import UpstreamAccount, UpstreamServer
from fe.upstream.errors import Reason, UpstreamError
from fe.upstream.response import Outcome
from tests.support.mariadb_server import MariaDbServer
from tests.support.upstream_wire import Collector, QueryFailed, err_code, query, scalar
from tests.upstream.conftest import CLIENT_CAPS, NATIVE, OTHER, session_attributes


async def leave_state_behind(connection: UpstreamConnection, row_id: int) -> int:
    """A user variable, a temporary table, an open transaction with an insert, a prepared statement."""
    await query(connection, "SET @left_behind = 'yes'")
    await query(connection, "CREATE TEMPORARY TABLE fe_test.scratch (x INT)")
    await query(connection, "BEGIN")
    await query(connection, f"INSERT INTO fe_test.t VALUES ({row_id}, 'uncommitted')")
    assert connection.in_transaction
    prepared = await connection.relay(b"\x16SELECT 1", Collector())
    assert prepared.outcome is Outcome.OK
    return prepared.statement_id


async def assert_state_gone(connection: UpstreamConnection, mariadb: MariaDbServer, row_id: int, stmt: int) -> None:
    assert await scalar(connection, "SELECT @left_behind") is None
    with pytest.raises(QueryFailed) as caught:
        await query(connection, "SELECT * FROM fe_test.scratch")
    assert caught.value.error.code == 1146
    assert not connection.in_transaction
    assert mariadb.execute(f"SELECT COUNT(*) FROM fe_test.t WHERE id = {row_id}") == [(0,)]  # rolled back
    sink = Collector()
    await connection.relay(b"\x17" + stmt.to_bytes(4, "little") + b"\x00\x01\x00\x00\x00", sink)
    assert err_code(sink.packets()[0][1]) == 1243  # unknown prepared statement handler


async def test_change_user_resets_the_session_and_carries_new_attributes(
    upstream_tls: UpstreamServer, mariadb: MariaDbServer
) -> None:
    connection = await connect(upstream_tls, NATIVE, client_capabilities=CLIENT_CAPS, attributes={"fe_user": "ann"})
    try:
        stmt = await leave_state_behind(connection, 200)
        await connection.change_user(OTHER, {"program_name": "fe", "fe_user": "bob"}, database="fe_test")
        assert connection.account == OTHER and connection.usable
        assert await scalar(connection, "SELECT CURRENT_USER()") == b"fe_other@%"
        assert await scalar(connection, "SELECT DATABASE()") == b"fe_test"
        await assert_state_gone(connection, mariadb, 200, stmt)
        assert session_attributes(mariadb, connection.connection_id) == {"program_name": "fe", "fe_user": "bob"}
    finally:
        await connection.close()


async def test_change_user_to_the_same_account_over_plain_tcp(
    upstream_plain: UpstreamServer, mariadb: MariaDbServer
) -> None:
    connection = await connect(upstream_plain, NATIVE, client_capabilities=CLIENT_CAPS)
    try:
        stmt = await leave_state_behind(connection, 201)
        await connection.change_user(NATIVE, {"fe_user": "carl"})
        await assert_state_gone(connection, mariadb, 201, stmt)
        assert session_attributes(mariadb, connection.connection_id) == {"fe_user": "carl"}
    finally:
        await connection.close()


async def test_reset_clears_the_session_but_keeps_the_login(
    upstream_tls: UpstreamServer, mariadb: MariaDbServer
) -> None:
    connection = await connect(upstream_tls, NATIVE, client_capabilities=CLIENT_CAPS, attributes={"fe_user": "dora"})
    try:
        stmt = await leave_state_behind(connection, 202)
        await connection.reset()
        await connection.ping()
        await assert_state_gone(connection, mariadb, 202, stmt)
        assert await scalar(connection, "SELECT CURRENT_USER()") == b"fe_native@%"
    finally:
        await connection.close()


async def test_a_refused_change_user_breaks_the_connection(upstream_tls: UpstreamServer) -> None:
    connection = await connect(upstream_tls, NATIVE, client_capabilities=CLIENT_CAPS)
    with pytest.raises(UpstreamError) as caught:
        await connection.change_user(UpstreamAccount(OTHER.user, "not-it"), {"fe_user": "eve"})
    assert caught.value.reason is Reason.REFUSED and caught.value.server_error is not None
    assert caught.value.server_error.code == 1045
    assert connection.broken and not connection.usable
    with pytest.raises(UpstreamError, match="is closed"):
        await connection.ping()
