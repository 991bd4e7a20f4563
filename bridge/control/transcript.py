"""Transcript events: what the avatar heard and what it said, one event per utterance.

The providers' pieces arrive on the event bus as ``avatar.user_text`` (one utterance of the
user, whole: see the decoders) and ``avatar.speak_text`` (pieces of what the avatar says,
per task: HeyGen sends chunks, LiveAvatar the whole text or chunks), closed by
``avatar.speak_ended``.  :class:`Transcript` turns them into one ``transcript`` event each::

    {"topic": "transcript", "role": "user", "text": "What time is it?"}
    {"topic": "transcript", "role": "avatar", "text": "It is ...", "task_id": ...,
     "interrupted": false}

for the WebSocket, the panel and anyone subscribed to ``transcript``.  Answers to what the
avatar heard (no task of the speech queue) and typed items alike.  The event is emitted just
after the one that completed it (``call_soon``), so subscribers see ``avatar.speak_ended``
first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bridge.eventbus import Event, EventBus

MAX_TASKS = 64  # utterances whose pieces are kept until their end
MAX_TEXT = 10_000  # characters kept per utterance


def join_pieces(pieces: list[str]) -> str:
    """Pieces as the avatar said them: chunks that carry their own spaces are joined as they
    are, bare words with a space."""
    out = ""
    for piece in pieces:
        if out and not out[-1].isspace() and piece and not piece[0].isspace():
            out += "" if piece[0] in ".,;:!?’'\")" else " "
        out += piece
    return " ".join(out.split())


class Transcript:
    """Subscribes to the bus; emits ``transcript`` events (see the module doc)."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._pieces: dict[str | None, list[str]] = {}
        self.unsubscribe: Callable[[], None] = bus.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        data = event.data
        text = data.get("text")
        if event.topic == "avatar.user_text" and isinstance(text, str) and text.strip():
            self._later(role="user", text=" ".join(text.split())[:MAX_TEXT])
        elif event.topic == "avatar.speak_text" and isinstance(text, str):
            task = data.get("task_id")
            key = task if isinstance(task, str) else None
            pieces = self._pieces.setdefault(key, [])
            if sum(map(len, pieces)) < MAX_TEXT:
                pieces.append(text)
            while len(self._pieces) > MAX_TASKS:
                del self._pieces[next(iter(self._pieces))]
        elif event.topic == "avatar.speak_ended":
            task = data.get("task_id")
            key = task if isinstance(task, str) else None
            said = join_pieces(self._pieces.pop(key, []))[:MAX_TEXT]
            if said:
                interrupted = bool(data.get("interrupted", False))
                self._later(role="avatar", text=said, task_id=key, interrupted=interrupted)

    def _later(self, **data: object) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # emitted outside a loop (a test): at once
            self._bus.emit("transcript", quiet=True, **data)
            return
        loop.call_soon(lambda: self._bus.emit("transcript", quiet=True, **data))
