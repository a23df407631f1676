"""Run a real `fe serve` process for tests: its own home directory, a free port, stopped with SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

READY = re.compile(r"ready: accepting MySQL connections on ([\d.]+):(\d+)")
# With --workers, each worker says it is ready; the supervisor's line comes once all of them are.
READY_WORKERS = re.compile(r"ready: \d+ workers accepting MySQL connections on ([\d.]+):(\d+)")


class FeProcess:
    def __init__(self, home: Path, extra_args: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.extra_args = extra_args or []
        self.env = env or {}
        self.process: subprocess.Popen[str] | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 20.0, port: int = 0) -> FeProcess:
        env = {**os.environ, **self.env}
        self.lines = []
        self._ready.clear()
        command = [sys.executable, "-m", "fe.cli", "serve", "--home", str(self.home), "--port", str(port)]
        self.process = subprocess.Popen(
            command + self.extra_args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
        )
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout):
            self.kill()
            raise RuntimeError("fe did not become ready:\n" + self.log)
        return self

    def _read_log(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            match = (READY_WORKERS if "--workers" in self.extra_args else READY).search(line)
            if match and not self._ready.is_set():
                self.host, self.port = match.group(1), int(match.group(2))
                self._ready.set()

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def wait_for_log(self, pattern: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if regex.search(line):
                    return line
            time.sleep(0.02)
        raise AssertionError(f"no log line matching {pattern!r} in:\n{self.log}")

    def http_port(self) -> int:
        """The port of the HTTP listener (/metrics, /healthz, /readyz), as its ready line names it."""
        line = self.wait_for_log(r"HTTP listener on [^:]+:\d+")
        match = re.search(r"HTTP listener on [^:]+:(\d+)", line)
        assert match is not None
        return int(match.group(1))

    def stop(self, timeout: float = 15.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        if self._reader is not None:
            self._reader.join(2)
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if self._reader is not None:
            self._reader.join(2)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@contextmanager
def running_fe(
    home: Path, extra_args: list[str] | None = None, env: dict[str, str] | None = None, port: int = 0
) -> Iterator[FeProcess]:
    server = FeProcess(home, extra_args, env).start(port=port)
    try:
        yield server
    finally:
        if server.alive:
            code = server.stop()
            assert code == 0, f"fe exited with {code}:\n{server.log}"
