"""What the camera shows, as a live MJPEG stream for the web panel: ``GET /v1/preview.mjpg``.

``?fps=N`` (default :data:`DEFAULT_FPS`) asks for N frames a second; more than
:data:`MAX_FPS` gets :data:`MAX_FPS`, less than :data:`MIN_FPS` gets :data:`MIN_FPS`, and
anything that is not a positive number is refused (400).  The answer is
``multipart/x-mixed-replace`` (what an ``<img>`` shows as live video), one JPEG per part,
from the same ``snapshot_jpeg`` as ``GET /v1/snapshot.jpg``; its ``X-Preview-FPS`` header
says the rate granted.  A refusal of the first frame (the camera is disabled) is the same
refusal ``/v1/snapshot.jpg`` answers, since no stream has started yet.

Encoding costs CPU, so it happens only while somebody watches, once per tick for everyone:
the first watcher starts one encoder task, which ticks at the highest rate any watcher asked
for and publishes each JPEG to all of them (a watcher that asked for fewer frames skips
some); the last watcher to leave stops it.  A watcher that reads slowly gets the newest
frame when it is ready for one, never a backlog.  A stream ends when its client goes away
(seen at the next write), when the encoder fails, or at :meth:`Preview.close` (shutdown:
every stream ends at once, so the HTTP server need not wait for them).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import math
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from bridge.control.problems import error_response
from bridge.errors import BadInput

log = logging.getLogger(__name__)

PATH = "/v1/preview.mjpg"
DEFAULT_FPS = 5.0
MAX_FPS = 15.0
MIN_FPS = 0.2  # one frame in 5 s: a watcher that left is noticed at the next write
BOUNDARY = "frame"
SHUTTING_DOWN = "the bridge is shutting down"

SnapshotJpegFn = Callable[[], Awaitable[bytes]]


def requested_fps(query: Mapping[str, str]) -> float:
    """The frame rate a watcher gets for its query string (``fps``), or :class:`BadInput`."""
    raw = query.get("fps")
    if raw is None:
        return DEFAULT_FPS
    try:
        fps = float(raw)
    except ValueError:
        fps = math.nan
    if not math.isfinite(fps) or fps <= 0:
        raise BadInput("fps", f"{raw!r} is not a positive number of frames a second")
    return min(max(fps, MIN_FPS), MAX_FPS)


def part(jpeg: bytes) -> bytes:
    """One frame of the stream: boundary, headers, the JPEG."""
    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
    return head.encode("ascii") + jpeg + b"\r\n"


class _Frames:
    """The newest frame of one encoder's run, and how watchers wait for the next one."""

    def __init__(self) -> None:
        self.seq = 0
        self.part = b""  # the newest frame as a part of the stream, shared by every watcher
        self.at = 0.0  # loop time of the newest frame
        self.ended: BaseException | None = None  # why no more frames will come
        self._changed = asyncio.Event()

    def publish(self, jpeg: bytes, at: float) -> None:
        self.seq, self.part, self.at = self.seq + 1, part(jpeg), at
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def end(self, why: BaseException) -> None:
        if self.ended is None:
            self.ended = why
        self._changed.set()

    async def after(self, seq: int) -> bool:
        """Wait until a frame newer than ``seq`` is there (True) or the run ended (False)."""
        while self.seq <= seq and self.ended is None:
            await self._changed.wait()
        return self.ended is None


def _encoder_ended(frames: _Frames, task: asyncio.Task[None]) -> None:
    """An encoder that failed ends its run's streams (each then ends its response)."""
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        if frames.seq > 0:  # streams were running: say why they stop
            log.warning("preview stopped: %s", error)
        frames.end(error)


class _StreamEnded(Exception):
    """The encoder stopped because nobody watches any more, or the server shuts down."""


