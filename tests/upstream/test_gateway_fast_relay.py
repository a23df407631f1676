"""The gateway's relay as it runs in the transports' callbacks (fe/server/fast_relay.py), against the real MariaDB on
both event loops: commands a client sends back to back are answered in order (fe's own statements among them),
relayed commands count as activity for the idle timeout and a long one is not idleness, a token session ends when
its token expires, a hanging upstream hits the read timeout, and a client that stops reading holds the upstream
back instead of filling fe's memory."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest

from fe.auth.devtools import generate_signing_key, mint_token
from tests.conftest import root_execute
from tests.support.mariadb_server import MariaDbServer
from tests.support.rawclient import RawClient, error_of
from tests.support.server import FeProcess
from tests.upstream.test_gateway import UPSTREAM_DEFAULT, _rows, _start_fe, connect_over_tls

ISSUER = "https://idp.example"
IDLE_TIMEOUT = 2
READ_TIMEOUT = 4


@dataclass
class Relay:
    fe: FeProcess
    key: object
    kid: str

    def connect(self, user: str, password: str, **extra: object) -> pymysql.Connection:  # type: ignore[type-arg]
        return connect_over_tls(self.fe, user, password, **extra)


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def relay(
    mariadb: MariaDbServer, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Relay]:
    mariadb.execute(
        f"CREATE USER IF NOT EXISTS '{UPSTREAM_DEFAULT[0]}'@'%' IDENTIFIED BY '{UPSTREAM_DEFAULT[1]}'",
        "CREATE DATABASE IF NOT EXISTS gw",
        f"GRANT ALL ON gw.* TO '{UPSTREAM_DEFAULT[0]}'@'%'",
    )
    home = tmp_path_factory.mktemp("fe-fast-relay")
    (home / "conf").mkdir()
    key, jwk = generate_signing_key("ES256")
    (home / "conf" / "idp.jwks").write_text(json.dumps({"keys": [jwk]}))
    spec = {"jwks_url": "idp.jwks", "required_issuer": ISSUER, "required_audience": "fe"}
    settings = {
        "FE_EVENT_LOOP": request.param,
        "FE_IDLE_TIMEOUT_SECONDS": str(IDLE_TIMEOUT),
        "FE_UPSTREAM_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT),
        "FE_TOKEN_SESSION_POLICY": "expire",
        "FE_JWT_LEEWAY_SECONDS": "0",
    }
    for server in _start_fe(home, mariadb, settings):
        root_execute(
            server,
            "CREATE USER pat IDENTIFIED BY 'Pat-pw-1'",
            f"CREATE USER tom IDENTIFIED WITH authentication_jwt AS '{json.dumps(spec)}'",
        )
        yield Relay(server, key, jwk["kid"])


def _raw_session(relay: Relay) -> RawClient:
    client = RawClient(relay.fe.host, relay.fe.port, timeout=10)
    reply = client.login("pat", "Pat-pw-1", tls=True)
    assert reply[:1] == b"\x00", reply
    return client


def _read_result(client: RawClient) -> list[bytes | None]:
    """The first column of each row of the text result set that answers the command sent last."""
    return [row[0] for row in client.read_rows()]


def test_commands_sent_back_to_back_are_answered_in_order(relay: Relay) -> None:
    """Three queries in one write, fe's own statement between two of the database's: each answered in turn."""
    client = _raw_session(relay)
    try:
        statements = [b"SELECT 'first'", b"SHOW GLOBAL STATUS LIKE 'Fe_logins%'", b"SELECT 'third'", b"SELECT 'fourth'"]
        wire = b"".join(len(b"\x03" + s).to_bytes(3, "little") + b"\x00\x03" + s for s in statements)
        assert isinstance(client.sock, socket.socket)
        client.sock.sendall(wire)
        assert _read_result(client) == [b"first"]
        counters = _read_result(client)  # fe's own answer: its counters' names
        assert counters and all(name.startswith(b"Fe_logins") for name in counters)
        assert _read_result(client) == [b"third"]
        assert _read_result(client) == [b"fourth"]
    finally:
        client.close()


def test_relayed_queries_are_activity_and_a_long_one_is_not_idleness(relay: Relay) -> None:
    session = relay.connect("pat", "Pat-pw-1")
    try:
        deadline = time.monotonic() + IDLE_TIMEOUT * 1.75
        while time.monotonic() < deadline:  # queries every half second, for longer than the idle timeout
            assert _rows(session, "SELECT 1") == [(1,)]
            time.sleep(0.5)
        assert _rows(session, f"SELECT SLEEP({IDLE_TIMEOUT + 1})") == [(0,)]
        time.sleep(IDLE_TIMEOUT + 1.5)  # now idle
        with pytest.raises(pymysql.err.OperationalError) as ended:
            _rows(session, "SELECT 1")
        assert ended.value.args[0] in (4031, 2013)
    finally:
        session.close()
    relay.fe.wait_for_log(r"login user=pat ")


def test_the_idle_timeout_counts_from_the_end_of_a_long_answer(relay: Relay) -> None:
    session = relay.connect("pat", "Pat-pw-1")
    try:
        assert _rows(session, f"SELECT SLEEP({IDLE_TIMEOUT + 1.5})") == [(0,)]
        time.sleep(IDLE_TIMEOUT / 2)  # idle for less than the timeout, counted from the answer
        assert _rows(session, "SELECT 1") == [(1,)]
    finally:
        session.close()


def test_the_read_timeout_is_the_longest_silence_not_the_whole_answer(relay: Relay) -> None:
    """Rows one a second for READ_TIMEOUT + 2 seconds: never silent for READ_TIMEOUT, so never cut."""
    session = relay.connect("pat", "Pat-pw-1", read_timeout=30)
    try:
        rows = _rows(
            session,
            f"SELECT LENGTH(REPEAT('x', 300000)), SLEEP(1), REPEAT('y', 300000) FROM gw.seq_1_to_{READ_TIMEOUT + 2}",
        )
        assert len(rows) == READ_TIMEOUT + 2
    finally:
        session.close()


def test_a_token_session_ends_when_its_token_expires(relay: Relay) -> None:
    expires = int(time.time()) + 3
    claims = {"iss": ISSUER, "aud": "fe", "sub": "tom", "exp": expires}
    token = mint_token(relay.key, "ES256", relay.kid, claims)  # type: ignore[arg-type]
    session = relay.connect("tom", token)
    try:
        while time.time() < expires - 0.5:  # within the idle timeout, until the token expires
            assert _rows(session, "SELECT 1") == [(1,)]
            time.sleep(0.4)
        time.sleep(max(0.0, expires - time.time()) + 0.3)
        with pytest.raises(pymysql.err.OperationalError) as ended:
            _rows(session, "SELECT 1")
        assert ended.value.args[0] == 1045 and "expired" in ended.value.args[1]
    finally:
        session.close()


def test_an_upstream_that_does_not_answer_hits_the_read_timeout(relay: Relay) -> None:
    session = relay.connect("pat", "Pat-pw-1")
    try:
        started = time.monotonic()
        with pytest.raises(pymysql.err.OperationalError) as lost:
            _rows(session, f"SELECT SLEEP({READ_TIMEOUT + 4})")
        assert time.monotonic() - started < READ_TIMEOUT + 3
        assert lost.value.args[0] == 1105 and "did not answer in time" in lost.value.args[1]
        relay.fe.wait_for_log(r"upstream session broke: upstream \S+ did not answer in time")
    finally:
        session.close()
    other = relay.connect("pat", "Pat-pw-1")  # other sessions go on
    try:
        assert _rows(other, "SELECT 2") == [(2,)]
    finally:
        other.close()
    assert relay.fe.alive
    assert "Traceback" not in relay.fe.log


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_client_that_stops_reading_holds_the_upstream_back(relay: Relay) -> None:
    """60 MB of result while the client reads nothing for 2 s: fe stops reading MariaDB rather than buffer it, and
    the whole result arrives once the client reads again."""
    client = _raw_session(relay)
    try:
        idle_rss = _rss(relay.fe.process.pid)
        client.send_packet(b"\x03SELECT REPEAT('x', 1000000) FROM gw.seq_1_to_60", seq=0)
        time.sleep(2)
        stalled_rss = _rss(relay.fe.process.pid)
        assert stalled_rss - idle_rss < 20 * 2**20, (idle_rss, stalled_rss)
        rows = _read_result(client)
        assert len(rows) == 60
        client.send_packet(b"\x03SELECT 'after'", seq=0)
        assert _read_result(client) == [b"after"]
    finally:
        client.close()


def test_a_broken_packet_from_the_client_ends_the_session_cleanly(relay: Relay) -> None:
    """The protocol error surfaces in the session's task even when the relay took the bytes off the socket."""
    client = _raw_session(relay)
    try:
        client.send_packet(b"\x03SELECT 1", seq=5)  # a command must start at sequence id 0
        code, _ = error_of(client.read_packet())
        assert code == 1156
        assert client.closed_by_server()
    finally:
        client.close()


