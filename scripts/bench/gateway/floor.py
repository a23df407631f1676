"""The floor under any MySQL relay written in Python, on this machine: a blind TLS-terminating relay, measured like
fe's gateway (16 clients, `SELECT 1`, queries per second) next to MariaDB directly.

    python -m scripts.bench.gateway.floor              # 3 interleaved rounds, about a minute
    python -m scripts.bench.gateway.floor --rounds 5

The relay passes MariaDB's greeting and the client's SSLRequest through, runs TLS with each side over memory BIOs,
then hands the decrypted bytes of each side to the other without looking at them: no login of its own, no routing,
no response tracking, no sequence ids — about the least Python a relay that terminates TLS on both legs can run per
query (one receive, one decryption, one encryption and one send per direction). On uvloop whatever fe does on top
costs more, so what this relay cannot reach there fe cannot either (see docs/gateway.md). On the standard loop it is
no floor: its transports begin as asyncio streams and change protocols, which costs it more there than fe's path.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from scripts.bench.gateway import measure
from scripts.bench.gateway.results import QpsRound
from scripts.bench.gateway.run import new_client_loop
from scripts.bench.gateway.servers import DATABASE, Stack, running_stack
from scripts.bench.mariadb import BENCH_PASSWORD, BENCH_USER
from scripts.bench.mysqlwire import client_tls_context

DIRECT = "direct"
LOOPS = ("asyncio", "uvloop")


# ---- the relay (runs in its own process: --serve) ----


class _Leg(asyncio.Protocol):
    """One side's socket: bytes in are decrypted and sent, encrypted, to the other side."""

    def __init__(self, tls: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO) -> None:
        self.tls, self.incoming, self.outgoing = tls, incoming, outgoing
        self.transport: asyncio.Transport | None = None
        self.other: _Leg | None = None
        self.keep: object = None  # the stream objects the connection began with (their transports are ours now)

    def data_received(self, data: bytes) -> None:
        assert self.other is not None and self.transport is not None
        self.incoming.write(data)
        try:
            while True:
                chunk = self.tls.read(65536)
                if not chunk:
                    self.close()
                    return
                self.other.send(chunk)
                if not self.incoming.pending and not self.tls.pending():
                    break
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError:
            self.close()
            return
        if self.outgoing.pending:
            self.transport.write(self.outgoing.read())

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.tls.write(data)
        self.transport.write(self.outgoing.read())

    def close(self) -> None:
        for leg in (self, self.other):
            if leg is not None and leg.transport is not None:
                leg.transport.close()

    def eof_received(self) -> bool:
        self.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()


