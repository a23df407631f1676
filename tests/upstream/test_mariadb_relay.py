"""Relaying real MariaDB responses: where each ends (text result sets, multiple result sets, prepared statements
with cursors and COM_STMT_FETCH, COM_STMT_SEND_LONG_DATA, COM_FIELD_LIST, COM_STATISTICS, LOCAL INFILE, errors),
the transaction state it leaves, 16 MiB+ packets and a 50 MB result in bounded memory, and a connection killed
mid-result."""

from __future__ import annotations

import asyncio
import struct
import tracemalloc
from collections.abc import AsyncIterator

import pytest

from fe.mysql.constants import Capability
from fe.upstream.commands import Com, Status
from fe.upstream.connect import connect
from fe.upstream.connection import UpstreamConnection
from fe.upstream.endpoint import UpstreamServer
from fe.upstream.errors import Reason, UpstreamError
from fe.upstream.response import Outcome, ResponseTracker
from tests.support.mariadb_server import MariaDbServer
from tests.support.upstream_wire import Collector, QueryFailed, err_code, query, scalar, split_packets
from tests.upstream.conftest import CLIENT_CAPS, EOF_CLIENT_CAPS, NATIVE

BIG_RESULT = "SELECT seq, REPEAT('x', 1000) FROM fe_test.seq_1_to_50000"  # 50.6 MB of rows
MYSQL_TYPE_LONG = 0x03
MYSQL_TYPE_BLOB = 0xFC
CURSOR_READ_ONLY = 0x01


@pytest.fixture(params=[CLIENT_CAPS, EOF_CLIENT_CAPS], ids=["deprecate_eof", "eof"])
async def conn(request: pytest.FixtureRequest, upstream_tls: UpstreamServer) -> AsyncIterator[UpstreamConnection]:
    connection = await connect(upstream_tls, NATIVE, client_capabilities=request.param, database="fe_test")
    try:
        yield connection
    finally:
        await connection.close()


async def relay(connection: UpstreamConnection, payload: bytes) -> tuple[Outcome, list[bytes], int]:
    sink = Collector()
    result = await connection.relay(payload, sink)
    return result.outcome, [payload for _, payload in sink.packets()], result.status


def deprecate_eof(connection: UpstreamConnection) -> bool:
    return bool(connection.capabilities & Capability.DEPRECATE_EOF)


def stmt(command: int, statement_id: int, rest: bytes = b"") -> bytes:
    return bytes((command,)) + struct.pack("<I", statement_id) + rest


