"""A latest-wins slot between a producer (the event loop) and a consumer thread, with an
optional delay line.

Video never queues for its own sake: when the consumer takes an item it gets the newest one
that is due, and older ones are dropped (counted).  ``delay`` holds every item back that long
after it arrived: that is how the camera waits for the slower audio path so lips and voice
meet.  ``put`` never blocks for long (a brief lock); ``wait_newer`` blocks the consumer thread
until an item is due or the timeout.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")

CAPACITY = 64  # items held for a delay; 2 s of 30 fps video


class LatestSlot(Generic[T]):
    def __init__(self, capacity: int = CAPACITY) -> None:
        self._cond = threading.Condition()
        self._items: deque[tuple[float, T]] = deque()
        self._capacity = capacity
        self._delay = 0.0
        self._count = 0
        self.dropped = 0

    @property
    def delay(self) -> float:
        return self._delay

    def set_delay(self, seconds: float) -> None:
        with self._cond:
            self._delay = max(0.0, seconds)
            self._cond.notify_all()

    def put(self, item: T, at: float) -> None:
        """Offer ``item``, which arrived at ``at`` (``time.perf_counter()`` seconds)."""
        with self._cond:
            if len(self._items) >= self._capacity:
                self._items.popleft()
                self.dropped += 1
            self._items.append((at, item))
            self._count += 1
            self._cond.notify_all()

    def wait_newer(self, timeout: float) -> T | None:
        """The newest due item not taken yet, waiting up to ``timeout`` seconds; else None."""
        deadline = time.perf_counter() + timeout
        with self._cond:
            while True:
                now = time.perf_counter()
                due = sum(1 for at, _ in self._items if at + self._delay <= now)
                if due:
                    for _ in range(due - 1):
                        self._items.popleft()
                    self.dropped += due - 1
                    return self._items.popleft()[1]
                if now >= deadline:
                    return None
                first_due = self._items[0][0] + self._delay if self._items else deadline
                self._cond.wait(max(0.0, min(deadline, first_due) - now))

    def wake(self) -> None:
        """Wake a waiting consumer (e.g. to let it see a stop request)."""
        with self._cond:
            self._cond.notify_all()

    @property
    def count(self) -> int:
        return self._count
