"""The sans-IO response tracker on hand-made responses: where each kind of response ends, the status it ends with,
continuation packets, LOCAL INFILE, chunked and byte-by-byte feeding, and fuzzed input."""

from __future__ import annotations

import random

import pytest

from fe.mysql import messages
from fe.mysql.codec import frame, lenenc_bytes, lenenc_int
from fe.mysql.constants import MAX_PAYLOAD, Capability, ColumnType
from fe.upstream.commands import Com, Status
from fe.upstream.errors import UpstreamProtocolError
from fe.upstream.response import PEEK, Outcome, ResponseTracker, UnsupportedCommand

EOF_CAPS = Capability.PROTOCOL_41 | Capability.MULTI_RESULTS
DEPRECATE = EOF_CAPS | Capability.DEPRECATE_EOF
AUTOCOMMIT = Status.AUTOCOMMIT
MORE = Status.MORE_RESULTS_EXISTS


def wire(payloads: list[bytes], seq: int = 1) -> bytes:
    parts = []
    for payload in payloads:
        data, seq = frame(payload, seq)
        parts.append(data)
    return b"".join(parts)


def result_set(rows: list[list[object]], status: int, deprecate: bool, columns: int = 2) -> list[bytes]:
    """A text result set with `columns` columns whose end packet carries `status`."""
    names = [(f"c{i}", ColumnType.VAR_STRING) for i in range(columns)]
    return messages.result_set(names, rows, status, deprecate)


def end_packet(status: int, deprecate: bool) -> bytes:
    return messages.ok(status=status, header=0xFE) if deprecate else messages.eof(status)


def track(command: int, data: bytes, caps: int = EOF_CAPS, **kwargs: object) -> tuple[ResponseTracker, int]:
    tracker = ResponseTracker(command, caps, **kwargs)  # type: ignore[arg-type]
    return tracker, tracker.feed(data)


@pytest.mark.parametrize("deprecate", [False, True])
def test_text_result_set_ends_at_its_last_packet(deprecate: bool) -> None:
    payloads = result_set([["a", "b"], [None, "x" * 300]], AUTOCOMMIT | Status.IN_TRANS, deprecate)
    data = wire(payloads)
    tracker, used = track(Com.QUERY, data + b"\x01\x00\x00\x00\x00", DEPRECATE if deprecate else EOF_CAPS)
    assert used == len(data) and tracker.done and tracker.outcome is Outcome.END
    assert tracker.status == AUTOCOMMIT | Status.IN_TRANS and tracker.in_transaction


def test_ok_and_err_end_a_query() -> None:
    data = wire([messages.ok(affected_rows=3, status=AUTOCOMMIT, warnings=2)])
    tracker, used = track(Com.QUERY, data)
    assert used == len(data) and tracker.outcome is Outcome.OK and tracker.warnings == 2
    data = wire([messages.err(1146, "42S02", "Table 'x' doesn't exist")])
    tracker, used = track(Com.QUERY, data, status=Status.IN_TRANS)
    assert used == len(data) and tracker.outcome is Outcome.ERROR
    assert tracker.error is not None and (tracker.error.code, tracker.error.sqlstate) == (1146, "42S02")
    assert tracker.in_transaction  # an ERR carries no status: the one before stays


@pytest.mark.parametrize("deprecate", [False, True])
def test_more_results_continue_until_a_final_ok(deprecate: bool) -> None:
    payloads = [
        *result_set([["1", "2"]], AUTOCOMMIT | MORE, deprecate),
        messages.ok(status=AUTOCOMMIT | MORE | Status.IN_TRANS),
        *result_set([["3", "4"], ["5", "6"]], AUTOCOMMIT | MORE | Status.IN_TRANS, deprecate, columns=2),
        messages.ok(status=AUTOCOMMIT | Status.IN_TRANS),
    ]
    data = wire(payloads)
    tracker, used = track(Com.QUERY, data, DEPRECATE if deprecate else EOF_CAPS)
    assert used == len(data) and tracker.outcome is Outcome.OK and tracker.in_transaction