class Preview:
    """The MJPEG route over ``snapshot_jpeg``; :meth:`close` it before the server stops."""

    def __init__(self, snapshot_jpeg: SnapshotJpegFn) -> None:
        self._snapshot_jpeg = snapshot_jpeg
        self._rates: dict[int, float] = {}  # watcher → the fps it asked for
        self._ids = itertools.count(1)
        self._frames = _Frames()
        self._encoder: asyncio.Task[None] | None = None
        self._closed = False
        self.frames_encoded = 0

    @property
    def watchers(self) -> int:
        return len(self._rates)

    @property
    def encoding(self) -> bool:
        """Whether an encoder task exists (it does exactly while somebody watches)."""
        return self._encoder is not None and not self._encoder.done()

    def routes(self) -> list[web.RouteDef]:
        return [web.get(PATH, self._stream)]

    async def close(self) -> None:
        """End every stream and the encoder; later requests are answered 503."""
        self._closed = True
        self._frames.end(_StreamEnded(SHUTTING_DOWN))
        await self._stop_encoder()

    # --- one watcher ------------------------------------------------------------------------

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        fps = requested_fps(request.query)
        if self._closed:
            return error_response(503, SHUTTING_DOWN)
        watcher = next(self._ids)
        self._join(watcher, fps)
        try:
            frames = self._frames
            if await frames.after(0):
                return await self._send(request, frames, fps)
        finally:
            await self._leave(watcher)
        if isinstance(frames.ended, _StreamEnded):
            return error_response(503, str(frames.ended))
        assert frames.ended is not None
        raise frames.ended  # not even one frame: refused as GET /v1/snapshot.jpg refuses

    async def _send(self, request: web.Request, frames: _Frames, fps: float) -> web.StreamResponse:
        """Stream ``frames`` at about ``fps`` until the client leaves or the run ends."""
        response = web.StreamResponse(
            headers={
                "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                "Cache-Control": "no-store",
                "X-Preview-FPS": f"{fps:g}",
            }
        )
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        due = loop.time()
        seq = 0
        try:
            while await frames.after(seq):
                seq = frames.seq
                # Take the first frame at or after our due time, with half an encoder tick
                # of slack so a watcher at the encoder's own rate takes every frame.
                if frames.at < due - 0.5 / self._rate():
                    continue
                due = frames.at + 1 / fps
                await response.write(frames.part)
            await response.write(f"--{BOUNDARY}--\r\n".encode("ascii"))
            await response.write_eof()
        except ConnectionResetError:  # the client went away: its stream simply ends
            log.debug("preview watcher left")
        return response

    def _rate(self) -> float:
        return max(self._rates.values(), default=DEFAULT_FPS)

    def _join(self, watcher: int, fps: float) -> None:
        self._rates[watcher] = fps
        if self._encoder is None or self._encoder.done():
            frames = self._frames = _Frames()
            self._encoder = asyncio.create_task(self._encode(frames), name="preview-encoder")
            self._encoder.add_done_callback(functools.partial(_encoder_ended, frames))
            log.info("preview: encoding for %d watcher(s)", self.watchers)

    async def _leave(self, watcher: int) -> None:
        del self._rates[watcher]
        if not self._rates:
            self._frames.end(_StreamEnded("nobody watches"))
            await self._stop_encoder()
            log.info("preview: nobody watches; encoding stopped")

    # --- the encoder ------------------------------------------------------------------------

    async def _encode(self, frames: _Frames) -> None:
        """Publish a JPEG every tick at the watchers' highest rate, until cancelled."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            jpeg = await self._snapshot_jpeg()
            self.frames_encoded += 1
            frames.publish(jpeg, loop.time())
            due += 1 / self._rate()
            if due < loop.time():  # behind (a slow encode): re-sync instead of bursting
                due = loop.time()
            await asyncio.sleep(due - loop.time())

    async def _stop_encoder(self) -> None:
        task, self._encoder = self._encoder, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])  # its own CancelledError stays inside it
