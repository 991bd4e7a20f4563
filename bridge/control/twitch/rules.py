"""What chat may make the avatar say: the rules of ``twitch:`` in the config, without I/O.

A message is read in this order (the first rule that refuses wins):

1. a reward redemption (``rewards``/``chat_rewards``) is a request as it is; otherwise the
   message must start with the prefix and a command word (anything else is not for us);
2. a moderator command word, from a moderator or the broadcaster, is a :class:`Moderate`;
3. while paused, requests are refused;
4. permission (commands only: a redemption was paid for): one of the ``allow`` roles, and a
   cheer of ``min_bits`` (moderators and the broadcaster excepted);
5. a first-time chatter's message, with ``first_time: hold``;
6. the text: emotes only or nothing left, links (strip or reject), banned words and
   patterns, longer than ``max_length``;
7. cooldowns (commands only), per user and for everybody, since the last accepted request.

Limits on queued items need the queue: :mod:`bridge.control.twitch.gate` checks them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bridge.config import TwitchConfig
from bridge.control.twitch.chat import ChatMessage
from bridge.providers.base import SpeakMode

__all__ = ["Moderate", "Refuse", "Rules", "Speak"]

Action = Literal["skip", "clear", "pause", "resume"]
STAFF = frozenset({"moderator", "broadcaster"})
# A link: a scheme, "www.", or a dotted name with a common top-level domain.
_LINK = re.compile(
    r"(?i)\b(?:[a-z][a-z0-9+.-]*://\S+|www\.\S+|"
    r"(?:[a-z0-9-]+\.)+(?:com|net|org|tv|gg|io|co|me|ly|be|info|xyz|ru|de|uk|app|dev)\b\S*)"
)
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Speak:
    text: str
    mode: SpeakMode
    reward: bool


@dataclass(frozen=True, slots=True)
class Moderate:
    action: Action


@dataclass(frozen=True, slots=True)
class Refuse:
    reason: str  # short, said back in chat when replies are on; a counter's key


Decision = Speak | Moderate | Refuse | None


class Rules:
    def __init__(self, cfg: TwitchConfig, *, clock: Callable[[], float]) -> None:
        self.cfg = cfg
        self._clock = clock
        self._prefix = cfg.prefix
        self._modes: dict[str, SpeakMode] = {
            **{w.lower(): "repeat" for w in cfg.commands},
            **{w.lower(): "chat" for w in cfg.chat_commands},
        }
        self._reward_modes: dict[str, SpeakMode] = {
            **dict.fromkeys(cfg.rewards, "repeat"),
            **dict.fromkeys(cfg.chat_rewards, "chat"),
        }
        mods = cfg.moderator_commands
        self._moderation: dict[str, Action] = {
            mods.skip.lower(): "skip",
            mods.clear.lower(): "clear",
            mods.pause.lower(): "pause",
            mods.resume.lower(): "resume",
        }
        words = [re.escape(w) for w in cfg.banned_words]
        self._banned = re.compile(rf"(?i)(?<!\w)(?:{'|'.join(words)})(?!\w)") if words else None
        self._patterns = [re.compile(p) for p in cfg.banned_patterns]
        self.paused = False
        self._last_by_user: dict[str, float] = {}
        self._last: float | None = None

    def decide(self, message: ChatMessage) -> Decision:
        """What ``message`` asks for, or why it is refused; None when it is not for us."""
        reward_mode = self._reward_modes.get(message.reward_id or "")
        if reward_mode is not None:
            return self._request(message, message.text, reward_mode, reward=True)
        if message.redemption:  # a reward this config does not speak
            return None
        word, _, rest = message.text.partition(" ")
        if not word.startswith(self._prefix):
            return None
        word = word[len(self._prefix) :].lower()
        action = self._moderation.get(word)
        if action is not None:
            return Moderate(action) if message.roles & STAFF else Refuse("moderators only")
        mode = self._modes.get(word)
        if mode is None:
            return None
        return self._request(message, rest, mode, reward=False)

    def _request(
        self, message: ChatMessage, text: str, mode: SpeakMode, *, reward: bool
    ) -> Speak | Refuse:
        if self.paused:
            return Refuse("paused")
        if not reward:
            refused = self._permission(message)
            if refused is not None:
                return refused
        if message.first and self.cfg.first_time == "hold":
            return Refuse("first messages are held")
        checked = self._text(text, message)
        if isinstance(checked, Refuse):
            return checked
        if not reward:
            refused = self._cooldown(message.user)
            if refused is not None:
                return refused
        return Speak(checked, mode, reward)

    def _permission(self, message: ChatMessage) -> Refuse | None:
        roles = message.roles
        if not roles & set(self.cfg.allow):
            return Refuse(f"only for {', '.join(self.cfg.allow)}")
        if self.cfg.min_bits and not roles & STAFF and message.bits < self.cfg.min_bits:
            return Refuse(f"needs a cheer of {self.cfg.min_bits} bits")
        return None

    def _text(self, text: str, message: ChatMessage) -> str | Refuse:
        if message.emote_only and not text.strip():
            return Refuse("emotes only")
        if self.cfg.links != "allow" and _LINK.search(text):
            if self.cfg.links == "reject":
                return Refuse("no links")
            text = _LINK.sub(" ", text)
        text = _SPACES.sub(" ", text).strip()
        if not text:
            return Refuse("nothing to say")
        if (self._banned is not None and self._banned.search(text)) or any(
            p.search(text) for p in self._patterns
        ):
            return Refuse("not allowed")
        if len(text) > self.cfg.max_length:
            return Refuse(f"too long (at most {self.cfg.max_length} characters)")
        return text

    def _cooldown(self, user: str) -> Refuse | None:
        now = self._clock()
        waits = []
        if self._last is not None:
            waits.append(self._last + self.cfg.global_cooldown_s - now)
        last_own = self._last_by_user.get(user)
        if last_own is not None:
            waits.append(last_own + self.cfg.user_cooldown_s - now)
        wait = max(waits, default=0.0)
        if wait > 0:
            return Refuse(f"cooldown, {int(wait) + 1} s left")
        return None

    def accepted(self, message: ChatMessage) -> None:
        """``message``'s request was queued: its cooldowns start now."""
        now = self._clock()
        self._last = now
        self._last_by_user[message.user] = now
        if len(self._last_by_user) > 10_000:  # forget the oldest: their cooldowns are over
            oldest = min(self._last_by_user, key=self._last_by_user.__getitem__)
            del self._last_by_user[oldest]
