"""Where a chat message becomes speech (or a moderator's action): the rules, then the limits
on queued items, then the speech queue itself (its own limits and rate apply too)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from bridge.control.queue import SpeechQueue
from bridge.control.twitch.chat import ChatMessage
from bridge.control.twitch.rules import Moderate, Refuse, Rules, Speak
from bridge.control.twitch.stats import TwitchStats
from bridge.errors import BadInput, Busy, NotLive

__all__ = ["ChatGate", "Outcome"]

log = logging.getLogger(__name__)

SOURCE_PREFIX = "twitch:"
# Refusal reasons as counter keys: the numbers in them (seconds left) vary.
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a message: a reply for its author, or None (nothing to say back)."""

    reply: str | None


NOTHING = Outcome(None)


class ChatGate:
    def __init__(self, *, rules: Rules, queue: SpeechQueue, stats: TwitchStats) -> None:
        self.rules = rules
        self._queue = queue
        self._stats = stats

    async def handle(self, message: ChatMessage) -> Outcome:
        self._stats.received += 1
        decision = self.rules.decide(message)
        if decision is None:
            self._stats.ignored += 1
            return NOTHING
        if isinstance(decision, Moderate):
            return await self._moderate(decision, message)
        if isinstance(decision, Refuse):
            return self._refused(message, decision.reason)
        return self._speak(decision, message)

    def _speak(self, speak: Speak, message: ChatMessage) -> Outcome:
        cfg = self.rules.cfg
        source = message.source
        queued = [i for i in self._queue.items() if i.source.startswith(SOURCE_PREFIX)]
        if cfg.user_queued and sum(i.source == source for i in queued) >= cfg.user_queued:
            return self._refused(message, f"you have {cfg.user_queued} waiting")
        if cfg.max_queued and len(queued) >= cfg.max_queued:
            return self._refused(message, "chat's queue is full")
        try:
            items = self._queue.submit(speak.text, speak.mode, source=source)
        except Busy:
            return self._refused(message, "the avatar is busy, try later")
        except BadInput as exc:
            return self._refused(message, exc.detail)
        if not speak.reward:
            self.rules.accepted(message)
        self._stats.accepted += 1
        waiting = [item.id for item in self._queue.items() if item.state == "queued"]
        position = waiting.index(items[0].id) + 1 if items[0].id in waiting else 0
        return Outcome(f"@{message.name} queued #{position}" if position else None)

    async def _moderate(self, moderate: Moderate, message: ChatMessage) -> Outcome:
        action = moderate.action
        self._stats.moderation[action] += 1
        log.info("twitch: %s by %s in #%s", action, message.user, message.channel)
        if action == "skip":
            try:
                stopped = await self._queue.interrupt()
            except NotLive:
                stopped = None
            return Outcome("skipped" if stopped is not None else "nothing to skip")
        if action == "clear":
            chat_items = [
                i
                for i in self._queue.items()
                if i.state == "queued" and i.source.startswith(SOURCE_PREFIX)
            ]
            for item in chat_items:
                self._queue.remove(item.id)
            return Outcome(f"cleared {len(chat_items)}")
        self.rules.paused = self._stats.paused = action == "pause"
        return Outcome("paused" if action == "pause" else "resumed")

    def _refused(self, message: ChatMessage, reason: str) -> Outcome:
        self._stats.refused[_DIGITS.sub("N", reason)] += 1
        log.debug("twitch: refused %s in #%s: %s", message.user, message.channel, reason)
        return Outcome(f"@{message.name} {reason}")
