"""Camera and microphone state as events: ``camera.state`` and ``microphone.state``.

The sinks keep their state in their stats (written by their own threads) and say nothing
when it changes; :class:`StatusWatch` reads ``status()`` every :data:`EVERY_S` and emits an
event when a part's state, or the detail that explains it, differs from the last reading —
so the WebSocket and the panel's event log show the camera going ``writing`` →
``unavailable`` (with its ``last_error`` and ``fix``) without polling.  The first reading is
emitted too (``previous`` None): it is the state the bridge starts in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bridge.eventbus import EventBus

EVERY_S = 1.0
PARTS = ("camera", "microphone")
# The fields of a part's status that explain its state; sent with the event when present.
DETAIL = ("device", "source", "last_error", "fix")


class StatusWatch:
    """``run()`` polls ``status()`` (the dict of ``Bridge.status``) until cancelled."""

    def __init__(
        self, bus: EventBus, status: Callable[[], dict[str, Any]], *, every: float = EVERY_S
    ) -> None:
        self._bus = bus
        self._status = status
        self._every = every
        self._last: dict[str, dict[str, Any]] = {}

    async def run(self) -> None:
        while True:
            self.check()
            await asyncio.sleep(self._every)

    def check(self) -> None:
        """One reading: an event for each part whose state or detail changed."""
        status = self._status()
        for part in PARTS:
            section = status.get(part)
            if not isinstance(section, dict) or "state" not in section:
                continue
            now = {"state": section["state"]} | {k: section[k] for k in DETAIL if k in section}
            before = self._last.get(part)
            if now == before:
                continue
            self._last[part] = now
            previous = before["state"] if before is not None else None
            self._bus.emit(f"{part}.state", **now, previous=previous)
