"""The load generator: a few worker processes, each running many lean asyncio clients over one TLS context.

The parent talks to each worker over a pipe, one command at a time:

- `mint`: make N distinct signed tokens now (before any timed window), kept in the worker for later storms;
- `storm`: from `start_at` to `end_at` (monotonic clock, shared by all processes on Linux) run `clients` loops of
  connect → TLS → login → SELECT 1 → quit; report every login's latency and the worker's own CPU time;
- `hold` / `release`: open N authenticated TLS connections and keep them idle, then quit them all.

Every loop is bounded by time and by count; a worker exits when its pipe closes. Workers run on uvloop when it is
installed (fe can too, with event_loop = uvloop): the event loop's own per-turn cost is a large share of the lean
client's CPU per login, and this CPU comes out of the same 2 cores as the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import math
import multiprocessing
import multiprocessing.connection
import os
import ssl
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any

from scripts.bench.mysqlwire import Connection, Credential, Token, WireError, client_tls_context

MAX_CYCLES_PER_CLIENT = 1_000_000
ERROR_BACKOFF_SECONDS = 0.02
ERROR_SAMPLES_KEPT = 5
COMMAND_GRACE_SECONDS = 60.0


@dataclass(frozen=True)
class MintSpec:
    """Tokens to sign in a worker: `count` of them, each with its own `jti`."""

    private_key_pem: bytes
    alg: str
    kid: str
    claims: dict[str, Any]
    count: int
    ttl_seconds: int = 3600


@dataclass(frozen=True)
class StormJob:
    host: str
    port: int
    user: str
    credential: Credential | None  # None: a fresh minted token for every login
    clients: int
    start_at: float
    end_at: float
    query: str = "SELECT 1"
    expected_rows: tuple[tuple[bytes | None, ...], ...] = ((b"1",),)


@dataclass
class StormResult:
    login_latencies: list[float] = field(default_factory=list)  # seconds: connect start → login OK
    cycles: int = 0  # full connect → quit cycles whose login completed inside the window
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    cpu_seconds: float = 0.0
    tokens_exhausted: bool = False

    def note_error(self, exc: BaseException) -> None:
        self.errors += 1
        if len(self.error_samples) < ERROR_SAMPLES_KEPT:
            self.error_samples.append(f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class HoldJob:
    host: str
    port: int
    user: str
    credential: Credential | None  # None: fresh minted tokens
    count: int
    parallel: int = 16
    deadline_seconds: float = 120.0


@dataclass
class HoldResult:
    opened: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)


# -- the worker process ---------------------------------------------------------------------------------------


def new_event_loop(choice: str = "auto") -> asyncio.AbstractEventLoop:
    """The workers' loop: uvloop when installed ("auto"), or "uvloop" / "asyncio" as asked."""
    if choice == "uvloop" or (choice == "auto" and importlib.util.find_spec("uvloop") is not None):
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class _Worker:
    def __init__(self, event_loop: str) -> None:
        self.tls = client_tls_context()
        self.tokens: list[str] = []
        self.held: list[Connection] = []
        self.loop = new_event_loop(event_loop)

    def handle(self, command: str, argument: Any) -> Any:
        if command == "mint":
            return self.mint(argument)
        if command == "storm":
            return self.loop.run_until_complete(self.storm(argument))
        if command == "hold":
            return self.loop.run_until_complete(self.hold(argument))
        if command == "release":
            return self.loop.run_until_complete(self.release())
        raise ValueError(f"unknown command {command!r}")

    def mint(self, spec: MintSpec) -> int:
        from cryptography.hazmat.primitives import serialization

        from fe.auth.devtools import mint_token

        key = serialization.load_pem_private_key(spec.private_key_pem, password=None)
        now = int(time.time())
        prefix = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.tokens = [
            mint_token(
                key,
                spec.alg,
                spec.kid,  # type: ignore[arg-type]
                {**spec.claims, "iat": now, "exp": now + spec.ttl_seconds, "jti": f"{prefix}-{i}"},
            )
            for i in range(spec.count)
        ]
        return len(self.tokens)

    def _credentials(self, credential: Credential | None) -> Any:
        if credential is not None:
            while True:
                yield credential
        while self.tokens:
            yield Token(self.tokens.pop())

    async def storm(self, job: StormJob) -> StormResult:
        result = StormResult()
        credentials = self._credentials(job.credential)
        await asyncio.sleep(max(0.0, job.start_at - time.monotonic()))
        cpu_before = time.process_time()
        await asyncio.gather(*(self._client_loop(job, credentials, result) for _ in range(job.clients)))
        result.cpu_seconds = time.process_time() - cpu_before
        return result

    async def _client_loop(self, job: StormJob, credentials: Any, result: StormResult) -> None:
        for _cycle in range(MAX_CYCLES_PER_CLIENT):
            if time.monotonic() >= job.end_at:
                return
            credential = next(credentials, None)
            if credential is None:
                result.tokens_exhausted = True
                return
            started = time.monotonic()
            try:
                connection = await Connection.open(job.host, job.port, job.user, credential, self.tls)
                logged_in = time.monotonic()
                try:
                    rows = await connection.query(job.query)
                finally:
                    await connection.quit()
                if tuple(rows) != job.expected_rows:
                    raise WireError(f"unexpected answer to {job.query!r}: {rows!r}")
            except (WireError, OSError, ssl.SSLError) as exc:
                result.note_error(exc)
                await asyncio.sleep(ERROR_BACKOFF_SECONDS)
                continue
            if logged_in <= job.end_at:
                result.login_latencies.append(logged_in - started)
                result.cycles += 1

    async def hold(self, job: HoldJob) -> HoldResult:
        result = HoldResult()
        credentials = self._credentials(job.credential)
        gate = asyncio.Semaphore(job.parallel)
        deadline = time.monotonic() + job.deadline_seconds

        async def open_one() -> None:
            async with gate:
                credential = next(credentials, None)
                if credential is None or time.monotonic() > deadline:
                    result.errors += 1
                    return
                try:
                    self.held.append(await Connection.open(job.host, job.port, job.user, credential, self.tls))
                    result.opened += 1
                except (WireError, OSError, ssl.SSLError) as exc:
                    result.errors += 1
                    if len(result.error_samples) < ERROR_SAMPLES_KEPT:
                        result.error_samples.append(f"{type(exc).__name__}: {exc}")

        await asyncio.gather(*(open_one() for _ in range(job.count)))
        return result

    async def release(self) -> int:
        held, self.held = self.held, []
        gate = asyncio.Semaphore(64)

        async def quit_one(connection: Connection) -> None:
            async with gate:
                await connection.quit()

        await asyncio.gather(*(quit_one(c) for c in held))
        return len(held)


