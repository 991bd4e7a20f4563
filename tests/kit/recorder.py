"""A session recorder (bridge.providers.base.SessionRecorder) that remembers what it was told."""

from __future__ import annotations


class Noted:
    """Lines like ``created <id>`` and ``stopped <id>``, in the order the provider told them."""

    def __init__(self) -> None:
        self.events: list[str] = []

    async def created(self, session_id: str) -> None:
        self.events.append(f"created {session_id}")

    async def stopped(self, session_id: str) -> None:
        self.events.append(f"stopped {session_id}")
