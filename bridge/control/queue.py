"""The speech queue: every accepted request is spoken, or reported dropped with its reason.

Requests are sent to the avatar one at a time, in order, each when the previous one has been
spoken (its ``speak_ended``), so the bridge — not the provider — decides what comes next.
States: queued → sending → speaking → done, or dropped (reason) / failed (error).
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

log = logging.getLogger(__name__)

MAX_TEXT = 1000  # characters per request: HeyGen speaks at most about 1000 per task
MAX_PENDING = 100
# How long a spoken request may take beyond its estimate before we stop waiting for its end.
END_GRACE_S = 15.0
WORDS_PER_SECOND = 2.5

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


def validate(text: object, mode: object) -> tuple[str, SpeakMode]:
    if not isinstance(text, str):
        raise BadInput("text", "must be a string")
    if not text.strip():
        raise BadInput("text", "is empty")
    if len(text) > MAX_TEXT:
        raise BadInput("text", f"is {len(text)} characters; at most {MAX_TEXT} per request")
    if mode not in ("repeat", "chat"):
        raise BadInput("mode", f"{mode!r} is not one of repeat, chat")
    return text.strip(), "repeat" if mode == "repeat" else "chat"


class SpeechQueue:
    def __init__(self, *, bus: EventBus, limit: int = MAX_PENDING) -> None:
        self._bus = bus
        self._limit = limit
        self._pending: deque[SpeechRequest] = deque()
        self._wakeup = asyncio.Event()
        self._by_task: dict[str, SpeechRequest] = {}
        self.current: SpeechRequest | None = None
        self.recent: deque[SpeechRequest] = deque(maxlen=20)
        self._ids = itertools.count(1)

    def submit(self, text: object, mode: object = "repeat") -> SpeechRequest:
        clean, speak_mode = validate(text, mode)
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
        request = self._by_task.get(event.task_id or "")
        if request is None:
            return
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
        try:
            request.task_id = await manager.speak(request.text, request.mode)
        except (RemoteError, NotLive) as exc:
            self._finish(request, "failed", str(exc))
            return
        self._by_task[request.task_id] = request
        self._bus.emit("speech.sent", id=request.id, task_id=request.task_id)
        words = len(request.text.split())
        try:
            async with asyncio.timeout(words / WORDS_PER_SECOND + END_GRACE_S):
                await request.ended.wait()
        except TimeoutError:
            self._finish(request, "done", "the avatar never confirmed the end of speech")

    def drop_unfinished(self, reason: str) -> None:
        """The session ended: what was being spoken is lost (queued requests wait for the next)."""
        if self.current is not None:
            self._finish(self.current, "dropped", reason)
