"""Fan-out of the bridge's events (avatar speech, session state, speech queue) to listeners.

Listeners get bounded queues: a slow listener loses its oldest events (counted), never
slows the bridge.  The last events are kept for status.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    """``topic`` names the kind ("avatar.speak_started", "session.state", "speech.done", ...)."""

    topic: str
    data: dict[str, Any]
    at: float = field(default_factory=time.time)

    def as_json(self) -> dict[str, Any]:
        return {"topic": self.topic, "at": round(self.at, 3), **self.data}


class EventBus:
    def __init__(self, *, keep: int = 50, listener_capacity: int = 256) -> None:
        self.recent: deque[Event] = deque(maxlen=keep)
        self._listeners: set[asyncio.Queue[Event]] = set()
        self._subscribers: list[Callable[[Event], None]] = []
        self._capacity = listener_capacity
        self.dropped = 0

    def emit(self, topic: str, *, quiet: bool = False, **data: Any) -> None:
        """Publish an event; ``quiet`` ones (transcript chunks) are logged at DEBUG only."""
        event = Event(topic, data)
        self.recent.append(event)
        level = logging.DEBUG if quiet else logging.INFO
        if log.isEnabledFor(level):  # the line costs more than the rest of emit: only if shown
            log.log(level, "%s %s", topic, " ".join(f"{k}={v}" for k, v in data.items()))
        for subscriber in self._subscribers:
            subscriber(event)
        for queue in self._listeners:
            if queue.full():
                queue.get_nowait()
                self.dropped += 1
            queue.put_nowait(event)

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event, synchronously inside :meth:`emit` (it must
        return at once: count, fan out, never block); returns the way to unsubscribe."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    @asynccontextmanager
    async def listen(self) -> AsyncIterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(self._capacity)
        self._listeners.add(queue)
        try:
            yield queue
        finally:
            self._listeners.discard(queue)
