"""What the tests' real servers (MariaDB, PostgreSQL, tinyproxy, HAProxy, an OpenID provider) share: a free port
on loopback, the unprivileged account a root test run starts a server as, and a child that dies with the tests."""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import signal
import socket

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unprivileged_account(*names: str, server: str) -> pwd.struct_passwd | None:
    """Whom to run `server` as: None when the tests already run unprivileged, else the first of `names` (then
    `nobody`) that exists. Servers such as mariadbd and postgres refuse to run as root."""
    if os.geteuid() != 0:
        return None
    for name in (*names, "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError(f"running as root and none of {', '.join((*names, 'nobody'))} exists to run {server} as")


def die_with_parent() -> None:
    """A Popen preexec_fn: the child gets SIGKILL when the test process dies, so no server outlives the tests."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
