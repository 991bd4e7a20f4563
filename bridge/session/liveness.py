"""Keep-alives, doubling as the check that the session is still there.

Keep-alives go out every ``keep_alive_every`` seconds of *silence*: a speak or an interrupt
sent is activity for the provider's idle timer (HeyGen's ``activity_idle_timeout``,
LiveAvatar's idle timeout), so a keep-alive is skipped while activity keeps the session alive.
When the avatar leaves the room one goes out at once: did it leave because the session ended?
While the avatar is not in the room (it has not come yet, ``connecting``, or it left,
``reconnecting``), one goes out every :data:`CONNECTING_PROBE_S`: a session that ended before
its room was joined leaves no word in the room (the LiveKit SDK's retry of a torn join joins a
new, empty room of the same name), and only the provider can say it is gone.  And a session
whose avatar stays away :data:`AVATAR_AWAY_LIMIT_S` although the provider still calls it
alive is ended: the next one brings an avatar, this one is not worth its credits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bridge.errors import RemoteError, SessionGone
from bridge.providers.base import AvatarSession
from bridge.session.retrying import Clock, Sleep, sleep_unless

log = logging.getLogger("bridge.session.manager")  # the manager's story, one logger

# While the avatar is not in the room: a keep-alive at least this often.
CONNECTING_PROBE_S = 5.0
# A session whose avatar has been out of the room this long is ended (a join, the LiveKit
# SDK's retries included, takes at most about 15 s; an avatar's brief absence a few).
AVATAR_AWAY_LIMIT_S = 45.0


class Liveness:
    """The current session's keep-alive clock; ``end`` is told when a keep-alive finds the
    session gone."""

    def __init__(
        self,
        clock: Clock,
        sleep: Sleep,
        end: Callable[[str], None],
        missing_since: Callable[[], float | None] = lambda: None,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._end = end
        # Since when the avatar has not been in the room (None: it is there).
        self._missing_since = missing_since
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
            missing = self._missing_since()
            if missing is not None:
                if self._clock() - missing >= AVATAR_AWAY_LIMIT_S:
                    self._end(f"the avatar stayed out of the room for {AVATAR_AWAY_LIMIT_S:.0f} s")
                    return
                due = min(due, self.last_probe + CONNECTING_PROBE_S, missing + AVATAR_AWAY_LIMIT_S)
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
