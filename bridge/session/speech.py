"""What the avatar is saying: the speech a renewal's switch waits for.

A speak call counts from the moment it is sent until the provider's reply; its task id then
counts until the avatar's ``speak_ended`` for it (which may overtake the reply: the ends seen
are remembered).  :attr:`SpeechInFlight.idle` is set while nothing counts.
"""

from __future__ import annotations

import asyncio
from collections import deque


class SpeechInFlight:
    def __init__(self) -> None:
        self.sending = 0  # speak() calls awaiting the provider's reply
        self._in_flight: set[str] = set()  # task ids sent and not yet ended
        self._ended_tasks: deque[str] = deque(maxlen=64)  # ends seen (they overtake replies)
        self.idle = asyncio.Event()
        self.idle.set()

    def send_started(self) -> None:
        self.sending += 1
        self._changed()

    def sent(self, task_id: str, *, current: bool) -> None:
        """The provider took an utterance; ``current``: still on the active session."""
        if current and task_id not in self._ended_tasks:
            self._in_flight.add(task_id)  # a renewal waits for its end

    def send_done(self) -> None:
        self.sending -= 1
        self._changed()

    def ended(self, task_id: str | None, *, current: bool) -> None:
        """The avatar said an utterance ended (``task_id`` None: it did not say which)."""
        if task_id is not None:
            self._ended_tasks.append(task_id)
            self._in_flight.discard(task_id)
        elif current:  # an end the provider did not name: the avatar is quiet
            self._in_flight.clear()
        self._changed()

    def forget(self) -> None:
        """The speech sent to a session that is no longer the active one holds nothing."""
        self._in_flight.clear()
        self._changed()

    def _changed(self) -> None:
        if self.sending or self._in_flight:
            self.idle.clear()
        else:
            self.idle.set()
