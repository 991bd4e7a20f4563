"""Time for the simulators: the event loop's clock, or one a test moves by hand.

A fake service reads every time it enforces (idle timeout, duration limit, end of speech) from
its clock: ``now()`` for the present, ``sleep_until`` to wait, ``every`` to run its expiry
check.  :class:`WallClock` is real time (``heygen-bridge simulate``, media tests).
:class:`ManualClock` stands still until a test calls :meth:`ManualClock.advance`, which wakes
the sleepers and runs every expiry check before it returns: the test decides when a session
times out instead of racing a shrunk wall clock on a loaded machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from bridge.sim.tasks import cancel_and_wait

Step = Callable[[], Awaitable[None]]


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on this clock (only differences mean anything)."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once ``now() >= deadline``."""
        ...

    async def every(self, period: float, step: Step) -> None:
        """Run ``step`` now and again each ``period`` seconds on this clock, until cancelled."""
        ...


class WallClock:
    """The running event loop's monotonic clock."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep_until(self, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - self.now()))

    async def every(self, period: float, step: Step) -> None:
        while True:
            await step()
            await asyncio.sleep(period)


class ManualClock:
    """A clock that moves only when told to; a test owns it and calls :meth:`advance`."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self._steps: list[Step] = []

    def now(self) -> float:
        return self._now

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self._now:
            return
        entry = (deadline, asyncio.get_running_loop().create_future())
        self._sleepers.append(entry)
        try:
            await entry[1]
        finally:
            self._sleepers.remove(entry)

    async def every(self, period: float, step: Step) -> None:
        """Run ``step`` now and after each :meth:`advance` (``period`` does not matter here)."""
        self._steps.append(step)
        try:
            await step()
            await asyncio.get_running_loop().create_future()  # until cancelled
        finally:
            self._steps.remove(step)

    async def advance(self, seconds: float) -> None:
        """Move time on: wake the sleepers that are due, then run every periodic step.

        When it returns, each expiry check has seen the new time (a session past its limit is
        closed), and each woken sleeper has run up to its next ``await``.
        """
        if seconds < 0:
            raise ValueError(f"time only moves forward (asked for {seconds} s)")
        self._now += seconds
        for deadline, waiter in list(self._sleepers):
            if deadline <= self._now and not waiter.done():
                waiter.set_result(None)
        await asyncio.sleep(0)  # the woken sleepers run to their next await
        for step in list(self._steps):
            await step()


async def sleep_until_or(clock: Clock, deadline: float, event: asyncio.Event) -> None:
    """Wait until ``deadline`` on ``clock`` or until ``event`` is set, whichever comes first."""
    if event.is_set():
        return
    waiters = [
        asyncio.create_task(event.wait(), name="sim-clock-event"),
        asyncio.create_task(clock.sleep_until(deadline), name="sim-clock-deadline"),
    ]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait(*waiters)
