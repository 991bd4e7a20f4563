"""Keep-alives, doubling as the check that the session is still there.

Keep-alives go out every ``keep_alive_every`` seconds of *silence*: a speak or an interrupt
sent is activity for the provider's idle timer (HeyGen's ``activity_idle_timeout``,
LiveAvatar's idle timeout), so a keep-alive is skipped while activity keeps the session alive.
When the avatar leaves the room one goes out at once: did it leave because the session ended?
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bridge.errors import RemoteError, SessionGone
from bridge.providers.base import AvatarSession
from bridge.session.retrying import Clock, Sleep, sleep_unless

log = logging.getLogger("bridge.session.manager")  # the manager's story, one logger


class Liveness:
    """The current session's keep-alive clock; ``end`` is told when a keep-alive finds the
    session gone."""

    def __init__(self, clock: Clock, sleep: Sleep, end: Callable[[str], None]) -> None:
        self._clock = clock
        self._sleep = sleep
        self._end = end
        self.last_activity = 0.0  # a command sent to the session (speak, interrupt)
        self.last_probe = 0.0  # a keep-alive sent
        self.probe_soon = asyncio.Event()

    def reset(self, now: float) -> None:
        """A new session: its silence starts now."""
        self.last_activity = self.last_probe = now
        self.probe_soon.clear()

    def active(self) -> None:
        """A command went to the session: the provider's idle timer starts again."""
        self.last_activity = self._clock()

    async def keep_alive(self, session: AvatarSession, every: float) -> None:
        """A keep-alive after ``every`` seconds without activity or keep-alive (a command sent
        resets the provider's idle timer, so none is needed then), and one at once when
        :attr:`probe_soon` is set."""
        while True:
            due = max(self.last_activity, self.last_probe) + every
            wait = due - self._clock()
            if wait > 0 and not await sleep_unless(self._sleep, wait, self.probe_soon):
                continue  # the interval passed: was there activity meanwhile?
            self.probe_soon.clear()
            await self._probe(session)

    async def _probe(self, session: AvatarSession) -> None:
        """Keep-alive doubling as a liveness check: a gone session ends the loop."""
        self.last_probe = self._clock()  # tried: a failed one is not retried in a loop
        try:
            await session.keep_alive()
        except SessionGone as exc:
            self._end(f"the provider closed the session ({exc.remote_message or exc})")
        except RemoteError as exc:
            log.warning("keep-alive failed: %s", exc)
