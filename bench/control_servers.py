"""The servers of bench/control.py, each run in its own process (``control.py --serve KIND``):

- ``speak-ours``: the real ControlServer + EventHub + SpeechQueue (persisting to
  ``$BENCH_QUEUE_STATE`` when set, logging at the level given), the avatar stubbed by
  :class:`ImmediateAvatar`; queue limit 10 000 and no rate limit, so nothing is refused;
- ``speak-bare``: an aiohttp handler that parses the JSON and answers 202;
- ``fanout-ours``: the same daemon parts; ``POST /bench/emit`` emits events into its bus;
- ``fanout-bare``: a plain aiohttp WebSocket handler; ``POST /bench/emit`` sends each event
  with ``await ws.send_str`` to every socket in turn.

Each serves on 127.0.0.1 (a port the system picks), says READY with its URL
(bridge/sdnotify.py), and stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from bridge import log, sdnotify
from bridge.config import ControlConfig, RateLimitConfig
from bridge.control.http import ControlServer
from bridge.control.queue import SpeechQueue
from bridge.control.ws import EventHub
from bridge.eventbus import EventBus
from bridge.providers.base import SpeakMode
from bridge.providers.events import AvatarEvent

ITEM = {  # what a speech event carries (bridge/control/item.py as_json), ~0.5 kB encoded
    "id": "s1",
    "request_id": "r1",
    "part": 1,
    "parts": 1,
    "text": "Welcome back to the stream! Today we look at the new release. " * 4,
    "mode": "repeat",
    "priority": "normal",
    "source": "ws:1",
    "state": "speaking",
    "detail": None,
    "task_id": "t1",
    "created": 1764400000.0,
}


STORE_ENV = "BENCH_QUEUE_STATE"  # where ours keeps its queue (unset: persistence off)
KINDS = ("speak-ours", "speak-bare", "fanout-ours", "fanout-bare")


async def serve(kind: str, log_level: str) -> None:
    """Serve ``kind`` on 127.0.0.1 (a free port), say READY with the URL, stop on SIGTERM."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    if kind in ("speak-ours", "fanout-ours"):
        await serve_ours(kind, stop, log_level)
        return
    app = web.Application()
    app.add_routes(bare_speak_routes() if kind == "speak-bare" else BareFanOut().routes())
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    sdnotify.ready(f"http://127.0.0.1:{runner.addresses[0][1]}")
    await stop.wait()
    await runner.cleanup()


async def serve_ours(kind: str, stop: asyncio.Event, log_level: str) -> None:
    log.setup(log_level)
    bus = EventBus()
    queue = SpeechQueue(
        bus=bus,
        max_item=1000,
        limit=10_000,
        rate=RateLimitConfig(per_minute=0, burst=1),
        store_path=Path(state) / "queue.json" if (state := os.environ.get(STORE_ENV)) else None,
    )
    hub = EventHub(bus=bus, queue=queue, token=None)
    extra = OurFanOut(bus, hub).routes() if kind == "fanout-ours" else []
    server = ControlServer(
        ControlConfig(host="127.0.0.1", port=0),
        queue=queue,
        status=lambda: {"speech": queue.snapshot()},
        snapshot_jpeg=no_snapshot,
        token=None,
        presets={},
        bus=bus,
        routes=[*hub.routes(), *extra],
    )
    await server.start()
    runner = asyncio.create_task(queue.run(ImmediateAvatar(queue)), name="speech-queue")
    sdnotify.ready(f"http://127.0.0.1:{server.port}")
    await stop.wait()
    await hub.close()
    await server.stop()
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)


async def no_snapshot() -> bytes:
    return b""


class ImmediateAvatar:
    """The provider stubbed: it takes each item and has said it by the time it answers, so
    the queue never holds a backlog (whose size would be measured instead of the request)."""

    def __init__(self, queue: SpeechQueue) -> None:
        self.live = asyncio.Event()
        self.live.set()
        self._queue = queue
        self._tasks = itertools.count(1)

    async def speak(self, text: str, mode: SpeakMode) -> str:
        task_id = f"t{next(self._tasks)}"
        self._queue.on_event(AvatarEvent("speak_started", task_id))
        self._queue.on_event(AvatarEvent("speak_ended", task_id))
        return task_id

    async def interrupt(self) -> None:
        return None


def bare_speak_routes() -> list[web.RouteDef]:
    ids = itertools.count(1)

    async def speak(request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        n = next(ids)
        item = {"id": f"s{n}", "text": body["text"], "state": "queued"}
        return web.json_response({"id": f"r{n}", "items": [item], "position": 1}, status=202)

    return [web.post("/v1/speak", speak)]


async def paced(events: int, rate: float, send: Callable[[int], Awaitable[None]]) -> None:
    """``send(seq)`` for each event, ``rate`` a second, on the loop's clock."""
    loop = asyncio.get_running_loop()
    due = loop.time()
    for seq in range(events):
        await send(seq)
        due += 1.0 / rate
        await asyncio.sleep(max(0.0, due - loop.time()))


class OurFanOut:
    """``POST /bench/emit`` ({events, rate}): emit them into the bus the hub listens to."""

    def __init__(self, bus: EventBus, hub: EventHub) -> None:
        self._bus, self._hub = bus, hub

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/bench/emit", self.emit), web.get("/bench/clients", self.clients)]

    async def clients(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self._hub.snapshot()["clients"])

    async def emit(self, request: web.Request) -> web.StreamResponse:
        ask = await request.json()
        costs: list[int] = []
        dropped_at: int | None = None
        dropped_before = self._hub.stats.dropped_slow

        async def send(seq: int) -> None:
            nonlocal dropped_at
            started = time.perf_counter_ns()
            self._bus.emit("speech.speaking", quiet=True, seq=seq, sent=time.monotonic(), item=ITEM)
            costs.append(time.perf_counter_ns() - started)
            if dropped_at is None and self._hub.stats.dropped_slow > dropped_before:
                dropped_at = seq

        await paced(ask["events"], ask["rate"], send)
        alone, lone_bus = [], EventBus()
        for seq in range(ask["events"]):  # the baseline: the same emit() with no subscriber
            started = time.perf_counter_ns()
            lone_bus.emit("speech.speaking", quiet=True, seq=seq, sent=time.monotonic(), item=ITEM)
            alone.append(time.perf_counter_ns() - started)
        hub = self._hub.snapshot()
        return web.json_response(
            {"cost_ns": costs, "alone_ns": alone, "dropped_at": dropped_at, "hub": hub}
        )


class BareFanOut:
    """The baseline: a set of sockets, and each event sent to each in turn."""

    def __init__(self) -> None:
        self._sockets: set[web.WebSocketResponse] = set()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/ws", self.ws),
            web.post("/bench/emit", self.emit),
            web.get("/bench/clients", self.clients),
        ]

    async def clients(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(len(self._sockets))

    async def ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            async for _ in ws:
                pass
        finally:
            self._sockets.discard(ws)
        return ws

    async def emit(self, request: web.Request) -> web.StreamResponse:
        ask = await request.json()
        costs: list[int] = []

        async def send(seq: int) -> None:
            started = time.perf_counter_ns()
            event = {"type": "event", "topic": "speech.speaking", "at": round(time.time(), 3)}
            text = json.dumps({**event, "seq": seq, "sent": time.monotonic(), "item": ITEM})
            for ws in list(self._sockets):
                await ws.send_str(text)
            costs.append(time.perf_counter_ns() - started)

        await paced(ask["events"], ask["rate"], send)
        return web.json_response({"cost_ns": costs})
