"""Answers in chat through Helix, within Twitch's rate: at most :data:`PER_WINDOW` in any
:data:`WINDOW_S` seconds (the limit for a bot that is not a moderator); a reply past it is
dropped and counted, not delayed (a late "queued #3" would be wrong by then)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from bridge.control.twitch.helix import Helix, TwitchError
from bridge.control.twitch.stats import TwitchStats

__all__ = ["Replier"]

log = logging.getLogger(__name__)

PER_WINDOW = 20
WINDOW_S = 30.0
MAX_WAITING = 20


@dataclass(frozen=True, slots=True)
class Reply:
    broadcaster_id: str
    text: str
    reply_to: str | None


class Replier:
    def __init__(
        self,
        helix: Helix,
        *,
        sender_id: str,
        stats: TwitchStats,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._helix = helix
        self._sender_id = sender_id
        self._stats = stats
        self._clock = clock
        self._sent_at: deque[float] = deque()
        self._waiting: asyncio.Queue[Reply] = asyncio.Queue(MAX_WAITING)

    def offer(self, broadcaster_id: str, text: str, reply_to: str | None) -> None:
        """Send ``text`` soon, if the rate allows it now (else it is dropped)."""
        now = self._clock()
        while self._sent_at and now - self._sent_at[0] >= WINDOW_S:
            self._sent_at.popleft()
        if len(self._sent_at) >= PER_WINDOW or self._waiting.full():
            self._stats.replies_dropped += 1
            return
        self._sent_at.append(now)
        self._waiting.put_nowait(Reply(broadcaster_id, text, reply_to))

    async def run(self) -> None:
        """Send the replies offered, one at a time; until cancelled."""
        while True:
            reply = await self._waiting.get()
            try:
                await self._helix.send_chat(
                    broadcaster_id=reply.broadcaster_id,
                    sender_id=self._sender_id,
                    text=reply.text,
                    reply_to=reply.reply_to,
                )
            except TwitchError as exc:
                self._stats.replies_dropped += 1
                log.warning("twitch: a reply was not sent: %s", exc)
            else:
                self._stats.replies_sent += 1