def test_an_error_ends_a_multi_statement_response() -> None:
    data = wire([messages.ok(status=AUTOCOMMIT | MORE), messages.err(1064, "42000", "syntax")])
    tracker, used = track(Com.QUERY, data + wire([messages.ok()], seq=3))
    assert used == len(data) and tracker.outcome is Outcome.ERROR


def test_an_error_mid_result_ends_it() -> None:
    payloads = [*result_set([["a", "b"]], AUTOCOMMIT, False)[:-1], messages.err(1927, "70100", "killed")]
    data = wire(payloads)
    tracker, used = track(Com.QUERY, data)
    assert used == len(data) and tracker.done and tracker.outcome is Outcome.ERROR and tracker.error is not None
    assert tracker.error.code == 1927


def test_rows_of_16_mib_and_more_pass_as_continuation_packets() -> None:
    # A text row whose first value is 16 MiB long starts with 0xFE (an 8-byte length) like an EOF would.
    big = b"\xfe" + (MAX_PAYLOAD + 10).to_bytes(8, "little") + b"z" * (MAX_PAYLOAD + 10)
    exact = lenenc_bytes(b"y" * (MAX_PAYLOAD - 4))  # exactly 0xFFFFFF: an empty continuation packet follows
    assert len(exact) == MAX_PAYLOAD
    payloads = result_set([], AUTOCOMMIT, True, columns=1)
    payloads = [*payloads[:-1], big, exact, lenenc_bytes(b"small"), *payloads[-1:]]
    data = wire(payloads)
    tracker = ResponseTracker(Com.QUERY, DEPRECATE)
    assert fed_in_chunks(tracker, data, 65536) == len(data)
    assert tracker.done and tracker.outcome is Outcome.END
    # Half of the long row: all of it passes at once, nothing is held back.
    tracker = ResponseTracker(Com.QUERY, DEPRECATE)
    half = len(data) // 4
    assert tracker.feed(data[:half]) == half and not tracker.done


def fed_in_chunks(tracker: ResponseTracker, data: bytes, size: int) -> int:
    """Feed as a relay would: unconsumed bytes are kept and fed again with the next chunk."""
    pending = b""
    total = 0
    for start in range(0, len(data), size):
        pending += data[start : start + size]
        used = tracker.feed(pending)
        assert len(pending) - used <= PEEK + 3 or tracker.done
        total += used
        pending = pending[used:]
        if tracker.done:
            break
    return total


@pytest.mark.parametrize("deprecate", [False, True])
def test_prepare_reads_its_parameter_and_column_definitions(deprecate: bool) -> None:
    caps = DEPRECATE if deprecate else EOF_CAPS
    prepare_ok = b"\x00" + (7).to_bytes(4, "little") + (2).to_bytes(2, "little") + (3).to_bytes(2, "little")
    prepare_ok += b"\x00" + (1).to_bytes(2, "little")
    definition = messages.column_definition("?")
    eof = [] if deprecate else [messages.eof(AUTOCOMMIT)]
    payloads = [prepare_ok, *[definition] * 3, *eof, *[definition] * 2, *eof]
    data = wire(payloads)
    tracker, used = track(Com.STMT_PREPARE, data + wire([messages.ok()], seq=len(payloads) + 1), caps)
    assert used == len(data) and tracker.outcome is Outcome.OK
    assert (tracker.statement_id, tracker.param_count, tracker.column_count, tracker.warnings) == (7, 3, 2, 1)


def test_prepare_without_parameters_or_columns_is_one_packet() -> None:
    prepare_ok = b"\x00" + (9).to_bytes(4, "little") + bytes(5) + bytes(2)
    tracker, used = track(Com.STMT_PREPARE, wire([prepare_ok]))
    assert tracker.done and tracker.statement_id == 9 and used == 4 + len(prepare_ok)


