"""FastRelay's timers and its client's stalls, with stand-ins for the stream, the protocol and the upstream
connection: the cases a real client and server cannot produce on demand (a socket buffer full at an exact moment).
The relay itself runs against the real MariaDB in tests/upstream/test_gateway_fast_relay.py."""

from __future__ import annotations

import asyncio

import pytest

import fe.server.fast_relay as fast_relay
from fe.mysql.protocol import CommandReceived
from fe.server.fast_relay import FastRelay
from fe.upstream.commands import Com

OK = b"\x07\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00"


class FakeServer:
    address = "up:3306"


class FakeConnection:
    def __init__(self) -> None:
        self.server = FakeServer()
        self.quiet = True
        self.write_paused = False
        self.response_done = False
        self.awaiting_infile = False
        self.ends_with_next_data = True
        self.aborted = 0
        self.paused = 0
        self.resumed = 0

    @property
    def ready_for_direct(self) -> bool:
        return self.quiet and not self.write_paused

    def send_direct(self, payload: bytes, receiver: object) -> FakeConnection:
        self.response_done = False
        return self  # as the response: done, awaiting_infile

    @property
    def done(self) -> bool:
        return self.response_done

    def direct_data(self, data: bytes) -> bytes:
        self.response_done = self.ends_with_next_data
        return data

    def end_direct(self) -> None:
        pass

    def pause_reading(self) -> None:
        self.paused += 1

    def resume_reading(self) -> None:
        self.resumed += 1

    def abort(self) -> None:
        self.aborted += 1


class FakeUpstream:
    def __init__(self) -> None:
        self.connection = FakeConnection()
        self.mid_response = False


class FakeStream:
    def __init__(self) -> None:
        self.tap: object = None
        self.active_at = 0.0
        self.write_paused = False
        self.closing_when_idle = False
        self.sent: list[bytes] = []
        self.aborted = False
        self.ended = ""

    def send_now(self, data: bytes) -> bool:
        self.sent.append(data)
        return True

    def poke(self) -> None:
        pass

    def hand_over(self, item: object) -> None:
        pass

    def abort(self) -> None:
        self.aborted = True

    def end_session(self, why: str) -> None:
        self.ended = why


class FakeProtocol:
    buffered = 0

    def __init__(self) -> None:
        self.relayed_calls = 0

    def relayed(self, last_seq: int) -> None:
        self.relayed_calls += 1


def _relay(read_timeout: float | None, broken: list[tuple[str, bool]]) -> tuple[FastRelay, FakeStream, FakeUpstream]:
    stream, upstream = FakeStream(), FakeUpstream()
    relay = FastRelay(
        stream, FakeProtocol(), upstream, expires_at=float("inf"), read_timeout=read_timeout,  # type: ignore[arg-type]
        broken=lambda why, mid: broken.append((why, mid)),
    )  # fmt: skip
    return relay, stream, upstream


def _mid_command(read_timeout: float | None, broken: list[tuple[str, bool]]) -> tuple[FastRelay, FakeUpstream]:
    """A relay that has sent a command whose response has not ended."""
    relay, _, upstream = _relay(read_timeout, broken)
    upstream.connection.ends_with_next_data = False
    relay._start(CommandReceived(Com.QUERY, b"SELECT 1"))
    return relay, upstream


@pytest.fixture
def short_write_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_relay, "WRITE_TIMEOUT_SECONDS", 0.2)


def test_a_client_that_reads_again_is_not_dropped_later(short_write_timeout: None) -> None:
    """A command taken while the client's buffer was full; the client reads, the answer completes: nothing fires."""
    broken: list[tuple[str, bool]] = []

    async def main() -> None:
        relay, stream, upstream = _relay(30.0, broken)
        stream.write_paused = True  # the last answer is still in the client's transport buffer
        assert relay._start(CommandReceived(Com.QUERY, b"SELECT 1"))
        assert upstream.connection.paused == 1  # the upstream's read waits for the client
        stream.write_paused = False
        relay.client_stalled(False)
        assert upstream.connection.resumed == 1
        relay._on_upstream_data(OK)
        assert not relay.busy
        await asyncio.sleep(0.5)
        assert broken == [] and upstream.connection.aborted == 0 and not stream.aborted

    asyncio.run(main())


