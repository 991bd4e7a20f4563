"""The simulators' clocks and task ending: time moves only when a test says so."""

from __future__ import annotations

import asyncio

import pytest

from bridge.sim.clock import ManualClock, sleep_until_or
from bridge.sim.tasks import cancel_and_wait


async def test_a_sleeper_wakes_only_when_the_clock_reaches_its_deadline() -> None:
    clock = ManualClock()
    woke: list[float] = []

    async def sleeper() -> None:
        await clock.sleep_until(10)
        woke.append(clock.now())

    task = asyncio.create_task(sleeper())
    await asyncio.sleep(0)
    await clock.advance(9.5)
    assert woke == []
    await clock.advance(1)
    await task
    assert woke == [10.5]


async def test_advance_runs_every_step_before_it_returns() -> None:
    clock = ManualClock()
    seen: list[float] = []

    async def step() -> None:
        seen.append(clock.now())

    ticking = asyncio.create_task(clock.every(0.05, step))
    await asyncio.sleep(0)
    assert seen == [0.0]  # once at the start, as on the wall clock
    await clock.advance(30)
    await clock.advance(5)
    assert seen == [0.0, 30.0, 35.0]
    await cancel_and_wait(ticking)
    await clock.advance(1)
    assert seen == [0.0, 30.0, 35.0]  # a cancelled loop is no longer called


async def test_time_does_not_go_back() -> None:
    with pytest.raises(ValueError, match="forward"):
        await ManualClock().advance(-1)


async def test_sleep_until_or_ends_at_the_event_or_the_deadline() -> None:
    clock, event = ManualClock(), asyncio.Event()
    by_event = asyncio.create_task(sleep_until_or(clock, 100, event))
    await asyncio.sleep(0)
    event.set()
    await by_event
    assert clock.now() == 0
    by_deadline = asyncio.create_task(sleep_until_or(clock, 100, asyncio.Event()))
    await asyncio.sleep(0)
    await clock.advance(100)
    await by_deadline


async def test_cancel_and_wait_reraises_what_a_task_died_of() -> None:
    async def buggy() -> None:
        raise RuntimeError("bug in the fake")

    task = asyncio.create_task(buggy())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="bug in the fake"):
        await cancel_and_wait(task, None)


async def test_cancelling_the_waiter_is_not_swallowed() -> None:
    """The caller's own cancellation propagates while it waits for a slow task to end."""
    release = asyncio.Event()
    unwinding = asyncio.Event()

    async def slow_to_end() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            unwinding.set()
            await release.wait()  # cleanup that takes a while
            raise

    child = asyncio.create_task(slow_to_end())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(cancel_and_wait(child))
    await unwinding.wait()
    waiter.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert waiter.cancelled()
    await asyncio.wait([child])
    assert child.cancelled()