@pytest.mark.parametrize("deprecate", [False, True])
def test_execute_with_a_cursor_ends_after_the_metadata(deprecate: bool) -> None:
    status = AUTOCOMMIT | Status.CURSOR_EXISTS
    payloads = [lenenc_int(1), messages.column_definition("a"), end_packet(status, deprecate)]
    data = wire(payloads)
    caps = DEPRECATE if deprecate else EOF_CAPS
    tracker, used = track(Com.STMT_EXECUTE, data, caps, cursor=True)
    assert used == len(data) and tracker.outcome is Outcome.END and tracker.status & Status.CURSOR_EXISTS
    # Without the cursor flag the same EOF is only the end of the metadata.
    if not deprecate:
        tracker, used = track(Com.STMT_EXECUTE, data, caps)
        assert used == len(data) and not tracker.done


@pytest.mark.parametrize("deprecate", [False, True])
def test_fetch_reads_binary_rows_until_the_end_packet(deprecate: bool) -> None:
    rows = [b"\x00\x00" + lenenc_bytes(b"row%d" % i) for i in range(3)]
    payloads = [*rows, end_packet(AUTOCOMMIT | Status.CURSOR_EXISTS | Status.LAST_ROW_SENT, deprecate)]
    data = wire(payloads)
    tracker, used = track(Com.STMT_FETCH, data, DEPRECATE if deprecate else EOF_CAPS)
    assert used == len(data) and tracker.outcome is Outcome.END and tracker.status & Status.LAST_ROW_SENT


@pytest.mark.parametrize("command", [Com.STMT_CLOSE, Com.STMT_SEND_LONG_DATA, Com.QUIT])
def test_commands_without_a_response(command: int) -> None:
    tracker, used = track(command, wire([messages.ok()]))
    assert tracker.done and tracker.outcome is Outcome.NONE and used == 0


def test_field_list_ends_at_its_eof() -> None:
    payloads = [messages.column_definition("a", table="t"), messages.column_definition("b", table="t")]
    data = wire([*payloads, messages.eof(AUTOCOMMIT)])
    tracker, used = track(Com.FIELD_LIST, data)
    assert used == len(data) and tracker.outcome is Outcome.END


def test_statistics_is_one_string_packet() -> None:
    data = wire([b"Uptime: 5  Threads: 1  Questions: 9"])
    tracker, used = track(Com.STATISTICS, data + data)
    assert used == len(data) and tracker.outcome is Outcome.DATA


@pytest.mark.parametrize("command", [Com.PING, Com.INIT_DB, Com.RESET_CONNECTION, Com.STMT_RESET, Com.SET_OPTION])
def test_simple_commands_end_after_one_packet(command: int) -> None:
    data = wire([messages.ok(status=AUTOCOMMIT)])
    tracker, used = track(command, data)
    assert used == len(data) and tracker.outcome is Outcome.OK
    data = wire([messages.eof(AUTOCOMMIT)])
    tracker, used = track(command, data)
    assert used == len(data) and tracker.outcome is Outcome.END


def test_local_infile_pauses_for_the_clients_file_then_ends_with_ok() -> None:
    request = wire([b"\xfb/etc/passwd"])
    tracker, used = track(Com.QUERY, request, EOF_CAPS | Capability.LOCAL_FILES)
    assert used == len(request) and tracker.awaiting_infile and not tracker.done
    assert tracker.outcome is Outcome.LOCAL_INFILE and tracker.infile_name == b"/etc/passwd"
    assert tracker.feed(wire([messages.ok()], seq=2)) == 0  # nothing is read while the file is owed
    assert tracker.infile_packet(b"a,b\n")[3] == 2
    assert tracker.infile_packet(b"") == b"\x00\x00\x00\x03"
    data = wire([messages.ok(affected_rows=1, status=AUTOCOMMIT)], seq=4)
    assert tracker.feed(data) == len(data) and tracker.outcome is Outcome.OK


def test_local_infile_is_refused_when_the_client_did_not_allow_it() -> None:
    with pytest.raises(UpstreamProtocolError, match="LOCAL_FILES"):
        track(Com.QUERY, wire([b"\xfbfile.csv"]))


