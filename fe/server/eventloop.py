"""Which asyncio event loop runs the server: uvloop (libuv, in C) when installed, else the standard library's.

A login is a handful of short turns of the event loop (greeting, TLS flights, the auth exchange, the query,
the close), so the loop's own per-turn cost is a large part of fe's CPU per login; uvloop runs those turns
with about a third fewer interpreted instructions. Both loops are supported and tested; `event_loop` in
fe.conf chooses.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class EventLoopUnavailable(Exception):
    pass


def resolve(choice: str) -> str:
    """ "auto" becomes "uvloop" when it is installed, else "asyncio"; "uvloop" must be installed."""
    installed = importlib.util.find_spec("uvloop") is not None
    if choice == "auto":
        return "uvloop" if installed else "asyncio"
    if choice == "uvloop" and not installed:
        raise EventLoopUnavailable("event_loop = uvloop, but uvloop is not installed (pip install uvloop)")
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


def running_loop_name() -> str:
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"
