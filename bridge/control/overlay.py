"""The overlay for OBS's Browser Source: ``GET /overlay`` (the page) and the WebSocket
``/v1/overlay.ws`` (its video).

The page shows the avatar on a transparent background, full-bleed, with optional captions
(bridge/control/static/overlay.js reads the query parameters).  Its video is the camera's
frames with their alpha, as the camera thread keys them (bridge/pipeline/background.py):
raw I420 plus an alpha plane per binary message, which the page draws with WebGL.  Raw
because the page is meant for this machine (OBS beside the daemon, loopback): no encoder in
the daemon, none in the page, the least latency; 1.8 MB a frame at 720p.

A message: :data:`HEADER` (magic, width, height, flags, the wall-clock ms at which the
frame reached the daemon), then Y, U, V and, with :data:`HAS_ALPHA`, the alpha plane (full
size).  Width 0: no avatar now (the camera shows its slate); the page clears.

Frames are made only while a page watches; each page gets the newest frame when it can take
one: it sends a text message (any) after drawing each frame, and is sent at most
:data:`IN_FLIGHT` frames it has not drawn yet, so a slow page skips frames instead of letting
them queue in socket buffers (a browser reads a WebSocket as fast as it can).  The token
comes as ``?token=`` (checked by the guard); a page of another site is refused unless it
carries the right token.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from importlib import resources
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, web

from bridge.config import Secret
from bridge.control.guard import AUTHORIZED
from bridge.control.panel import SECURITY_HEADERS
from bridge.control.problems import error_response
from bridge.pipeline.background import Matted

log = logging.getLogger(__name__)

PAGE_PATH = "/overlay"
WS_PATH = "/v1/overlay.ws"
MAGIC = b"HBO1"
HEADER = struct.Struct("<4sIIId")  # magic, width, height, flags, arrived (wall-clock ms)
HAS_ALPHA = 1
HEARTBEAT_S = 30.0
IN_FLIGHT = 2  # frames sent to a page and not yet drawn by it


def encode(matted: Matted | None) -> bytes:
    """One message for the page (``None``: no avatar now)."""
    if matted is None:
        return HEADER.pack(MAGIC, 0, 0, 0, time.time() * 1000)
    # The frame's arrival in wall-clock time, so the page can tell its latency.
    arrived_ms = (time.time() - (time.perf_counter() - matted.arrived)) * 1000
    flags = HAS_ALPHA if matted.alpha is not None else 0
    head = HEADER.pack(MAGIC, matted.width, matted.height, flags, arrived_ms)
    planes = [matted.y, matted.u, matted.v]
    if matted.alpha is not None:
        planes.append(matted.alpha)
    return b"".join([head, *(plane.data.cast("B") for plane in planes)])


class Overlay:
    """The feed (a :class:`~bridge.pipeline.background.MatteSink` for the camera thread)
    and the routes.  :meth:`close` it before the server stops."""

    def __init__(self, token: Secret | None) -> None:
        self._token = token
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kicks: set[asyncio.Event] = set()  # one per page: "something new"
        self._sockets: set[web.WebSocketResponse] = set()
        self._latest = encode(None)
        self._seq = 0
        self._closed = False
        self.frames_published = 0
        self.frames_sent = 0

    @property
    def wanted(self) -> bool:
        return bool(self._kicks) and not self._closed

    @property
    def watchers(self) -> int:
        return len(self._kicks)

    def routes(self) -> list[web.RouteDef]:
        page = (resources.files("bridge.control") / "static" / "overlay.html").read_bytes()

        async def overlay_page(request: web.Request) -> web.StreamResponse:
            return web.Response(
                body=page, content_type="text/html", charset="utf-8", headers=SECURITY_HEADERS
            )

        return [web.get(PAGE_PATH, overlay_page), web.get(WS_PATH, self._stream)]

    # --- the camera thread's side -----------------------------------------------------------

    def publish(self, matted: Matted | None) -> None:
        """Called from the camera thread: encode now (the views live only during the call),
        hand the message to the loop."""
        loop = self._loop
        if loop is None or not self.wanted:
            return
        message = encode(matted)
        try:
            loop.call_soon_threadsafe(self._offer, message)
        except RuntimeError:  # the loop has closed: the daemon is stopping
            return

    def _offer(self, message: bytes) -> None:
        self._latest, self._seq = message, self._seq + 1
        self.frames_published += 1
        for kick in self._kicks:
            kick.set()

    # --- one page -----------------------------------------------------------------------------

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        if self._closed:
            return error_response(503, "the bridge is shutting down")
        foreign = self._foreign(request)
        if foreign is not None:
            return error_response(403, foreign)
        self._loop = asyncio.get_running_loop()
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=4096)
        await ws.prepare(request)
        kick = asyncio.Event()
        credit = [IN_FLIGHT - 1]  # the first frame goes out at once
        reader = asyncio.create_task(self._read(ws, kick, credit), name="overlay-reader")
        self._kicks.add(kick)
        self._sockets.add(ws)
        log.info("overlay: a page watches (%d)", len(self._kicks))
        try:
            await ws.send_bytes(self._latest)
            await self._send(ws, kick, reader, credit)
        except ConnectionResetError:
            log.debug("overlay page left")
        finally:
            self._kicks.discard(kick)
            self._sockets.discard(ws)
            reader.cancel()
            await asyncio.wait([reader])
            log.info("overlay: a page left (%d watch)", len(self._kicks))
        return ws

    async def _send(
        self,
        ws: web.WebSocketResponse,
        kick: asyncio.Event,
        reader: asyncio.Task[None],
        credit: list[int],
    ) -> None:
        sent = self._seq
        while not reader.done() and not ws.closed:
            await kick.wait()
            kick.clear()
            if self._seq != sent and credit[0] > 0 and not ws.closed:
                sent = self._seq
                credit[0] -= 1
                await ws.send_bytes(self._latest)  # waits while the page is slow: it skips
                self.frames_sent += 1

    @staticmethod
    async def _read(ws: web.WebSocketResponse, kick: asyncio.Event, credit: list[int]) -> None:
        """Each message from the page: one frame drawn (room for one more)."""
        try:
            async for _ in ws:
                credit[0] = min(credit[0] + 1, IN_FLIGHT)
                kick.set()
        finally:
            kick.set()

    def _foreign(self, request: web.Request) -> str | None:
        """Why a page of another site may not watch (a WebSocket has no CORS to stop it)."""
        origin = request.headers.get("Origin")
        if origin is None or urlsplit(origin).netloc.lower() == request.host.lower():
            return None
        if self._token is not None and request.get(AUTHORIZED, False):
            return None
        return f"Origin: {origin[:100]!r} is another site's page; send the token"

    async def close(self) -> None:
        """Every page hears GOING_AWAY (it reconnects to the next daemon)."""
        self._closed = True
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"the bridge is stopping")
