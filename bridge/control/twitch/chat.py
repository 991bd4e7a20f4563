"""One chat message (or channel-point redemption) as the rules see it, whatever the transport."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["LOGIN", "ROLES", "ChatMessage"]

# A Twitch login: what channels and users are named by.
LOGIN = re.compile(r"[a-z0-9_]{1,25}")
# Badge set ids that make a role (founders are subscribers too).
ROLES: dict[str, str] = {
    "broadcaster": "broadcaster",
    "moderator": "moderator",
    "vip": "vip",
    "subscriber": "subscriber",
    "founder": "subscriber",
}


@dataclass(frozen=True, slots=True)
class ChatMessage:
    channel: str  # the channel's login, without "#"
    user: str  # the author's login
    text: str  # what may be said: emotes and cheermotes already removed
    display_name: str = ""
    badges: frozenset[str] = field(default_factory=frozenset)  # badge set ids
    bits: int = 0  # a cheer's bits
    first: bool = False  # the author's first message in the channel
    reward_id: str | None = None  # the channel-point reward redeemed with this text
    message_id: str | None = None  # Twitch's id, to reply to
    emote_only: bool = False  # there was text, but only emotes
    redemption: bool = False  # a reward redemption event, not a chat line

    @property
    def roles(self) -> frozenset[str]:
        """``everyone`` plus the roles the badges give."""
        return frozenset({"everyone", *(ROLES[b] for b in self.badges if b in ROLES)})

    @property
    def source(self) -> str:
        """The speech queue's name for the author (its limits are per source)."""
        return f"twitch:#{self.channel}:{self.user}"

    @property
    def name(self) -> str:
        return self.display_name or self.user
