"""Which asyncio event loop runs the server: the standard library's (the default), or uvloop (libuv, in C).

A login is a handful of short turns of the event loop (greeting, TLS flights, the auth exchange, the query, the
close). uvloop runs them with about a third fewer interpreted instructions, which measured as 3–11% less server
CPU per login, with throughput and p99 at 16 busy clients better in some runs and worse in others
(docs/benchmarks.md). That modest gain does not make a native dependency worth it by default: it is an option
(`event_loop = uvloop` in fe.conf, with `pip install uvloop`), and the tests run on both loops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class EventLoopUnavailable(Exception):
    pass


def resolve(choice: str) -> str:
    """The loop to run ("asyncio" or "uvloop"); EventLoopUnavailable when uvloop is asked for but cannot load."""
    if choice == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ModuleNotFoundError:
            raise EventLoopUnavailable(
                "event_loop = uvloop, but uvloop is not installed (pip install uvloop)"
            ) from None
        except ImportError as exc:
            raise EventLoopUnavailable(f"event_loop = uvloop, but uvloop cannot be loaded: {exc}") from None
    return choice


def _factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], name: str) -> T:
    """asyncio.run() on a loop `resolve()` named."""
    with asyncio.Runner(loop_factory=_factory(name)) as runner:
        return runner.run(main)


def from_uvloop(obj: object) -> bool:
    """True for uvloop's loop and transports."""
    return type(obj).__module__.startswith("uvloop")


def running_loop_name() -> str:
    return "uvloop" if from_uvloop(asyncio.get_running_loop()) else "asyncio"
