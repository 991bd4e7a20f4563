"""A latest-wins slot between a producer (the event loop) and a consumer thread.

Video never queues: a frame the writer has not taken yet is replaced by a newer one and
counted as dropped.  ``put`` never blocks for long (a brief lock); ``wait_newer`` blocks the
consumer thread until a newer item or the timeout.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._seq = 0
        self._taken = 0
        self.dropped = 0

    def put(self, item: T) -> None:
        with self._cond:
            if self._seq != self._taken:
                self.dropped += 1
            self._item = item
            self._seq += 1
            self._cond.notify_all()

    def wait_newer(self, timeout: float) -> T | None:
        """The newest item not taken yet, waiting up to ``timeout`` seconds; else None."""
        with self._cond:
            if self._seq == self._taken and timeout > 0:
                self._cond.wait(timeout)
            if self._seq == self._taken:
                return None
            self._taken = self._seq
            return self._item

    def wake(self) -> None:
        """Wake a waiting consumer (e.g. to let it see a stop request)."""
        with self._cond:
            self._cond.notify_all()

    @property
    def count(self) -> int:
        return self._seq
