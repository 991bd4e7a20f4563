"""LiveAvatar's room events → the bridge's events, each with the speak command it belongs to.

Events arrive on the data topic ``agent-response`` (reference/liveavatar-api.md §3.2).
LiveAvatar answers a speak command with no id of its own, so a command's task id is its
``event_id``, and an event names its command by ``source_event_id`` when it carries one.
When it does not, :class:`SpeechEvents` falls back to order: speak commands start in the
order sent, an end belongs to the utterance that started last, and a transcript to the one
speaking (or next to speak).  LiveAvatar's events say nothing of interruption either: after
an interrupt, the ends still to come of what was speaking or queued are marked interrupted.
"""

from __future__ import annotations

import contextlib
import json
from collections import deque
from typing import Any, Literal

from bridge.providers.events import AvatarEvent

EVENT_TOPIC = "agent-response"  # events LiveAvatar publishes
MEMORY = 256  # speak commands (and transcript styles) remembered

TextStyle = Literal["chunks", "full"]


class SpeechEvents:
    """Decodes one session's ``agent-response`` packets, told of the commands it sends."""

    def __init__(self) -> None:
        # Task ids for events that carry no source_event_id: speak commands in the order sent.
        self._pending: deque[str] = deque(maxlen=MEMORY)
        self._current: str | None = None
        self._text_style: dict[str, TextStyle] = {}
        self._interrupted: set[str] = set()

    # --- what the session sends -----------------------------------------------------------

    def speaking(self, task_id: str) -> None:
        """A speak command with this ``event_id`` is about to be sent (its events may
        arrive before the send returns)."""
        self._pending.append(task_id)

    def not_sent(self, task_id: str) -> None:
        """The speak command could not be sent: no events will come for it."""
        with contextlib.suppress(ValueError):
            self._pending.remove(task_id)

    def interrupted(self) -> None:
        """An interrupt was sent: LiveAvatar stops speaking and drops every queued command."""
        self._interrupted = {t for t in (self._current, *self._pending) if t is not None}
        self._pending.clear()

    # --- what comes back ------------------------------------------------------------------

    def decode(self, payload: bytes, topic: str | None) -> list[AvatarEvent]:
        """``agent-response`` events → bridge events; anything else → nothing."""
        if topic != EVENT_TOPIC:
            return []
        try:
            message: Any = json.loads(payload)
        except ValueError:
            return []
        if not isinstance(message, dict):
            return []
        kind = message.get("event_type")
        source = _text(message, "source_event_id") or None
        text = _text(message, "text")
        if kind == "avatar.speak_started":
            return [AvatarEvent("speak_started", self._started(source))]
        if kind == "avatar.speak_ended":
            task = self._ended(source)
            interrupted = task in self._interrupted
            self._interrupted.discard(task or "")
            return [AvatarEvent("speak_ended", task, interrupted=interrupted)]
        if kind in ("avatar.transcription", "avatar.transcription_ended") and text:
            return self._avatar_text(source, text, "full")
        if kind == "avatar.transcription.chunk" and text:
            return self._avatar_text(source, text, "chunks")
        if kind in ("user.transcription", "user.transcription_ended") and text:
            return [AvatarEvent("user_text", text=text)]
        if kind == "session.stopped":
            # The docs say end_reason; a newer SDK build says stop_reason (reference §9).
            reason = _text(message, "end_reason") or _text(message, "stop_reason")
            return [AvatarEvent("session_stopped", text=reason)]
        return []

    def _started(self, source: str | None) -> str | None:
        if source is not None:
            with contextlib.suppress(ValueError):
                self._pending.remove(source)
            self._current = source
        else:
            self._current = self._pending.popleft() if self._pending else None
        return self._current

    def _ended(self, source: str | None) -> str | None:
        task: str | None
        if source is not None:
            with contextlib.suppress(ValueError):
                self._pending.remove(source)
            task = source
            if self._current == source:
                self._current = None
        else:  # the utterance that started last; an end never consumes a pending command
            task, self._current = self._current, None
        if task is not None:
            self._text_style.pop(task, None)
        return task

    def _avatar_text(self, source: str | None, text: str, style: TextStyle) -> list[AvatarEvent]:
        """A transcript piece; one style per task, since the full text repeats the chunks."""
        task = source or self._current or (self._pending[0] if self._pending else None)
        if task is not None:
            seen = self._text_style.setdefault(task, style)
            if seen != style:
                return []
            while len(self._text_style) > MEMORY:
                del self._text_style[next(iter(self._text_style))]
        return [AvatarEvent("speak_text", task, text=text)]


def _text(message: dict[str, Any], key: str) -> str:
    value = message.get(key)
    return value if isinstance(value, str) else ""