def test_a_stalled_upstream_holds_the_clients_commands_back(relay: Relay, mariadb: MariaDbServer) -> None:
    """COM_STMT_SEND_LONG_DATA has no answer, so nothing but the upstream's own pace limits how fast a client may send
    it: while MariaDB takes nothing (stopped), fe must stop reading the client instead of buffering what it sends."""
    client = _raw_session(relay)
    pid = relay.fe.process.pid
    try:
        client.send_packet(b"\x16SELECT ?", seq=0)
        prepared = client.read_packet()
        assert prepared[:1] == b"\x00", prepared
        for _ in range(4):  # the parameter's and the column's definitions, each followed by an EOF
            client.read_packet()
        before = _rss(pid)
        chunk = b"\x18" + prepared[1:5] + b"\x00\x00" + b"z" * 1_000_000
        wire = len(chunk).to_bytes(3, "little") + b"\x00" + chunk
        sent = [0]

        def send_all() -> None:
            try:
                for _ in range(400):
                    client.sock.sendall(wire)
                    sent[0] += 1
            except OSError:
                pass

        os.kill(mariadb.process.pid, signal.SIGSTOP)
        try:
            client.sock.settimeout(30)
            sender = threading.Thread(target=send_all, daemon=True)
            sender.start()
            time.sleep(6)
            grown = _rss(pid) - before
        finally:
            os.kill(mariadb.process.pid, signal.SIGCONT)
        # fe reads about two packets' worth ahead (max_allowed_packet), then waits: far from the 400 MB sent.
        assert sent[0] < 400 and grown < 200 * 2**20, (sent[0], grown)
    finally:
        client.close()
