"""Waiting on the session manager's clock, and the wait before a session is tried again.

Every wait of the manager goes by its ``sleep`` (tests move the clock), so a wait that an
event may cut short is two tasks, the sleep and the event, whichever comes first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from bridge.eventbus import EventBus
from bridge.session.policy import Decision, Kind

log = logging.getLogger("bridge.session.manager")  # the manager's story, one logger

Clock = Callable[[], float]
Sleep = Callable[[float], Coroutine[Any, Any, None]]


async def sleep_unless(sleep: Sleep, seconds: float, wake: asyncio.Event) -> bool:
    """Sleep ``seconds`` by ``sleep`` unless ``wake`` is set first (True then)."""
    if wake.is_set():
        return True
    if seconds <= 0:
        return False
    waiters = [
        asyncio.create_task(sleep(seconds), name="session-wait"),
        asyncio.create_task(wake.wait(), name="session-wake"),
    ]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    return wake.is_set()


class Retrying:
    """The wait between a failure and the next try: a delay, or until :meth:`try_again`."""

    def __init__(self, bus: EventBus, clock: Clock, sleep: Sleep) -> None:
        self._bus = bus
        self._clock = clock
        self._sleep = sleep
        self.next_try_at: float | None = None  # on the clock, while waiting to try again
        self._try_now = asyncio.Event()

    def starting(self) -> None:
        """A try begins: a :meth:`try_again` from before it is spent."""
        self._try_now.clear()

    async def wait(self, decision: Decision, failures: int) -> None:
        """Wait ``decision.delay`` (or until :meth:`try_again`), saying so in status and on
        the bus."""
        delay = decision.delay or 0.0
        self._bus.emit(
            "session.retry",
            reason=decision.reason,
            kind=str(decision.kind),
            delay_s=round(delay, 1),
            attempt=failures,
            fix=decision.fix,
        )
        if decision.kind is Kind.LIMIT:
            log.warning("%s; trying again in %.0f s. %s", decision.reason, delay, decision.fix)
        self.next_try_at = self._clock() + delay
        try:
            await sleep_unless(self._sleep, delay, self._try_now)
        finally:
            self.next_try_at = None

    async def give_up(self, decision: Decision) -> None:
        """A failure trying again will not mend: say why and what to do, then wait for
        :meth:`try_again` (a config reload) or the shutdown."""
        self._bus.emit("session.failed", reason=decision.reason, fix=decision.fix)
        log.error("%s; not trying again. Fix: %s", decision.reason, decision.fix)
        await self._try_now.wait()

    def try_again(self) -> None:
        """Try now: after a fatal failure or instead of waiting out a retry's delay."""
        self._try_now.set()