async def _read_packet(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(4)
    return header + await reader.readexactly(int.from_bytes(header[:3], "little"))


async def _handshake(
    tls: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:  # fmt: skip
    while True:
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            if outgoing.pending:
                writer.write(outgoing.read())
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("closed during the TLS handshake") from None
            incoming.write(data)
            continue
        if outgoing.pending:
            writer.write(outgoing.read())
        return


def _take_buffered(reader: asyncio.StreamReader) -> bytes:
    buffered: bytearray = getattr(reader, "_buffer")  # noqa: B009 - bytes that came with the last read
    data = bytes(buffered)
    buffered.clear()
    return data


async def _relay(
    client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter, upstream: tuple[str, int],
    server_tls: ssl.SSLContext, client_tls: ssl.SSLContext,
) -> None:  # fmt: skip
    up_reader, up_writer = await asyncio.open_connection(*upstream)
    for writer in (client_writer, up_writer):
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client_writer.write(await _read_packet(up_reader))  # the greeting
    up_writer.write(await _read_packet(client_reader))  # the SSLRequest
    client_in, client_out, up_in, up_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client_side = server_tls.wrap_bio(client_in, client_out, server_side=True)
    up_side = client_tls.wrap_bio(up_in, up_out, server_side=False)
    client_in.write(_take_buffered(client_reader))  # the ClientHello may have come with the SSLRequest
    await asyncio.gather(
        _handshake(client_side, client_in, client_out, client_reader, client_writer),
        _handshake(up_side, up_in, up_out, up_reader, up_writer),
    )
    client_leg, up_leg = _Leg(client_side, client_in, client_out), _Leg(up_side, up_in, up_out)
    client_leg.other, up_leg.other = up_leg, client_leg
    for leg, reader, writer in ((client_leg, client_reader, client_writer), (up_leg, up_reader, up_writer)):
        leg.keep = (reader, writer)  # a StreamWriter closes its transport when collected
        leg.transport = writer.transport  # type: ignore[assignment]
        writer.transport.set_protocol(leg)
    for leg, reader in ((client_leg, client_reader), (up_leg, up_reader)):
        leg.data_received(_take_buffered(reader))  # what arrived after the handshake, in the BIO or the reader


def serve(upstream: tuple[str, int], port: int, certificate: str, key: str, loop: str) -> None:
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(certificate, key)
    client_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_tls.check_hostname = False
    client_tls.verify_mode = ssl.CERT_NONE

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _relay(reader, writer, upstream, server_tls, client_tls)
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(accept, "127.0.0.1", port)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    if loop == "uvloop":
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


# ---- the measurement ----


@dataclass
class BlindRelay:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    def start(cls, upstream_port: int, loop: str, directory: Path) -> BlindRelay:
        command = [
            sys.executable, "-m", "scripts.bench.gateway.floor", "--serve", str(upstream_port),
            str(directory / "cert.pem"), str(directory / "key.pem"), loop,
        ]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.PIPE)
        assert process.stdout is not None
        return cls(process, int(process.stdout.readline()))

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(10)


@dataclass
class FloorStack:
    """What measure.Client and measure.qps need of a Stack, with the blind relays as the targets."""

    inner: Stack
    relays: dict[str, BlindRelay] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return self.inner.host

    @property
    def mariadb(self):  # type: ignore[no-untyped-def]
        return self.inner.mariadb

    def port(self, target: str) -> int:
        return self.relays[target].port if target in self.relays else self.inner.mariadb.port

    def fe_pid(self, target: str) -> int | None:
        return self.relays[target].pid if target in self.relays else None

    def credentials(self, target: str) -> tuple[str, str]:
        return BENCH_USER, BENCH_PASSWORD  # the relay passes MariaDB's own login through

    def cpu_seconds(self, pid: int | None) -> float:
        return self.inner.cpu_seconds(pid)


def _certificate(directory: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem"), "-subj", "/CN=localhost",
         "-days", "1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


def measure_floor(rounds: int, plan: measure.Plan) -> list[QpsRound]:
    results: list[QpsRound] = []
    with tempfile.TemporaryDirectory(prefix="fe-floor-") as home, running_stack([]) as stack:
        directory = Path(home)
        _certificate(directory)
        floor = FloorStack(stack)
        try:
            for loop in LOOPS:
                floor.relays[f"relay-{loop}"] = BlindRelay.start(stack.mariadb.port, loop, directory)
            targets = [DIRECT, *floor.relays]

            async def run() -> None:
                tls = client_tls_context()
                clients = {t: measure.Client(floor, t, tls) for t in targets}  # type: ignore[arg-type]
                pools = {t: await measure.open_many(clients[t], plan.qps_clients, DATABASE) for t in targets}
                for r in range(rounds):
                    for target in measure.ordered(targets, r):
                        item = await measure.qps(
                            clients[target], pools[target], r, "SELECT 1", plan.qps_warmup_seconds, plan.qps_seconds
                        )
                        results.append(item)
                        measure.say(f"  round {r} {target:14} {item.qps:8.0f} q/s")
                for pool in pools.values():
                    await measure.close_all(pool)

            new_client_loop().run_until_complete(run())
        finally:
            for relay in floor.relays.values():
                relay.stop()
    return results


def report(results: list[QpsRound]) -> str:
    direct = {item.round_index: item.qps for item in results if item.target == DIRECT}
    lines = [
        "| target | queries/s (median) | rounds | vs direct (median of the rounds' ratios) | relay CPU µs/query |",
        "|---|---:|---:|---:|---:|",
    ]
    for target in dict.fromkeys(item.target for item in results):
        items = [item for item in results if item.target == target]
        qps = statistics.median(item.qps for item in items)
        spread = f"{min(i.qps for i in items):.0f}–{max(i.qps for i in items):.0f}"
        if target == DIRECT:
            lines.append(f"| {target} | {qps:.0f} | {spread} |  |  |")
            continue
        ratio = statistics.median(item.qps / direct[item.round_index] for item in items)
        cpu = statistics.median(item.per_query_us(item.fe_cpu_s) for item in items)
        lines.append(f"| {target} | {qps:.0f} | {spread} | ×{ratio:.2f} | {cpu:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", nargs=4, metavar=("UPSTREAM_PORT", "CERT", "KEY", "LOOP"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        upstream_port, certificate, key, loop = options.serve
        serve(("127.0.0.1", int(upstream_port)), 0, certificate, key, loop)
        return
    print(report(measure_floor(options.rounds, measure.Plan())))


if __name__ == "__main__":
    main()
