"""Deadline behaves as asyncio.timeout() does for a fixed delay: TimeoutError when it passes, nothing when the block
ends in time, and a cancellation from elsewhere stays a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from fe.util.deadline import Deadline


async def test_a_block_that_ends_in_time_is_left_alone() -> None:
    with Deadline(1.0) as deadline:
        await asyncio.sleep(0)
    assert not deadline.expired
    await asyncio.sleep(0.01)  # the timer was cancelled: nothing is cancelled later
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_block_past_its_deadline_raises_timeout_error_and_the_task_goes_on() -> None:
    with pytest.raises(TimeoutError), Deadline(0.01) as deadline:
        await asyncio.sleep(10)
    assert deadline.expired
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    await asyncio.sleep(0)  # not cancelled any more


async def test_a_cancellation_from_elsewhere_is_not_turned_into_a_timeout() -> None:
    started = asyncio.Event()

    async def guarded() -> None:
        with Deadline(10.0):
            started.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(guarded())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_deadline_and_a_cancellation_from_elsewhere_at_once_stay_a_cancellation() -> None:
    started = asyncio.Event()

    async def guarded() -> None:
        with Deadline(0.01):
            started.set()
            try:
                await asyncio.sleep(10)
            finally:
                asyncio.current_task().cancel()  # type: ignore[union-attr]  # e.g. shutdown, at the same moment

    task = asyncio.create_task(guarded())
    await started.wait()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_it_needs_a_task() -> None:
    def outside() -> None:
        with Deadline(1.0):
            pass

    with pytest.raises(RuntimeError):
        await asyncio.get_running_loop().run_in_executor(None, outside)
