"""The control API with its WebSocket, in-process on a real loopback port, for the WebSocket
tests: the real ControlServer (guard and error boundary included), EventHub and SpeechQueue;
the avatar is :class:`InstantAvatar`, which says every item at once.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bridge.config import ControlConfig, RateLimitConfig, Secret
from bridge.control.http import ControlServer
from bridge.control.queue import SpeechQueue
from bridge.control.ws import EventHub
from bridge.eventbus import EventBus
from bridge.providers.base import SpeakMode
from bridge.providers.events import AvatarEvent

MAX_ITEM = 40  # the provider's characters per item: a longer text becomes several items
JPEG = b"\xff\xd8\xff\xd9"
Json = dict[str, Any]


class InstantAvatar:
    """A live avatar that takes each item at once and says it at once: ``speak_started``
    then ``speak_ended`` follow on the next turns of the loop."""

    def __init__(self, queue: SpeechQueue) -> None:
        self.live = asyncio.Event()
        self.live.set()
        self._queue = queue
        self._tasks = itertools.count(1)
        self.said: list[str] = []

    async def speak(self, text: str, mode: SpeakMode) -> str:
        task_id = f"t{next(self._tasks)}"
        self.said.append(text)
        loop = asyncio.get_running_loop()
        loop.call_soon(self._queue.on_event, AvatarEvent("speak_started", task_id))
        loop.call_soon(self._queue.on_event, AvatarEvent("speak_ended", task_id))
        return task_id

    async def interrupt(self) -> None:
        return None


@dataclass
class WsDaemon:
    bus: EventBus
    queue: SpeechQueue
    hub: EventHub
    server: ControlServer
    http: aiohttp.ClientSession
    avatar: InstantAvatar | None
    sockets: list[aiohttp.ClientWebSocketResponse] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/v1/ws"

    async def connect(
        self, *, session: aiohttp.ClientSession | None = None, **kwargs: Any
    ) -> aiohttp.ClientWebSocketResponse:
        ws: aiohttp.ClientWebSocketResponse = await (session or self.http).ws_connect(
            self.url, **kwargs
        )
        self.sockets.append(ws)
        return ws

    def state(self) -> tuple[Json, dict[str, int]]:
        """What a refused message must not change: the queue and its final counts."""
        return self.queue.snapshot(), dict(self.queue.finished)


@asynccontextmanager
async def ws_daemon(
    *,
    token: str | None = None,
    buffer: int = 256,
    limit: int = 100,
    rate: RateLimitConfig | None = None,
    avatar: bool = False,
) -> AsyncIterator[WsDaemon]:
    """The API on 127.0.0.1 (port chosen by the system) with the hub's routes; ``avatar``:
    the queue runs and :class:`InstantAvatar` speaks (else items stay queued)."""
    bus = EventBus()
    queue = SpeechQueue(bus=bus, max_item=MAX_ITEM, limit=limit, rate=rate)
    secret = Secret(token) if token is not None else None
    hub = EventHub(bus=bus, queue=queue, token=secret, buffer=buffer)

    async def snapshot_jpeg() -> bytes:
        return JPEG

    server = ControlServer(
        ControlConfig(host="127.0.0.1", port=0),
        queue=queue,
        status=lambda: {"speech": queue.snapshot(), "websocket": hub.snapshot()},
        snapshot_jpeg=snapshot_jpeg,
        token=secret,
        presets={},
        bus=bus,
        routes=hub.routes(),
    )
    await server.start()
    speaker = InstantAvatar(queue) if avatar else None
    runner = asyncio.create_task(queue.run(speaker), name="speech-queue") if speaker else None
    try:
        async with aiohttp.ClientSession() as http:
            daemon = WsDaemon(bus, queue, hub, server, http, speaker)
            try:
                yield daemon
            finally:
                for ws in daemon.sockets:
                    await ws.close()
    finally:
        await hub.close()
        await server.stop()
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)


async def next_json(ws: aiohttp.ClientWebSocketResponse, within: float = 10.0) -> Json:
    """The next message (a text frame of JSON); fails on anything else."""
    message = await ws.receive(timeout=within)
    assert message.type is aiohttp.WSMsgType.TEXT, (message.type, message.data, message.extra)
    value = json.loads(message.data)
    assert isinstance(value, dict), value
    return value


async def ask(ws: aiohttp.ClientWebSocketResponse, message: Json | str) -> Json:
    """Send a message and return its answer (an ack or an error), skipping events."""
    await ws.send_str(message if isinstance(message, str) else json.dumps(message))
    while True:
        reply = await next_json(ws)
        if reply["type"] != "event":
            return reply


async def events_until_synced(ws: aiohttp.ClientWebSocketResponse) -> list[Json]:
    """Every event the client gets before the answer to a message sent now: what the hub had
    queued for it so far (answers go after events already waiting)."""
    await ws.send_str(json.dumps({"type": "auth", "ref": "sync"}))
    events: list[Json] = []
    while True:
        reply = await next_json(ws)
        if reply["type"] == "ack" and reply["ref"] == "sync":
            return events
        assert reply["type"] == "event", reply
        events.append(reply)


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> tuple[int, str | None]:
    """The close code and reason the server sent (events before it are skipped; an ack
    before it fails: a refused client must not get one)."""
    while True:
        message = await ws.receive(timeout=10)
        if message.type is aiohttp.WSMsgType.CLOSE:
            return message.data, message.extra
        assert message.type is aiohttp.WSMsgType.TEXT, message
        assert json.loads(message.data)["type"] != "ack", message.data


def small_receive_buffer(addr_info: Any) -> socket.socket:
    """A client socket whose kernel buffer takes only a few kB: a client that never reads
    then holds the server's writes back after little data, as a slow one on a real network."""
    family, kind, proto, _, _ = addr_info
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return sock