@pytest.mark.parametrize(
    ("command", "before"),
    [
        (Com.QUERY, b""),  # where the first packet goes
        (Com.QUERY, b"\x01\x00\x00\x01\x01"),  # among column definitions
        (Com.STMT_FETCH, b""),  # among binary rows
        (Com.FIELD_LIST, b""),
        (Com.PING, b""),
    ],
)
def test_an_empty_packet_is_refused_as_soon_as_it_is_there(command: int, before: bytes) -> None:
    """A server never sends a 0-length packet in a response (only after a 16 MiB one, as its end): refused at once,
    not held back for bytes that may never come."""
    seq = 2 if before else 1
    tracker = ResponseTracker(command, EOF_CAPS)
    with pytest.raises(UpstreamProtocolError, match="empty packet in a response"):
        tracker.feed(before + bytes((0, 0, 0, seq)))


def test_a_sequence_gap_is_a_protocol_error() -> None:
    data = wire([lenenc_int(1)]) + wire([messages.column_definition("a")], seq=3)
    with pytest.raises(UpstreamProtocolError, match="sequence id 3, expected 2"):
        track(Com.QUERY, data)


def test_a_sequence_gap_among_rows_is_a_protocol_error() -> None:
    payloads = result_set([["a", "b"]] * 4, AUTOCOMMIT, True)
    data = wire(payloads[:4]) + wire(payloads[4:], seq=9)
    tracker = ResponseTracker(Com.QUERY, DEPRECATE)
    with pytest.raises(UpstreamProtocolError, match="sequence id 9, expected 5"):
        tracker.feed(data)


def test_the_response_may_start_after_a_multi_packet_command() -> None:
    tracker, used = track(Com.QUERY, wire([messages.ok()], seq=2), seq=2)
    assert tracker.done and used == 11


@pytest.mark.parametrize("command", [Com.CHANGE_USER, Com.BINLOG_DUMP, Com.BINLOG_DUMP_GTID, 0xFA, 0xFE, 0x20])
def test_commands_that_cannot_be_followed_are_refused(command: int) -> None:
    with pytest.raises(UnsupportedCommand):
        ResponseTracker(command, EOF_CAPS)


def test_byte_by_byte_feeding_ends_in_the_same_place() -> None:
    payloads = [*result_set([["x" * 2000, None], ["y", "z"]], AUTOCOMMIT | MORE, False), messages.ok(status=2)]
    data = wire(payloads)
    tracker = ResponseTracker(Com.QUERY, EOF_CAPS)
    pending = b""
    used = 0
    for byte in data:
        pending += bytes((byte,))
        taken = tracker.feed(pending)
        used += taken
        pending = pending[taken:]
    assert used == len(data) and not pending and tracker.outcome is Outcome.OK


def _valid_responses() -> list[tuple[int, int, bytes]]:
    deprecate_rows = result_set([["a", "b"]] * 5, AUTOCOMMIT, True)
    return [
        (Com.QUERY, EOF_CAPS, wire(result_set([["a" * 500, None]] * 20, AUTOCOMMIT, False))),
        (Com.QUERY, DEPRECATE, wire(deprecate_rows)),
        (Com.QUERY, EOF_CAPS, wire([messages.ok(status=MORE), messages.ok(status=2)])),
        (Com.FIELD_LIST, EOF_CAPS, wire([messages.column_definition("a"), messages.eof()])),
        (Com.STATISTICS, EOF_CAPS, wire([b"Uptime: 1"])),
    ]


def test_random_chunking_of_valid_responses() -> None:
    rng = random.Random(1234)
    for command, caps, data in _valid_responses():
        for _ in range(50):
            tracker = ResponseTracker(command, caps)
            pending = b""
            used = 0
            pos = 0
            while pos < len(data):
                step = rng.randint(1, 700)
                pending += data[pos : pos + step]
                pos += step
                taken = tracker.feed(pending)
                used += taken
                pending = pending[taken:]
            assert used == len(data) and tracker.done


def test_fuzzed_responses_fail_only_with_protocol_errors() -> None:
    rng = random.Random(4321)
    samples = _valid_responses()
    for _ in range(3000):
        command, caps, data = rng.choice(samples)
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        if rng.random() < 0.3:
            del mutated[rng.randrange(len(mutated)) :]
        tracker = ResponseTracker(command, caps | Capability.LOCAL_FILES)
        try:
            used = tracker.feed(bytes(mutated))
        except UpstreamProtocolError:
            continue
        assert 0 <= used <= len(mutated)
