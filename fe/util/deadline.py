"""`with Deadline(seconds):` — asyncio.timeout(seconds) for a block of one task's code, as a plain context manager.

Every connection's handshake runs under one: asyncio.timeout() costs a login about 17,000 machine instructions
beyond the one timer it sets (an async context manager, a current-state enum read through the enum metaclass's
__getattr__ hook at each step, a reschedule), where Deadline costs the timer and little else. The semantics are
asyncio.timeout()'s for a fixed delay: when it passes, the task is cancelled, and the cancellation that reaches the
end of the block becomes TimeoutError — unless the task was cancelled from elsewhere as well (shutdown), which then
goes on as CancelledError.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any


class Deadline:
    __slots__ = ("_delay", "_expired", "_handle", "_task")

    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._expired = False
        self._task: asyncio.Task[Any] | None = None
        self._handle: asyncio.TimerHandle | None = None

    def __enter__(self) -> Deadline:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Deadline must be used inside a task")
        self._task = task
        self._handle = task.get_loop().call_later(self._delay, self._expire)
        return self

    def _expire(self) -> None:
        assert self._task is not None
        self._expired = True
        self._task.cancel()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        assert self._handle is not None and self._task is not None
        self._handle.cancel()
        if self._expired and self._task.uncancel() == 0 and exc_type is asyncio.CancelledError:
            raise TimeoutError

    @property
    def expired(self) -> bool:
        return self._expired
