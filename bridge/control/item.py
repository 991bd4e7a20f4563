"""One item of the speech queue: at most the provider's per-request characters, and its life.

::

    queued ──► sending ──► speaking ──► done
     │  ▲         │            │
     │  └─────────┤ the avatar went away before it had the text: it waits again
     │            ├──► failed  (the provider refused it: its error)
     ▼            ▼            ▼
    dropped  (cleared, removed, expired, interrupted, the session ended, the daemon stopped)

A request whose text is longer than one item allows becomes several items sharing its
``request_id``, numbered ``part`` 1..``parts``; they stay together and in order.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard

from bridge.control.text import choice, normalise
from bridge.errors import BadInput
from bridge.eventbus import EventBus
from bridge.providers.base import SpeakMode

__all__ = ["FINAL", "ItemState", "Priority", "SpeechItem", "announce", "number_of"]

log = logging.getLogger(__name__)

Priority = Literal["normal", "now"]
ItemState = Literal["queued", "sending", "speaking", "done", "dropped", "failed"]
FINAL: frozenset[str] = frozenset({"done", "dropped", "failed"})
MODES: tuple[SpeakMode, ...] = ("repeat", "chat")
PRIORITIES: tuple[Priority, ...] = ("normal", "now")
# Restored items are checked as text again; this only stops absurd files.
RESTORE_MAX_TEXT = 100_000
_ITEM_ID = re.compile(r"s([1-9][0-9]{0,15})")
_REQUEST_ID = re.compile(r"r([1-9][0-9]{0,15})")


@dataclass(eq=False)  # an item is itself: compared and hashed by identity
class SpeechItem:
    id: str  # "s12"
    request_id: str  # "r7": shared by the items of one request
    part: int  # 1..parts
    parts: int
    text: str
    mode: SpeakMode
    priority: Priority
    source: str  # who asked: "http:127.0.0.1", "ws:3", "chat:alice", "preset:hello", "cli"
    state: ItemState = "queued"
    detail: str | None = None  # why it was dropped or failed; a note on a done one
    task_id: str | None = None  # the provider's id for it, once sent
    created: float = field(default_factory=time.time)  # accepted at (Unix time)
    # Set once it reaches a final state (done, dropped, failed).
    ended: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    sent_at: float | None = field(default=None, repr=False)  # time.monotonic() at sending

    @property
    def final(self) -> bool:
        return self.state in FINAL

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "request_id": self.request_id,
            "part": self.part,
            "parts": self.parts,
            "text": self.text,
            "mode": self.mode,
            "priority": self.priority,
            "source": self.source,
            "state": self.state,
            "detail": self.detail,
            "task_id": self.task_id,
            "created": round(self.created, 3),
        }

    @classmethod
    def restore(cls, row: object) -> SpeechItem:
        """A queued item from its :meth:`as_json` (a file written by an earlier run);
        ``ValueError`` when ``row`` is not one.  Its text is checked as new input is."""
        if not isinstance(row, dict):
            raise ValueError(f"an item must be an object, not {type(row).__name__}")
        ids = (_fullmatch(_ITEM_ID, row.get("id")), _fullmatch(_REQUEST_ID, row.get("request_id")))
        part, parts, created = row.get("part"), row.get("parts"), row.get("created")
        if not (_is_int(part) and _is_int(parts) and 1 <= part <= parts):
            raise ValueError(f"part {part!r} of {parts!r} is not a part")
        if not isinstance(created, int | float) or isinstance(created, bool):
            raise ValueError(f"created {created!r} is not a time")
        source = row.get("source")
        if not isinstance(source, str):
            raise ValueError(f"source {source!r} is not a string")
        try:
            text = normalise(row.get("text"), max_text=RESTORE_MAX_TEXT)
            mode = choice(row.get("mode"), "mode", MODES)
            priority = choice(row.get("priority"), "priority", PRIORITIES)
        except BadInput as exc:
            raise ValueError(str(exc)) from None
        return cls(
            id=ids[0],
            request_id=ids[1],
            part=part,
            parts=parts,
            text=text,
            mode=mode,
            priority=priority,
            source=source,
            created=float(created),
        )


def announce(bus: EventBus, item: SpeechItem) -> None:
    """``item``'s state, just changed (or just queued): one event on ``bus``, topic
    ``speech.<state>`` (``speech.speaking`` with ``latency_s``, accepted to speaking), and
    one line in the log, without the text (which need not be there)."""
    extra: dict[str, Any] = {}
    if item.state == "speaking":
        extra["latency_s"] = round(max(0.0, time.time() - item.created), 3)
    # One INFO line per item, its outcome; the steps before it at DEBUG (a line for each
    # step cost more than the rest of a speak request: bench/control.py).
    log.log(
        logging.INFO if item.state in ("done", "dropped", "failed") else logging.DEBUG,
        "speech %s (%s part %d/%d, from %s): %s%s",
        item.id,
        item.request_id,
        item.part,
        item.parts,
        item.source,
        item.state,
        f" ({item.detail})" if item.detail else "",
    )
    bus.emit(  # quiet: logged above
        f"speech.{item.state}",
        quiet=True,
        id=item.id,
        request_id=item.request_id,
        item=item.as_json(),
        **extra,
    )


def number_of(item_or_request_id: str) -> int:
    """12 for "s12" or "r12"."""
    return int(item_or_request_id[1:])


def _fullmatch(pattern: re.Pattern[str], value: object) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise ValueError(f"{value!r} is not an id like {pattern.pattern}")
    return value


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