def _worker_main(pipe: multiprocessing.connection.Connection, event_loop: str) -> None:
    worker = _Worker(event_loop)
    while True:
        try:
            command, argument = pipe.recv()
        except (EOFError, OSError):
            return
        if command == "exit":
            return
        try:
            pipe.send(("ok", worker.handle(command, argument)))
        except Exception:
            pipe.send(("error", traceback.format_exc()))


# -- the parent's side ----------------------------------------------------------------------------------------


class LoadGeneratorError(RuntimeError):
    pass


class LoadGenerator:
    """A pool of worker processes; use as a context manager so they always stop."""

    def __init__(self, processes: int, event_loop: str = "auto") -> None:
        context = multiprocessing.get_context("spawn")
        self._pipes: list[multiprocessing.connection.Connection] = []
        self._processes: list[multiprocessing.process.BaseProcess] = []
        for _ in range(processes):
            parent_end, child_end = context.Pipe()
            process = context.Process(target=_worker_main, args=(child_end, event_loop), daemon=True)
            process.start()
            child_end.close()
            self._pipes.append(parent_end)
            self._processes.append(process)

    @property
    def size(self) -> int:
        return len(self._pipes)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p.pid is not None]

    def __enter__(self) -> LoadGenerator:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError, BrokenPipeError):
                pipe.send(("exit", None))
        for process in self._processes:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)
        self._pipes.clear()
        self._processes.clear()

    def _send(self, index: int, command: str, argument: Any) -> None:
        self._pipes[index].send((command, argument))

    def _receive(self, index: int, timeout: float) -> Any:
        pipe = self._pipes[index]
        try:
            if not pipe.poll(timeout):
                raise LoadGeneratorError(f"load generator worker {index} did not answer within {timeout:.0f}s")
            status, value = pipe.recv()
        except (EOFError, OSError) as exc:
            raise LoadGeneratorError(f"load generator worker {index} died: {exc!r}") from exc
        if status != "ok":
            raise LoadGeneratorError(f"load generator worker {index} failed:\n{value}")
        return value

    def split(self, total: int) -> list[int]:
        """`total` spread as evenly as possible over the workers."""
        base, extra = divmod(total, self.size)
        return [base + (1 if i < extra else 0) for i in range(self.size)]

    def mint(self, spec: MintSpec, total: int, clients: int | None = None) -> int:
        """Sign `total` tokens, shared among the workers in proportion to how `clients` will be split."""
        shares = [math.ceil(total * n / clients) for n in self.split(clients)] if clients else self.split(total)
        for index, share in enumerate(shares):
            self._send(index, "mint", MintSpec(spec.private_key_pem, spec.alg, spec.kid, spec.claims, share))
        return sum(self._receive(i, COMMAND_GRACE_SECONDS) for i in range(self.size))

    def start_storm(self, job: StormJob) -> list[int]:
        """Send the storm to the workers (clients split among them); collect with `finish_storm`."""
        busy = []
        for index, clients in enumerate(self.split(job.clients)):
            if clients:
                self._send(index, "storm", StormJob(**{**job.__dict__, "clients": clients}))
                busy.append(index)
        return busy

    def finish_storm(self, busy: list[int], end_at: float) -> list[StormResult]:
        timeout = max(0.0, end_at - time.monotonic()) + COMMAND_GRACE_SECONDS
        return [self._receive(i, timeout) for i in busy]

    def hold(self, job: HoldJob) -> list[HoldResult]:
        shares = self.split(job.count)
        for index, share in enumerate(shares):
            self._send(index, "hold", HoldJob(**{**job.__dict__, "count": share}))
        return [self._receive(i, job.deadline_seconds + COMMAND_GRACE_SECONDS) for i in range(self.size)]

    def release(self) -> int:
        for index in range(self.size):
            self._send(index, "release", None)
        return sum(self._receive(i, COMMAND_GRACE_SECONDS * 2) for i in range(self.size))