def execute(statement_id: int, *, cursor: bool = False, params: list[tuple[int, bytes | None]] | None = None) -> bytes:
    """COM_STMT_EXECUTE; a parameter value None means "sent with COM_STMT_SEND_LONG_DATA"."""
    body = bytes((CURSOR_READ_ONLY if cursor else 0,)) + struct.pack("<I", 1)
    if params:
        body += bytes((len(params) + 7) // 8) + b"\x01"
        body += b"".join(struct.pack("<BB", type_code, 0) for type_code, _ in params)
        body += b"".join(value for _, value in params if value is not None)
    return stmt(Com.STMT_EXECUTE, statement_id, body)


async def test_text_result_set(conn: UpstreamConnection) -> None:
    outcome, packets, status = await relay(conn, b"\x03SELECT id, v FROM t ORDER BY id")
    assert outcome is Outcome.END and status & Status.AUTOCOMMIT
    assert len(packets) == 1 + 2 + (0 if deprecate_eof(conn) else 1) + 5 + 1
    assert await query(conn, "SELECT id, v FROM t WHERE id IN (3, 4) ORDER BY id") == [[b"3", b"three"], [b"4", None]]


async def test_multiple_result_sets_from_a_procedure_and_multi_statements(conn: UpstreamConnection) -> None:
    outcome, packets, _ = await relay(conn, b"\x03CALL two_results()")
    assert outcome is Outcome.OK and packets[-1][0] == 0x00  # the CALL's own OK ends it
    assert sum(1 for p in packets if p[0] == 0xFE) == (2 if deprecate_eof(conn) else 4)
    outcome, packets, _ = await relay(conn, b"\x03SELECT 1; SELECT 'two', 2; DO 3")
    assert outcome is Outcome.OK
    assert await scalar(conn, "SELECT 'still in step'") == b"still in step"  # the end was found exactly


async def test_errors_end_the_response_and_the_session_goes_on(conn: UpstreamConnection) -> None:
    outcome, packets, _ = await relay(conn, b"\x03SELEC 1")
    assert outcome is Outcome.ERROR and err_code(packets[0]) == 1064
    outcome, packets, _ = await relay(conn, b"\x03SELECT 1; SELECT * FROM missing; SELECT 3")
    assert outcome is Outcome.ERROR and err_code(packets[-1]) == 1146
    assert await scalar(conn, "SELECT 4") == b"4"


async def test_transaction_state_follows_the_end_packets(conn: UpstreamConnection) -> None:
    await query(conn, "BEGIN")
    assert conn.in_transaction
    await query(conn, "INSERT INTO t VALUES (100, 'tx')")
    with pytest.raises(QueryFailed):
        await query(conn, "INSERT INTO t VALUES (100, 'dup')")
    assert conn.in_transaction  # an ERR leaves the transaction open
    await query(conn, "ROLLBACK")
    assert not conn.in_transaction
    outcome, _, status = await relay(conn, b"\x03START TRANSACTION; SELECT 1")
    assert outcome is Outcome.END and status & Status.IN_TRANS and conn.in_transaction
    await query(conn, "COMMIT")
    assert not conn.in_transaction


async def test_prepared_statement_with_a_cursor_and_fetch(conn: UpstreamConnection) -> None:
    sink = Collector()
    prepared = await conn.relay(b"\x16SELECT id, v FROM t WHERE id <= ? ORDER BY id", sink)
    assert prepared.outcome is Outcome.OK and (prepared.param_count, prepared.column_count) == (1, 2)
    statement_id = prepared.statement_id
    outcome, packets, status = await relay(
        conn, execute(statement_id, cursor=True, params=[(MYSQL_TYPE_LONG, struct.pack("<i", 5))])
    )
    assert outcome is Outcome.END and status & Status.CURSOR_EXISTS
    assert all(p[0] != 0x00 for p in packets)  # metadata only: no binary rows yet
    ids: list[int] = []
    while True:
        outcome, packets, status = await relay(conn, stmt(Com.STMT_FETCH, statement_id, struct.pack("<I", 2)))
        assert outcome is Outcome.END
        ids += [int.from_bytes(p[2:6], "little") for p in packets if p[0] == 0x00]
        if status & Status.LAST_ROW_SENT:
            break
    assert ids == [1, 2, 3, 4, 5]
    outcome, packets, _ = await relay(conn, stmt(Com.STMT_CLOSE, statement_id))
    assert outcome is Outcome.NONE and packets == []
    outcome, packets, _ = await relay(conn, execute(statement_id))
    assert outcome is Outcome.ERROR and err_code(packets[0]) == 1243  # unknown prepared statement handler
    await conn.ping()


async def test_execute_without_a_cursor_returns_binary_rows(conn: UpstreamConnection) -> None:
    prepared = await conn.relay(b"\x16SELECT id FROM t ORDER BY id", Collector())
    outcome, packets, _ = await relay(conn, execute(prepared.statement_id))
    assert outcome is Outcome.END and len([p for p in packets if p[0] == 0x00]) == 5
    await conn.relay(stmt(Com.STMT_CLOSE, prepared.statement_id), Collector())


async def test_send_long_data(conn: UpstreamConnection, mariadb: MariaDbServer) -> None:
    key = 1 if deprecate_eof(conn) else 2
    prepared = await conn.relay(b"\x16INSERT INTO blobs VALUES (?, ?)", Collector())
    assert prepared.param_count == 2
    chunk = bytes(range(256)) * 4096  # 1 MiB
    for _ in range(3):
        sink = Collector()
        result = await conn.relay(stmt(Com.STMT_SEND_LONG_DATA, prepared.statement_id, b"\x01\x00" + chunk), sink)
        assert result.outcome is Outcome.NONE and not sink.data
    params: list[tuple[int, bytes | None]] = [(MYSQL_TYPE_LONG, struct.pack("<i", key)), (MYSQL_TYPE_BLOB, None)]
    outcome, packets, _ = await relay(conn, execute(prepared.statement_id, params=params))
    assert outcome is Outcome.OK and packets[0][:2] == b"\x00\x01"  # one row affected
    stored = mariadb.execute(f"SELECT LENGTH(b), LEFT(b, 4) FROM fe_test.blobs WHERE id = {key}")
    assert stored == [(3 * len(chunk), chunk[:4])]


async def test_field_list_and_statistics(conn: UpstreamConnection) -> None:
    outcome, packets, _ = await relay(conn, b"\x04t\x00")
    assert outcome is Outcome.END and len(packets) == 3 and packets[0][:4] == b"\x03def"
    outcome, packets, _ = await relay(conn, bytes((Com.STATISTICS,)))
    assert outcome is Outcome.DATA and len(packets) == 1 and packets[0].startswith(b"Uptime: ")
    outcome, packets, _ = await relay(conn, b"\x02fe_test")
    assert outcome is Outcome.OK
    outcome, packets, _ = await relay(conn, b"\x02no_such_db")
    assert outcome is Outcome.ERROR and err_code(packets[0]) in (1044, 1049)


async def test_local_infile_only_when_the_client_allowed_it(
    upstream_tls: UpstreamServer, mariadb: MariaDbServer
) -> None:
    mariadb.execute("CREATE TABLE IF NOT EXISTS fe_test.loaded (a INT, b VARCHAR(10))")
    sql = b"\x03LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE loaded FIELDS TERMINATED BY ','"
    allowed = await connect(
        upstream_tls, NATIVE, client_capabilities=CLIENT_CAPS | Capability.LOCAL_FILES, database="fe_test"
    )
    try:
        sink = Collector()
        result = await allowed.relay(sql, sink)
        assert result.outcome is Outcome.LOCAL_INFILE and result.infile_name == b"/etc/hostname"
        assert allowed.busy and not allowed.usable
        assert await allowed.infile_packet(b"1,one\n2,", sink) is None
        assert await allowed.infile_packet(b"two\n", sink) is None
        end = await allowed.infile_packet(b"", sink)
        assert end is not None and end.outcome is Outcome.OK and allowed.usable
        assert await scalar(allowed, "SELECT GROUP_CONCAT(b ORDER BY a) FROM loaded") == b"one,two"
    finally:
        await allowed.close()
    refused = await connect(upstream_tls, NATIVE, client_capabilities=CLIENT_CAPS, database="fe_test")
    try:
        outcome, packets, _ = await relay(refused, sql)
        # The server refuses it outright (MariaDB: ER_LOAD_INFILE_CAPABILITY_DISABLED; MySQL: 1148).
        assert outcome is Outcome.ERROR and err_code(packets[0]) in (1148, 4166)
    finally:
        await refused.close()


class Counter:
    """A sink that keeps nothing: counts bytes and checks the packet headers stay in step."""

    def __init__(self) -> None:
        self.bytes = 0
        self.chunks = 0

    async def __call__(self, chunk: bytes) -> None:
        self.bytes += len(chunk)
        self.chunks += 1


async def _measure(connection: UpstreamConnection, sql: str) -> tuple[int, int]:
    """(bytes relayed, peak bytes allocated by Python during the relay)."""
    sink = Counter()
    tracemalloc.start()
    try:
        result = await connection.relay(b"\x03" + sql.encode(), sink)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.outcome is Outcome.END
    return sink.bytes, peak


async def test_a_50_mb_result_streams_in_bounded_memory(conn: UpstreamConnection) -> None:
    relayed, peak = await _measure(conn, BIG_RESULT)
    assert relayed > 50_000_000
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes while relaying {relayed}"
    assert await scalar(conn, "SELECT 'next'") == b"next"


async def test_rows_of_more_than_16_mib_pass_chunk_by_chunk(conn: UpstreamConnection) -> None:
    relayed, peak = await _measure(conn, "SELECT REPEAT('y', 40 * 1024 * 1024)")
    assert relayed > 40 * 1024 * 1024 and peak < 2 * 1024 * 1024
    sink = Collector()
    await conn.relay(b"\x03SELECT REPEAT('z', 17 * 1024 * 1024), 'after'", sink)
    packets = split_packets(bytes(sink.data))
    row = packets[-2][1]
    assert len(row) > 17 * 1024 * 1024 and row.endswith(b"\x05after")


async def test_a_slow_sink_holds_the_reading_back(conn: UpstreamConnection) -> None:
    chunks = 0

    async def slow(chunk: bytes) -> None:
        nonlocal chunks
        chunks += 1
        await asyncio.sleep(0.001)

    tracemalloc.start()
    try:
        result = await conn.relay(b"\x03" + BIG_RESULT.replace("50000", "10000").encode(), slow)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.outcome is Outcome.END and chunks > 20 and peak < 2 * 1024 * 1024


async def test_killed_mid_result(upstream_tls: UpstreamServer, mariadb: MariaDbServer) -> None:
    connection = await connect(upstream_tls, NATIVE, client_capabilities=CLIENT_CAPS)
    received = 0

    async def kill_after_a_megabyte(chunk: bytes) -> None:
        nonlocal received
        received += len(chunk)
        if received > 1_000_000 and received - len(chunk) <= 1_000_000:
            await asyncio.to_thread(mariadb.execute, f"KILL {connection.connection_id}")

    with pytest.raises(UpstreamError, match="closed the connection mid-result") as caught:
        await connection.relay(b"\x03" + BIG_RESULT.encode(), kill_after_a_megabyte)
    assert caught.value.reason is Reason.CLOSED and connection.broken and not connection.usable
    with pytest.raises(UpstreamError, match="is closed"):
        await connection.relay(b"\x03SELECT 1", Collector())


async def test_killed_between_commands(upstream_tls: UpstreamServer, mariadb: MariaDbServer) -> None:
    connection = await connect(upstream_tls, NATIVE, client_capabilities=CLIENT_CAPS)
    mariadb.execute(f"KILL {connection.connection_id}")
    await asyncio.sleep(0.1)
    with pytest.raises(UpstreamError) as caught:
        await query(connection, "SELECT 1")
    assert caught.value.reason is Reason.CLOSED and connection.broken


async def test_a_cancelled_relay_breaks_the_connection(upstream_tls: UpstreamServer) -> None:
    connection = await connect(upstream_tls, NATIVE, client_capabilities=CLIENT_CAPS)

    async def vanish(chunk: bytes) -> None:
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        await connection.relay(b"\x03" + BIG_RESULT.encode(), vanish)
    assert connection.broken and connection.busy
    with pytest.raises(UpstreamError, match="is closed"):
        await connection.relay(b"\x03SELECT 1", Collector())


async def test_the_direct_relay_sees_what_the_upstream_said_between_commands(
    conn: UpstreamConnection, mariadb: MariaDbServer
) -> None:
    """UpstreamConnection.ready_for_direct: nothing arrived since the last response. A killed session's goodbye (an
    ERR, a close) makes it False, so the fast relay leaves the next command to the general path, which reports it."""
    assert await scalar(conn, "SELECT 1") == b"1"
    assert conn.ready_for_direct
    mariadb.execute(f"KILL {conn.connection_id}")
    for _ in range(100):
        if not conn.ready_for_direct:
            break
        await asyncio.sleep(0.02)
    assert not conn.ready_for_direct
    with pytest.raises(UpstreamError) as caught:
        await scalar(conn, "SELECT 1")
    assert caught.value.reason is Reason.CLOSED


async def test_a_command_relayed_from_the_transports_callbacks(conn: UpstreamConnection) -> None:
    """send_direct / direct_data / end_direct, as fe.server.fast_relay drives them; then the general path again."""
    received: list[bytes] = []
    forwarded: list[bytes] = []
    done = asyncio.get_running_loop().create_future()
    responses: list[ResponseTracker] = []  # send_direct's, before any of its bytes arrive

    def receiver(data: bytes) -> None:
        received.append(data)
        forwarded.append(conn.direct_data(data))
        if responses[0].done and not done.done():
            conn.end_direct()
            done.set_result(None)

    responses.append(conn.send_direct(b"\x03SELECT id, v FROM t ORDER BY id", receiver))
    await asyncio.wait_for(done, 10)
    assert b"".join(forwarded) == b"".join(received)
    assert len(split_packets(b"".join(forwarded))) == 1 + 2 + (0 if deprecate_eof(conn) else 1) + 5 + 1
    assert await scalar(conn, "SELECT 2") == b"2"  # read() has the connection back
