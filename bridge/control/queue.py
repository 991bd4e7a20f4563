"""The speech queue: every accepted request is spoken, or reported dropped with its reason.

Requests are sent to the avatar one at a time, in order, each when the previous one has been
spoken (its ``speak_ended``), so the bridge — not the provider — decides what comes next.
States: queued → sending → speaking → done, or dropped (reason) / failed (error).

The request being sent is registered before the provider is called: events that overtake
the provider's answer (HeyGen's ``avatar_start_talking`` comes over the room while the REST
call that returns the task id is still on its way) are held for it, and count as soon as the
answer names their task.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from bridge.errors import BadInput, NotLive, RemoteError
from bridge.eventbus import EventBus
from bridge.providers.base import SpeakMode
from bridge.providers.events import AvatarEvent
from bridge.session.manager import SessionManager
from bridge.synthetic.voice import estimate_duration

log = logging.getLogger(__name__)

MAX_PENDING = 100
# How long a spoken request may take beyond its estimate before we stop waiting for its end.
END_GRACE_S = 15.0
# Events held for the request being sent, until the provider names its task.
MAX_EARLY_EVENTS = 64

State = Literal["queued", "sending", "speaking", "done", "dropped", "failed"]


@dataclass
class SpeechRequest:
    id: str
    text: str
    mode: SpeakMode
    state: State = "queued"
    task_id: str | None = None
    detail: str | None = None
    created: float = field(default_factory=time.time)
    ended: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "mode": self.mode,
            "state": self.state,
            "task_id": self.task_id,
            "detail": self.detail,
        }


def validate(text: object, mode: object, max_text: int) -> tuple[str, SpeakMode]:
    """The request's text and mode, or :class:`BadInput` naming what is wrong."""
    if not isinstance(text, str):
        raise BadInput("text", "must be a string")
    if not text.strip():
        raise BadInput("text", "is empty")
    if len(text) > max_text:
        raise BadInput("text", f"is {len(text)} characters; at most {max_text} per request")
    if mode not in ("repeat", "chat"):
        raise BadInput("mode", f"{mode!r} is not one of repeat, chat")
    return text.strip(), "repeat" if mode == "repeat" else "chat"


class SpeechQueue:
    def __init__(self, *, bus: EventBus, max_text: int, limit: int = MAX_PENDING) -> None:
        """``max_text``: the most characters per request (the provider's ``max_text``);
        ``limit``: the most requests waiting."""
        self._bus = bus
        self._max_text = max_text
        self._limit = limit
        self._pending: deque[SpeechRequest] = deque()
        self._wakeup = asyncio.Event()
        self._by_task: dict[str, SpeechRequest] = {}
        self._sending: SpeechRequest | None = None  # sent, its task id not known yet
        self._early: deque[AvatarEvent] = deque(maxlen=MAX_EARLY_EVENTS)
        self.current: SpeechRequest | None = None
        self.recent: deque[SpeechRequest] = deque(maxlen=20)
        self._ids = itertools.count(1)

    def submit(self, text: object, mode: object = "repeat") -> SpeechRequest:
        clean, speak_mode = validate(text, mode, self._max_text)
        if len(self._pending) >= self._limit:
            raise BadInput("queue", f"is full ({self._limit} requests waiting); try again later")
        request = SpeechRequest(id=f"s{next(self._ids)}", text=clean, mode=speak_mode)
        self._pending.append(request)
        self.recent.append(request)
        self._wakeup.set()
        self._bus.emit("speech.queued", id=request.id, position=len(self._pending))
        return request

    def snapshot(self) -> dict[str, Any]:
        return {
            "pending": len(self._pending),
            "current": self.current.as_json() if self.current else None,
            "recent": [r.as_json() for r in self.recent],
        }

    def on_event(self, event: AvatarEvent) -> None:
        """An avatar event: the start or end of the request it names."""
        if event.task_id is None:
            return
        request = self._by_task.get(event.task_id)
        if request is not None:
            self._apply(event, request)
        elif self._sending is not None:  # perhaps its task, before the provider said so
            self._early.append(event)

    def _apply(self, event: AvatarEvent, request: SpeechRequest) -> None:
        if event.kind == "speak_started" and request.state == "sending":
            request.state = "speaking"
        elif event.kind == "speak_ended":
            self._finish(
                request,
                "dropped" if event.interrupted else "done",
                "interrupted" if event.interrupted else None,
            )

    def _finish(self, request: SpeechRequest, state: State, detail: str | None = None) -> None:
        if request.state in ("done", "dropped", "failed"):
            return
        request.state, request.detail = state, detail
        if request.task_id is not None:
            self._by_task.pop(request.task_id, None)
        request.ended.set()
        self._bus.emit(f"speech.{state}", id=request.id, task_id=request.task_id, detail=detail)

    async def run(self, manager: SessionManager) -> None:
        """Send requests one by one while the avatar is live.  Runs until cancelled."""
        while True:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await manager.live.wait()
            request = self._pending.popleft()
            self.current = request
            try:
                await self._speak(manager, request)
            finally:
                self.current = None

    async def _speak(self, manager: SessionManager, request: SpeechRequest) -> None:
        request.state = "sending"
        self._sending = request
        self._early.clear()
        try:
            task_id = await manager.speak(request.text, request.mode)
        except (RemoteError, NotLive) as exc:
            self._finish(request, "failed", str(exc))
            return
        finally:
            self._sending = None
        request.task_id = task_id
        if request.state != "sending":  # dropped meanwhile (the session ended)
            return
        self._by_task[task_id] = request
        self._bus.emit("speech.sent", id=request.id, task_id=task_id)
        for event in [e for e in self._early if e.task_id == task_id]:
            self._apply(event, request)
        self._early.clear()
        try:
            async with asyncio.timeout(estimate_duration(request.text) + END_GRACE_S):
                await request.ended.wait()
        except TimeoutError:
            self._finish(request, "done", "the avatar never confirmed the end of speech")

    def drop_unfinished(self, reason: str) -> None:
        """The session ended: what was being spoken is lost (queued requests wait for the next)."""
        if self.current is not None:
            self._finish(self.current, "dropped", reason)
