"""A real forward proxy for tests: Debian's tinyproxy, on 127.0.0.1 and a free port, in a temporary directory.

Started with a generated config in the foreground (`-d`) and stopped with SIGTERM (its directory removed). Run by
root, it drops to `nobody`, which owns the directory (under /tmp, so `nobody` can reach it) to write its log.
Its log (LogLevel Connect) has one `Request (file descriptor N): <request line>` per request it handled —
`GET http://host:port/path ...` for plain HTTP, `CONNECT host:port ...` for a tunnel — which `requests()` returns.

When tinyproxy is not installed the tests that need it skip, unless FE_TESTS_REQUIRE_TINYPROXY is set (as the
full test run sets it): then they fail.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.processes import free_port

REQUIRE_ENV = "FE_TESTS_REQUIRE_TINYPROXY"
_REQUEST = re.compile(r"Request \(file descriptor \d+\): (.+)$")


def tinyproxy_binary() -> str:
    """The tinyproxy executable; skips the test when missing (fails under FE_TESTS_REQUIRE_TINYPROXY)."""
    found = shutil.which("tinyproxy") or next(
        (p for p in ("/usr/bin/tinyproxy", "/usr/sbin/tinyproxy") if os.access(p, os.X_OK)), None
    )
    if found is None:
        message = "tinyproxy is not installed (apt-get install -y tinyproxy)"
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{message}, and {REQUIRE_ENV} is set")
        pytest.skip(message)
    return found


class Tinyproxy:
    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="fe-tinyproxy-"))
        self.port = 0
        self.log_file = self.directory / "tinyproxy.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> Tinyproxy:
        binary = tinyproxy_binary()
        for _attempt in range(3):  # the free port may be taken between probing and binding
            self.port = free_port()
            config = self._write_config()
            self._process = subprocess.Popen(
                [binary, "-d", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            if self._wait_listening(timeout):
                return self
            self._terminate()
        raise RuntimeError(f"tinyproxy did not start:\n{self.log()}")

    def _write_config(self) -> Path:
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Timeout 30",
            f'LogFile "{self.log_file}"',
            "LogLevel Connect",
            "MaxClients 50",
            "Allow 127.0.0.1",
        ]
        if os.geteuid() == 0:
            # tinyproxy warns about running as root (some builds refuse): it drops to an unprivileged user, and
            # opens its log as that user.
            user = pwd.getpwnam("nobody")
            group = next((g for g in ("nogroup", "nobody") if _group_exists(g)), None)
            lines.append("User nobody")
            if group is not None:
                lines.append(f"Group {group}")
            os.chown(self.directory, user.pw_uid, -1)
        config = self.directory / "tinyproxy.conf"
        config.write_text("\n".join(lines) + "\n")
        return config

    def _wait_listening(self, timeout: float) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def log(self) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            text = ""
        if self._process is not None and self._process.poll() is not None and self._process.stderr is not None:
            text += self._process.stderr.read().decode(errors="replace")
        return text

    def requests(self) -> list[str]:
        """The request lines tinyproxy has logged so far, oldest first."""
        found = []
        for line in self.log().splitlines():
            match = _REQUEST.search(line)
            if match:
                found.append(match.group(1).strip())
        return found

    def wait_for_request(self, fragment: str, timeout: float = 5.0) -> str:
        """The first logged request line containing `fragment` (tinyproxy may log it just after replying)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.requests():
                if fragment in line:
                    return line
            if time.monotonic() >= deadline:
                raise AssertionError(f"tinyproxy logged no request with {fragment!r}:\n{self.log()}")
            time.sleep(0.02)

    def stop(self) -> None:
        self._terminate()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if process.stderr is not None:
            process.stderr.close()


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True
