"""The API's routes for speech, the queue and the bridge's state (presets, health, metrics and
the OpenAPI document have their own modules).  What each answers: :mod:`bridge.control.openapi`.

A speak request is answered at once, ``202 {"id": request_id, "items": [...], "position": n}``
(``position``: 1 when its first item is the next to be spoken; 0 when it is already being
sent), never after the speech.  Errors are raised as the bridge's own (:class:`BadInput`,
:class:`NotFound`, :class:`Busy`, :class:`NotLive`, :class:`Conflict`) and answered by
:mod:`bridge.control.problems`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from bridge.control.bodies import read_speak
from bridge.control.problems import Conflict
from bridge.control.queue import SpeechItem, SpeechQueue
from bridge.errors import NotFound

StatusFn = Callable[[], dict[str, Any]]
SnapshotJpegFn = Callable[[], Awaitable[bytes]]
ControlSnapshotFn = Callable[[], dict[str, Any]]


def client_source(request: web.Request) -> str:
    """The queue's name for an HTTP client (its rate limit is per source)."""
    return f"http:{request.remote or 'unknown'}"


def accepted(queue: SpeechQueue, items: Sequence[SpeechItem]) -> web.Response:
    """The 202 answer to a request the queue took (``items``: its parts, in order)."""
    waiting = [item.id for item in queue.items() if item.state == "queued"]
    first = items[0].id
    position = waiting.index(first) + 1 if first in waiting else 0
    return web.json_response(
        {
            "id": items[0].request_id,
            "items": [item.as_json() for item in items],
            "position": position,
        },
        status=202,
    )


class Routes:
    """Speech, queue and state routes over one queue and the bridge's status."""

    def __init__(
        self,
        *,
        queue: SpeechQueue,
        status: StatusFn,
        snapshot_jpeg: SnapshotJpegFn,
        control: ControlSnapshotFn,
    ) -> None:
        self._queue = queue
        self._status = status
        self._snapshot_jpeg = snapshot_jpeg
        self._control = control

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/speak", self.speak),
            # allow_head=False: a HEAD must not speak (aiohttp would run the GET's handler).
            web.get("/v1/speak", self.speak, allow_head=False),
            web.post("/v1/interrupt", self.interrupt),
            web.get("/v1/queue", self.queue),
            web.post("/v1/queue/clear", self.clear),
            # Item ids are s1, s2, ...: GET /v1/queue/clear is a wrong method, not an item.
            web.get("/v1/queue/{id:s[0-9]+}", self.item),
            web.delete("/v1/queue/{id:s[0-9]+}", self.remove),
            web.get("/v1/status", self.status),
            web.get("/v1/state", self.state),
            web.get("/v1/snapshot.jpg", self.snapshot),
        ]

    async def speak(self, request: web.Request) -> web.StreamResponse:
        fields = await read_speak(request)
        items = self._queue.submit(
            fields.text, fields.mode, fields.priority, source=client_source(request)
        )
        return accepted(self._queue, items)

    async def interrupt(self, request: web.Request) -> web.StreamResponse:
        stopped = await self._queue.interrupt()
        return web.json_response({"interrupted": stopped.as_json() if stopped else None})

    async def queue(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {
                "speaking": self._queue.speaking,
                "depth": self._queue.depth,
                "items": [item.as_json() for item in self._queue.items()],
                "recent": self._queue.snapshot()["recent"],
            }
        )

    async def clear(self, request: web.Request) -> web.StreamResponse:
        cleared = self._queue.clear()
        return web.json_response({"cleared": [item.as_json() for item in cleared]})

    async def item(self, request: web.Request) -> web.StreamResponse:
        item_id = request.match_info["id"]
        found = self._queue.get(item_id)
        if found is None:
            raise NotFound("queue item", item_id)
        return web.json_response(found.as_json())

    async def remove(self, request: web.Request) -> web.StreamResponse:
        removed = self._queue.remove(request.match_info["id"])
        return web.json_response({"removed": removed.as_json()})

    async def status(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({**self._status(), "control": self._control()})

    async def state(self, request: web.Request) -> web.StreamResponse:
        """Small and flat, for Bitfocus Companion's polling and button feedback."""
        status = self._status()
        session = status.get("session") or {}
        return web.json_response(
            {
                "state": session.get("state", "unknown"),
                "speaking": self._queue.speaking,
                "queue_length": self._queue.depth,
                "session_seconds_left": session.get("seconds_left"),
                "provider": status.get("provider"),
            }
        )

    async def snapshot(self, request: web.Request) -> web.StreamResponse:
        camera = self._status().get("camera") or {}
        if camera.get("state") == "disabled":
            raise Conflict("camera: is disabled (camera.enabled: false)")
        jpeg = await self._snapshot_jpeg()
        return web.Response(
            body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"}
        )
