"""The systemd watchdog ping (``WATCHDOG=1``), sent only while the daemon is healthy.

systemd restarts a service whose pings stop for ``WatchdogSec``.  A ping that a bare timer
sends proves only that the timer runs, so :class:`Watchdog` sends one per ``interval`` only
when

* the event loop answers: the ping is sent from a task on the loop, so a blocked loop sends
  none; and
* every health check passes: each is a callable that returns None when all is well, else a
  one-line reason.  :class:`Progress` is the usual one: a counter that must keep moving (the
  camera writer's frames written: a hung writer thread stops it, the pings stop, systemd
  restarts the daemon).

A change between healthy and not is logged once (ERROR, then INFO) and told to systemd as
``STATUS=``; no line per ping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from bridge import sdnotify

__all__ = ["HealthCheck", "Progress", "Watchdog"]

log = logging.getLogger(__name__)

HealthCheck = Callable[[], str | None]


class Progress:
    """A health check on a counter: stale (a reason) once it has not changed for more than
    ``stale_after`` seconds of ``clock``.  The wait starts at construction, so a part that is
    still starting has ``stale_after`` to write its first."""

    def __init__(
        self,
        what: str,
        read: Callable[[], int],
        *,
        stale_after: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self._read = read
        self._stale_after = stale_after
        self._clock = clock
        self._value = read()
        self._changed_at = clock()

    def __call__(self) -> str | None:
        now, value = self._clock(), self._read()
        if value != self._value:
            self._value, self._changed_at = value, now
            return None
        idle = now - self._changed_at
        if idle <= self._stale_after:
            return None
        return f"{self.what} has not written for {idle:.1f} s"


class Watchdog:
    """:meth:`run` pings every ``interval`` seconds while every check in ``checks`` passes."""

    def __init__(
        self,
        *,
        interval: float,
        checks: Sequence[HealthCheck] = (),
        send: Callable[[str], bool] = sdnotify.notify,
    ) -> None:
        self.interval = interval
        self._checks = list(checks)
        self._send = send
        self.pings = 0
        self.problem: str | None = None  # why the pings stopped, None while healthy

    def beat(self) -> bool:
        """Check health once; ping if healthy.  True when a ping was sent."""
        problems = [reason for check in self._checks if (reason := check()) is not None]
        if problems:
            reason = "; ".join(problems)
            if self.problem is None:
                log.error("unhealthy, not pinging the systemd watchdog: %s", reason)
                self._send(f"STATUS=unhealthy: {reason}")
            self.problem = reason
            return False
        if self.problem is not None:
            log.info("healthy again, pinging the systemd watchdog")
            self._send("STATUS=healthy")
            self.problem = None
        self._send("WATCHDOG=1")
        self.pings += 1
        return True

    async def run(self) -> None:
        """Until cancelled."""
        while True:
            self.beat()
            await asyncio.sleep(self.interval)
