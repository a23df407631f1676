"""Which asyncio event loop runs the server: uvloop (libuv, in C) when it is installed, which it is with fe on
Linux and macOS (`event_loop = auto`, the default), else the standard library's; either can be asked for.

uvloop runs the event loop's own work in C. A login is a handful of short turns of the loop: there uvloop saves
3–11% of the server's CPU (docs/benchmarks.md). A relayed command is two: there it saves about 15% (24 against 28 µs
per `SELECT 1` through the gateway, docs/gateway.md), which on a machine the database shares is as much more
throughput. Both loops run the same code, and the tests run the gateway and the streams on both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class EventLoopUnavailable(Exception):
    pass


def resolve(choice: str) -> str:
    """The loop to run ("asyncio" or "uvloop") for a setting ("auto", "asyncio" or "uvloop");
    EventLoopUnavailable when uvloop is asked for but cannot load."""
    if choice == "auto":
        try:
            import uvloop
        except ImportError:
            return "asyncio"
        return "uvloop"
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