def test_nothing_fires_after_the_session_ended(short_write_timeout: None) -> None:
    broken: list[tuple[str, bool]] = []
    errors: list[object] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
        relay, stream, upstream = _relay(0.1, broken)
        stream.write_paused = True
        relay._start(CommandReceived(Com.QUERY, b"SELECT 1"))
        relay.client_stalled(True)
        relay._on_upstream_data(OK)
        relay.detach()  # COM_QUIT: the connection goes back to the pool
        await asyncio.sleep(0.5)
        assert (upstream.connection.aborted, broken, errors, stream.aborted) == (0, [], [], False)

    asyncio.run(main())


def test_a_client_that_never_reads_its_last_answer_is_dropped(short_write_timeout: None) -> None:
    """As the general path's drain after a reply: the write timeout holds after the response is complete."""
    broken: list[tuple[str, bool]] = []

    async def main() -> None:
        relay, stream, upstream = _relay(None, broken)
        relay._start(CommandReceived(Com.QUERY, b"SELECT 1"))
        relay.client_stalled(True)  # the answer's last bytes fill the client's buffer
        relay._on_upstream_data(OK)
        assert not relay.busy and upstream.connection.resumed == 1
        await asyncio.sleep(0.5)
        assert stream.aborted and stream.ended and broken == [] and upstream.connection.aborted == 0

    asyncio.run(main())


def test_a_client_that_stops_reading_mid_result_is_dropped_and_the_upstream_closed(short_write_timeout: None) -> None:
    broken: list[tuple[str, bool]] = []

    async def main() -> None:
        relay, upstream = _mid_command(None, broken)
        relay._on_upstream_data(b"\x01\x00\x00\x01\x01")  # the response has begun
        relay.client_stalled(True)
        await asyncio.sleep(0.5)
        assert broken == [("the client stopped reading mid-result", True)] and upstream.connection.aborted == 1

    asyncio.run(main())


def test_the_read_timeout_is_the_longest_silence_within_a_response() -> None:
    broken: list[tuple[str, bool]] = []

    async def main() -> None:
        relay, upstream = _mid_command(0.3, broken)
        for _ in range(6):  # 0.6 s of a response that keeps coming
            await asyncio.sleep(0.1)
            relay._on_upstream_data(b"\x01\x00\x00\x01\x01")
        assert broken == []
        await asyncio.sleep(0.5)  # then silence
        assert broken == [("upstream up:3306 did not answer in time", True)] and upstream.connection.aborted == 1

    asyncio.run(main())


def test_a_client_holding_the_upstream_back_is_not_the_upstreams_silence() -> None:
    broken: list[tuple[str, bool]] = []

    async def main() -> None:
        relay, _ = _mid_command(0.2, broken)
        relay.client_stalled(True)
        await asyncio.sleep(0.5)
        assert broken == []
        relay.client_stalled(False)
        relay._on_upstream_data(b"\x01\x00\x00\x01\x01")
        await asyncio.sleep(0.5)
        assert [why for why, _ in broken] == ["upstream up:3306 did not answer in time"]

    asyncio.run(main())


def test_a_command_waits_for_an_upstream_that_is_not_taking_its_input() -> None:
    """COM_STMT_SEND_LONG_DATA has no answer: without this, a stalled upstream would let the client fill fe's
    memory. The command goes to the task's general path, which waits for the upstream to drain."""

    async def main() -> None:
        relay, _, upstream = _relay(None, [])
        upstream.connection.write_paused = True
        assert not relay._start(CommandReceived(Com.STMT_SEND_LONG_DATA, b"\x01\x00\x00\x00\x00\x00data"))
        assert not relay.busy

    asyncio.run(main())
