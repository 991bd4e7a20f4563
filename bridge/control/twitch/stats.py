"""The Twitch connector's counters and state, for status (``twitch`` in ``GET /v1/status``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["State", "TwitchStats"]

State = Literal["connecting", "connected", "reconnecting", "failed", "stopped"]


@dataclass
class TwitchStats:
    transport: Literal["eventsub", "irc"]
    channels: list[str]
    state: State = "connecting"
    error: str | None = None  # what is wrong now: why it failed or is reconnecting
    last_drop: str | None = None  # why the connection last dropped (kept once connected again)
    received: int = 0  # chat messages and redemptions read
    accepted: int = 0  # requests queued
    ignored: int = 0  # not a command, or not for this bridge
    refused: Counter[str] = field(default_factory=Counter)  # by reason
    moderation: Counter[str] = field(default_factory=Counter)  # by action
    malformed: int = 0  # lines or frames that could not be read
    unknown: int = 0  # well-formed, but of a type this code does not handle
    duplicates: int = 0  # EventSub messages delivered twice
    connections: int = 0  # connections opened (the first and every reconnection)
    reconnects: int = 0  # asked to move (RECONNECT, session_reconnect)
    drops: int = 0  # connections lost or timed out
    revocations: Counter[str] = field(default_factory=Counter)  # by subscription type
    replies_sent: int = 0
    replies_dropped: int = 0  # over Twitch's rate, or refused by it
    paused: bool = False

    def dropped(self, why: str) -> None:
        """The connection was lost (``why``): reconnecting."""
        self.drops += 1
        self.state = "reconnecting"
        self.error = self.last_drop = why

    def snapshot(self) -> dict[str, Any]:
        return {
            "transport": self.transport,
            "channels": list(self.channels),
            "state": self.state,
            "error": self.error,
            "last_drop": self.last_drop,
            "paused": self.paused,
            "received": self.received,
            "accepted": self.accepted,
            "ignored": self.ignored,
            "refused": dict(self.refused),
            "moderation": dict(self.moderation),
            "malformed": self.malformed,
            "unknown": self.unknown,
            "duplicates": self.duplicates,
            "connections": self.connections,
            "reconnects": self.reconnects,
            "drops": self.drops,
            "revocations": dict(self.revocations),
            "replies": {"sent": self.replies_sent, "dropped": self.replies_dropped},
        }
