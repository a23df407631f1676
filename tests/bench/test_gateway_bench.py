"""The gateway benchmark's own logic, without servers and without timing anything: following a result set as it
streams, the arithmetic of interleaved rounds, the verdicts, the profile's parts and the document's markers."""

from __future__ import annotations

import math

import pytest

from scripts.bench.gateway import profile, report, stats
from scripts.bench.gateway.measure import big_statement, ordered, stream_statement
from scripts.bench.gateway.results import (
    DIRECT,
    FE,
    FE_SOCKET,
    MIB,
    BenchmarkResult,
    Environment,
    LatencyRound,
    LoginRound,
    QpsRound,
    StreamRound,
)
from scripts.bench.gateway.wire import MAX_PAYLOAD, ResultCounter
from scripts.bench.mysqlwire import ServerError, WireError, lenenc_int


def packet(seq: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes((seq & 0xFF,)) + payload


def text_result(rows: list[bytes], *, deprecate_eof: bool, columns: int = 1) -> tuple[bytes, int]:
    """A text result set as a server sends it after COM_QUERY; and the payload bytes of its rows."""
    seq = 1
    wire = packet(seq, lenenc_int(columns))
    for index in range(columns):
        seq += 1
        wire += packet(seq, b"\x03def\x00\x00\x00" + bytes((1,)) + f"c{index}".encode() + b"\x00" * 14)
    if not deprecate_eof:
        seq += 1
        wire += packet(seq, b"\xfe\x00\x00\x02\x00")
    payload_bytes = 0
    for value in rows:
        seq += 1
        payload = lenenc_int(len(value)) + value
        wire += packet(seq, payload)
        payload_bytes += len(payload)
    seq += 1
    wire += packet(seq, b"\xfe\x00\x00\x02\x00" if not deprecate_eof else b"\xfe\x00\x00\x02\x00\x00\x00")
    return wire, payload_bytes


def feed_in_pieces(counter: ResultCounter, wire: bytes, size: int) -> int:
    used = 0
    for start in range(0, len(wire), size):
        used += counter.feed(wire[start : start + size])
        if counter.done:
            break
    return used


@pytest.mark.parametrize("deprecate_eof", [True, False])
@pytest.mark.parametrize("piece", [1, 2, 3, 5, 7, 64, 1000, 1 << 20])
def test_a_result_set_is_followed_in_pieces_of_any_size(deprecate_eof: bool, piece: int) -> None:
    rows = [b"x" * 300, b"", b"y" * 5, b"\xfe" * 260]
    wire, payload_bytes = text_result(rows, deprecate_eof=deprecate_eof, columns=2)
    counter = ResultCounter(deprecate_eof=deprecate_eof)
    used = feed_in_pieces(counter, wire, piece)
    assert counter.done and counter.error is None
    assert counter.columns == 2
    assert counter.rows == len(rows)
    assert counter.row_payload_bytes == payload_bytes
    assert used == len(wire) == counter.wire_bytes


def test_bytes_after_the_end_of_the_result_are_not_taken() -> None:
    wire, _ = text_result([b"1"], deprecate_eof=True)
    counter = ResultCounter(deprecate_eof=True)
    assert counter.feed(wire + b"\x01\x00\x00\x00\x00") == len(wire)
    assert counter.done


def test_a_row_longer_than_one_packet_counts_once_with_all_its_bytes() -> None:
    value = b"z" * (MAX_PAYLOAD + 10)
    payload = lenenc_int(len(value)) + value
    first, rest = payload[:MAX_PAYLOAD], payload[MAX_PAYLOAD:]
    wire = packet(1, b"\x01") + packet(2, b"\x03def" + b"\x00" * 20)
    wire += packet(3, first) + packet(4, rest) + packet(5, b"\xfe\x00\x00\x02\x00\x00\x00")
    counter = ResultCounter(deprecate_eof=True)
    assert feed_in_pieces(counter, wire, 1 << 16) == len(wire)
    assert counter.done and counter.rows == 1
    assert counter.row_payload_bytes == len(payload)


def test_an_error_instead_of_a_result_is_read_whole_even_byte_by_byte() -> None:
    message = "Unknown table 'seq_1_to_x' " * 10
    wire = packet(1, b"\xff" + (1146).to_bytes(2, "little") + b"#42S02" + message.encode())
    counter = ResultCounter(deprecate_eof=True)
    feed_in_pieces(counter, wire, 1)
    assert counter.done
    assert isinstance(counter.error, ServerError)
    assert counter.error.code == 1146 and counter.error.message == message


def test_an_ok_ends_a_statement_without_a_result_set() -> None:
    counter = ResultCounter(deprecate_eof=True)
    wire = packet(1, b"\x00\x00\x00\x02\x00\x00\x00")
    assert counter.feed(wire) == len(wire)
    assert counter.done and counter.rows == 0 and counter.error is None


def test_a_packet_out_of_sequence_is_an_error() -> None:
    counter = ResultCounter(deprecate_eof=True)
    with pytest.raises(WireError, match="sequence id 2, expected 1"):
        counter.feed(packet(2, b"\x01"))


def test_percentile_is_nearest_rank_and_median_is_the_ordinary_one() -> None:
    values = list(range(1, 101))
    assert stats.percentile(values, 0.99) == 99
    assert stats.percentile(values, 1.0) == 100
    assert stats.percentile([1, 2, 3, 4], 0.5) == 2
    assert stats.percentile([7], 0.99) == 7
    assert stats.median([1, 2, 3, 4]) == 2.5
    with pytest.raises(ValueError):
        stats.percentile([], 0.5)


def latency(target: str, round_index: int, median_us: float, p99_us: float = 0.0) -> LatencyRound:
    return LatencyRound(target, round_index, 1000, median_us, p99_us or 2 * median_us, 0.1, 0.02)


def qps(target: str, round_index: int, queries_per_second: float) -> QpsRound:
    return QpsRound(target, round_index, 16, 2.0, int(queries_per_second * 2), 0, 1.0, 0.5, 0.3, 2.0)


def stream(target: str, round_index: int, mb_per_s: float, growth_mib: float = 0.0) -> StreamRound:
    idle = 100 * MIB
    return StreamRound(target, round_index, 200, 200_000_000, 200 / mb_per_s, idle, idle, idle + int(growth_mib * MIB))


def result() -> BenchmarkResult:
    environment = Environment(
        "python -m scripts.bench.gateway", "abc", "today", "cpu", 2, "3.11", "OpenSSL", "10.11", "asyncio"
    )
    return BenchmarkResult(environment, rounds=3)


def test_comparisons_are_made_round_by_round_and_rounds_missing_a_side_are_left_out() -> None:
    bench = result()
    bench.latency = [
        latency(DIRECT, 0, 30),
        latency(FE, 0, 130),
        latency(FE, 1, 500),  # the direct run of round 1 is missing: not compared
        latency(DIRECT, 2, 60),
        latency(FE, 2, 170),
    ]
    assert bench.added_latency_us() == [100, 110]
    bench.qps = [qps(DIRECT, 0, 40000), qps(FE, 0, 10000), qps(DIRECT, 1, 20000), qps(FE, 1, 10000)]
    assert bench.qps_ratios() == [0.25, 0.5]
    assert math.isnan(stats.ratio(1.0, 0.0))


def test_verdicts_pass_and_miss_at_the_goals() -> None:
    bench = result()
    bench.latency = [latency(DIRECT, 0, 30), latency(FE, 0, 180)]  # +150 µs: exactly the goal
    bench.qps = [qps(DIRECT, 0, 10000), qps(FE, 0, 5999), qps(FE_SOCKET, 0, 6000)]  # just under 0.6×; 0.6×
    bench.stream = [stream(DIRECT, 0, 400), stream(FE, 0, 280, growth_mib=19.9)]  # 0.7× and under 20 MiB
    bench.stalled = [stream(FE, 0, 10, growth_mib=20.0)]  # but a stalled client reached 20 MiB
    bench.logins = [LoginRound(FE, 0, 100, 1.5, 3.0, 1, 0)]
    words = {
        verdict.goal.split(":")[0] + verdict.goal.partition(" direct")[2]: verdict.word for verdict in bench.verdicts()
    }
    assert words == {
        "`SELECT 1` round trip, 1 client": "PASS",
        "queries per second at 16 clients (fe → MariaDB over loopback TCP with TLS, verify_identity)": "MISS",
        "queries per second at 16 clients (fe → MariaDB over its Unix socket)": "PASS",
        "a 200 MB result's throughput": "PASS",
        "fe's RSS during that result": "MISS",
        "a login through fe, including its upstream connection": "—",
    }


def test_the_generated_section_replaces_only_the_text_between_the_markers() -> None:
    document = f"# Title\n\nprose before\n\n{report.BEGIN_MARKER}\nold numbers\n{report.END_MARKER}\n\nprose after\n"
    updated = report.replace_generated(document, "new numbers\n")
    assert "old numbers" not in updated
    assert updated.startswith("# Title\n\nprose before\n\n")
    assert updated.endswith(f"{report.BEGIN_MARKER}\nnew numbers\n{report.END_MARKER}\n\nprose after\n")
    appended = report.replace_generated("# Title\n", "numbers")
    assert appended == f"# Title\n\n{report.BEGIN_MARKER}\nnumbers\n{report.END_MARKER}\n"


def test_the_markdown_report_has_a_verdict_table_and_every_measured_table() -> None:
    bench = result()
    bench.latency = [latency(DIRECT, 0, 30), latency(FE, 0, 130)]
    bench.qps = [qps(DIRECT, 0, 40000), qps(FE, 0, 10000)]
    bench.stream = [stream(DIRECT, 0, 400), stream(FE, 0, 300)]
    markdown = report.render_markdown(bench)
    assert "| `SELECT 1` round trip, 1 client: at most 150 µs added at the median | +100 µs" in markdown
    assert "**MISS**" in markdown and "**PASS**" in markdown
    assert "| fe | 10000 | 10000–10000 | ×0.25 |" in markdown
    rules = [line for line in markdown.splitlines() if line.startswith("|---|")]
    assert len(rules) == 4  # verdicts, latency, queries per second, the large result
    assert rules[0] == "|---|---|---|"  # the verdicts' words are left-aligned


def test_profile_samples_go_to_the_innermost_part_that_says_which() -> None:
    loop = "BaseEventLoop._run_once (asyncio/base_events.py:1922);Handle._run (asyncio/events.py:80)"
    command = f"{loop};Connection._command_loop (fe/server/connection.py:310)"
    raw = "\n".join(
        [
            f"{command};is_fe_statement (fe/sql/routing.py:30);Tokenizer.__init__ (sqlglot/tokens.py:5) 3",
            # SSLObject.read says nothing: the asyncio SSL transport above it does
            f"{loop};SSLProtocol._do_read (asyncio/sslproto.py:9);SSLObject.read (ssl.py:1) 2",
            # ... and here fe's own client-side stream does
            f"{loop};PacketStream._pump_tls (fe/server/stream.py:261);SSLObject.read (ssl.py:1) 1",
            f"{command};frame (fe/mysql/codec.py:12);__init__ (<string>:2) 1",
            f"{loop};EpollSelector.select (selectors.py:468) 1",
            "garbage line",
        ]
    )
    shares = dict(profile.parts(raw))
    assert shares == {
        "routing: is_fe_statement (sqlglot's tokenizer)": 3 / 8,
        "upstream leg: asyncio streams and SSL transport": 2 / 8,
        "client leg: PacketStream, TLS over memory BIOs, packets": 1 / 8,
        "relay and the session's command loop": 1 / 8,
        "event loop (asyncio), socket calls": 1 / 8,
    }
    assert profile.top_functions(raw, 1) == [("Tokenizer.__init__ (sqlglot/tokens.py)", 3 / 8)]


def test_rounds_alternate_their_order_and_the_statements_are_what_they_say() -> None:
    assert ordered(["direct", "fe", "fe-uvloop"], 0) == ["direct", "fe", "fe-uvloop"]
    assert ordered(["direct", "fe", "fe-uvloop"], 1) == ["fe-uvloop", "fe", "direct"]
    assert stream_statement(200) == "SELECT REPEAT('x', 1000000) FROM seq_1_to_200"
    statement = big_statement(11000)
    assert statement.startswith("SELECT 1 IN (0,1,2,") and statement.endswith(",10999)")
    assert 50_000 < len(statement) < 60_000
