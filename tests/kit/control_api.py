"""The control API in-process over real HTTP on loopback, in front of a real speech queue.

:class:`Api` is what the control API tests share: ``await Api.serve(...)`` builds a
:class:`ControlServer` (its status a small dict the test may change, its snapshot a fixed
JPEG), serves its app on 127.0.0.1 (aiohttp's test server: a real socket), and gives
``api.http`` (a test client) plus :meth:`Api.state`, everything a request could change —
the queue's snapshot, its finished counts and the number of bus events — so a test can say
"this refusal changed nothing".
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.config import ControlConfig, PresetConfig, RateLimitConfig, Secret
from bridge.control.http import HANDLER_ARGS, ControlServer
from bridge.control.queue import SpeechQueue
from bridge.eventbus import Event, EventBus

TOKEN = "s3cret-control-token"
MAX_ITEM = 100  # the provider's limit per item
MAX_TEXT = 1000  # control.max_text: per request
JPEG = b"\xff\xd8\xff\xe0 a camera frame \xff\xd9"
PRESETS = {
    "hello": PresetConfig(text="Hello, and welcome."),
    "break": PresetConfig(text="Back in five minutes.", mode="chat", priority="now"),
}

Client = TestClient[web.Request, web.Application]


def live_status() -> dict[str, Any]:
    """A bridge whose session is live and whose camera writes."""
    return {
        "version": "0.1.0",
        "provider": "demo",
        "session": {"state": "live", "seconds_left": 540, "sessions_opened": 1},
        "source": {"state": "joined", "rejoins": 0},
        "camera": {"state": "writing", "frames_in": 30, "frames_out": 31, "dropped": 2},
        "microphone": {"state": "speaking", "underruns": 3, "latency_ms": 80.0},
    }


class Avatar:
    """The session manager as the queue sees it: live, takes each text as task-1, task-2...,
    counts the interrupts."""

    def __init__(self) -> None:
        self.live = asyncio.Event()
        self.live.set()
        self.tasks = 0
        self.interrupts = 0

    async def speak(self, text: str, mode: str) -> str:
        self.tasks += 1
        return f"task-{self.tasks}"

    async def interrupt(self) -> None:
        self.interrupts += 1


@dataclass
class Api:
    server: ControlServer
    queue: SpeechQueue
    bus: EventBus
    http: Client
    token: str | None = None  # what a client must send (None: nothing)
    status: dict[str, Any] = field(default_factory=live_status)
    events: list[Event] = field(default_factory=list)

    @classmethod
    async def serve(
        cls,
        *,
        host: str = "127.0.0.1",
        token: str | None = None,
        allowed_origins: Sequence[str] = (),
        limit: int = 100,
        rate: RateLimitConfig | None = None,
        routes: Sequence[web.RouteDef] = (),
        status: dict[str, Any] | None = None,
        bus: EventBus | None = None,
        queue: SpeechQueue | None = None,
    ) -> Api:
        """``bus`` and ``queue``: those the added ``routes`` use (default: new ones)."""
        bus = bus or EventBus()
        if queue is None:
            queue = SpeechQueue(
                bus=bus, max_item=MAX_ITEM, max_text=MAX_TEXT, limit=limit, rate=rate
            )
        holder: dict[str, Any] = {}

        async def snapshot_jpeg() -> bytes:
            return JPEG

        def current_status() -> dict[str, Any]:
            return {**holder["api"].status, "speech": queue.snapshot()}

        server = ControlServer(
            ControlConfig(host=host, port=0, allowed_origins=list(allowed_origins)),
            queue=queue,
            status=current_status,
            snapshot_jpeg=snapshot_jpeg,
            token=Secret(token) if token is not None else None,
            presets=PRESETS,
            bus=bus,
            routes=routes,
        )
        test_server = TestServer(server.app(), host="127.0.0.1")
        await test_server.start_server(**HANDLER_ARGS)  # as ControlServer.start() does
        http: Client = TestClient(test_server)
        await http.start_server()
        api = cls(server=server, queue=queue, bus=bus, http=http, token=token)
        if status is not None:
            api.status = status
        holder["api"] = api
        bus.subscribe(api.events.append)
        return api

    async def close(self) -> None:
        await self.http.close()

    def state(self) -> tuple[Any, ...]:
        """Everything a request could change: compare before and after a refusal."""
        return (
            copy.deepcopy(self.queue.snapshot()),
            dict(self.queue.finished),
            len(self.events),
        )

    def texts(self) -> list[str]:
        """The queued items' texts, in speaking order."""
        return [item.text for item in self.queue.items()]


async def refusal(response: Any) -> tuple[int, str, str]:
    """(status, error, detail) of a JSON refusal; fails if the body is anything else."""
    assert response.content_type == "application/json", await response.text()
    body = await response.json()
    assert set(body) == {"error", "detail"}, body
    return response.status, body["error"], body["detail"]
