"""The virtual webcam: avatar frames to a v4l2loopback device (pyvirtualcam), at a steady rate.

``put(frame)`` (event loop) only drops the frame into a latest-wins slot with a delay line
(:class:`~bridge.media.slot.LatestSlot`; ``set_delay`` is how :mod:`bridge.sinks.av_align`
makes the picture wait for the voice).  A named thread (``webcam-writer``) converts and
writes.  A fresh avatar frame is written as soon as it arrives (a faster source is decimated
to about the configured rate); when none comes it writes the last frame again, and after
``slate_after`` seconds the slate, so apps never lose the camera (``exclusive_caps=1``
devices vanish from browsers without a writer).  Without a device the thread runs all the
same (the snapshot shows what the camera would) and retries the device every few seconds.

A write that fails closes the device, is counted (``write_failures``) and the device is
reopened later; a backend error of an unexpected kind is survived the same way until it comes
``UNEXPECTED_FAILURES_LIMIT`` times in a row, which ends the writer (ERROR log, ``state``
``failed``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import pyvirtualcam

from bridge.config import BackgroundConfig, CameraConfig
from bridge.devices import v4l2 as v4l2devices
from bridge.errors import DeviceUnavailable
from bridge.media.frames import U8, VideoFrame
from bridge.media.slot import LatestSlot
from bridge.pipeline.background import Background, MatteSink
from bridge.pipeline.slate import render_slate
from bridge.pipeline.video import VideoConverter
from bridge.sinks.base import NOT_IN_SNAPSHOT, ThreadedSink, snapshot_of

log = logging.getLogger(__name__)

# Spacing of fresh frames, x interval: at least this far from the previous fresh frame (a
# faster source is decimated; a jittery one passes) ...
MIN_FRESH_SPACING = 0.8
# ... and from any write (a late frame right after a repeat: a short hold only).
MIN_SPACING = 0.1
# After a fresh frame we wait this long (x interval) for the next before repeating, so
# ordinary network jitter does not turn into a repeat plus a delayed frame.
FRESH_WAIT = 1.2
DEVICE_RETRY_S = 5.0
# What the camera backends raise when the device fails (pybind11 turns the native backends'
# std::runtime_error into RuntimeError); anything else is unexpected (see _write).
DEVICE_ERRORS = (RuntimeError, OSError)
UNEXPECTED_FAILURES_LIMIT = 3

CameraState = Literal["starting", "writing", "unavailable", "stopped", "failed"]
Showing = Literal["avatar", "repeat", "slate"]


@dataclass
class CameraStats:
    state: CameraState = "starting"
    device: str | None = None
    engine: str = ""
    showing: Showing = "slate"
    frames_in: int = 0
    frames_out: int = 0
    repeats: int = 0
    slate_frames: int = 0
    dropped: int = 0
    max_gap_ms: float = 0.0
    max_late_ms: float = 0.0
    delay_ms: float = 0.0
    # Lip sync (bridge/sinks/av_align.py): the delay the voice needs now, and the camera-mic
    # offset the delay applied leaves (+ = picture late; the aligner slews it to 0).
    av_target_ms: float | None = None
    av_offset_ms: float | None = None
    write_failures: int = 0  # device writes that raised (the device was then reopened)
    last_error: str | None = None
    fix: str | None = None
    # What the bridge added per fresh frame; the snapshot gives its p50 and p95.
    latencies_ms: deque[float] = field(
        default_factory=lambda: deque(maxlen=600), metadata=NOT_IN_SNAPSHOT
    )

    def snapshot(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        return {
            **snapshot_of(self),
            "latency_ms_p50": _quantile(lat, 0.5),
            "latency_ms_p95": _quantile(lat, 0.95),
        }


def _quantile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def open_camera(cfg: CameraConfig) -> Any:
    """A pyvirtualcam camera per config, or :class:`DeviceUnavailable` saying how to fix it."""
    fmt = (
        pyvirtualcam.PixelFormat.YUYV
        if cfg.pixel_format == "YUYV"
        else pyvirtualcam.PixelFormat.I420
    )
    device = cfg.device
    if device is None and cfg.backend is None:
        found = v4l2devices.find_by_label(cfg.card_label)
        if found is None:
            raise DeviceUnavailable(
                "camera",
                f"no v4l2loopback device labelled {cfg.card_label!r}",
                v4l2devices.setup_hint(cfg.card_label),
            )
        device = found.path
    try:
        return pyvirtualcam.Camera(
            cfg.width, cfg.height, cfg.fps, fmt=fmt, device=device, backend=cfg.backend
        )
    except (RuntimeError, ValueError, OSError) as exc:
        raise DeviceUnavailable(
            "camera", str(exc).splitlines()[0], v4l2devices.setup_hint(cfg.card_label)
        ) from exc


class WebcamSink(ThreadedSink):
    """``start()`` launches the writer thread; ``put()`` offers a frame; ``aclose()`` stops."""

    def __init__(
        self,
        cfg: CameraConfig,
        background: BackgroundConfig | None = None,
        matte: MatteSink | None = None,
    ) -> None:
        self.cfg = cfg
        # The avatar's background (video.background), keyed before scaling; keyed frames
        # with their alpha also go to ``matte`` (the overlay page) while it is wanted.
        self._background = Background(background or BackgroundConfig())
        self._matte = matte
        self.slot: LatestSlot[VideoFrame] = LatestSlot()
        self.stats = CameraStats()
        self._converter = VideoConverter(
            width=cfg.width, height=cfg.height, pixel_format=cfg.pixel_format, fit_mode=cfg.fit
        )
        self.stats.engine = self._converter.engine
        self._slate = render_slate(cfg.width, cfg.height, cfg.pixel_format, image=cfg.slate_image)
        super().__init__("webcam-writer", wake=self.slot.wake)
        self._camera: Any = None
        self._unexpected_in_a_row = 0
        self._next_device_try = 0.0
        self._showing: U8 = self._slate
        self._showing_lock = threading.Lock()

    def put(self, frame: VideoFrame) -> None:
        self.slot.put(frame, frame.arrived)

    def set_delay(self, seconds: float) -> None:
        """Hold frames back this long after they arrive (to meet the slower audio path)."""
        self.slot.set_delay(seconds)
        self.stats.delay_ms = round(seconds * 1000, 1)

    def _release(self) -> None:
        if self._camera is not None:
            self._camera.close()
            self._camera = None
        self.stats.state = "stopped"

    def current_frame(self) -> U8:
        """A copy of what the camera shows now (for snapshots)."""
        with self._showing_lock:
            return self._showing.copy()

    # --- writer thread -------------------------------------------------------------------

    def _ensure_device(self, now: float) -> None:
        if self._camera is not None or now < self._next_device_try:
            return
        try:
            self._camera = open_camera(self.cfg)
        except DeviceUnavailable as exc:
            self._next_device_try = now + DEVICE_RETRY_S
            if self.stats.state != "unavailable":
                log.warning("%s", exc)
            self.stats.state, self.stats.last_error, self.stats.fix = (
                "unavailable",
                exc.reason,
                exc.fix,
            )
            return
        self.stats.state, self.stats.device, self.stats.fix = "writing", self._camera.device, None
        log.info("camera writing to %s (%s)", self._camera.device, self.cfg.pixel_format)

    def _run(self) -> None:
        interval = 1.0 / self.cfg.fps
        stats = self.stats
        last_send = time.perf_counter() - interval
        last_fresh = last_fresh_write = float("-inf")
        fresh_last = False
        stopping = self._stopping
        while not stopping.is_set():
            due = last_send + interval * (FRESH_WAIT if fresh_last else 1.0)
            frame = self.slot.wait_newer(max(0.0, due - time.perf_counter()))
            if stopping.is_set():
                break
            now = time.perf_counter()
            if frame is None:
                # How late the thread got to run: the machine (CPU, GIL) stalling the camera.
                stats.max_late_ms = max(stats.max_late_ms, (now - due) * 1000)
            if frame is not None:
                early = (
                    max(
                        last_send + interval * MIN_SPACING,
                        last_fresh_write + interval * MIN_FRESH_SPACING,
                    )
                    - now
                )
                if early > 0:
                    time.sleep(early)
                    frame = self.slot.wait_newer(0) or frame
                with self._showing_lock:  # snapshots must not see a half-converted frame
                    shown = self._background.apply(frame, matte=self._matte)
                    output = self._converter.convert(shown)
                stats.frames_in += 1
                last_fresh = time.perf_counter()
                showing: Showing = "avatar"
            elif now - last_fresh > self.cfg.slate_after:
                if stats.showing != "slate" and self._matte is not None:
                    self._matte.publish(None)  # no avatar: the overlay clears
                output, showing = self._slate, "slate"
                stats.slate_frames += 1
            else:
                output, showing = self._showing, "repeat"
                stats.repeats += 1
            self._write(output, now)
            sent = time.perf_counter()
            if frame is not None:
                # What the bridge added, beyond the deliberate A/V alignment delay.
                stats.latencies_ms.append((sent - frame.arrived - self.slot.delay) * 1000)
            stats.max_gap_ms = max(stats.max_gap_ms, (sent - last_send) * 1000)
            stats.frames_out += 1
            stats.dropped = self.slot.dropped
            stats.showing = showing
            fresh_last = frame is not None
            if fresh_last:
                last_fresh_write = sent
            last_send = sent

    def _write(self, output: U8, now: float) -> None:
        with self._showing_lock:
            self._showing = output
        self._ensure_device(now)
        if self._camera is None:
            return
        try:
            self._camera.send(output)
        except DEVICE_ERRORS as exc:
            self._write_failed(exc, now)
        # Camera backends are third-party native code, and apps lose the camera when nobody
        # writes: an error of another kind may be one bad frame, so it is survived the same
        # way, unless it keeps coming (a bug): then the writer ends, logged at ERROR.
        except Exception as exc:
            self._write_failed(exc, now)
            self._unexpected_in_a_row += 1
            if self._unexpected_in_a_row >= UNEXPECTED_FAILURES_LIMIT:
                self.stats.state = "failed"
                raise
        else:
            self._unexpected_in_a_row = 0

    def _write_failed(self, exc: Exception, now: float) -> None:
        """Count the failure and close the device; it is reopened after DEVICE_RETRY_S."""
        log.warning("camera write failed, will reopen: %s", exc)
        stats = self.stats
        stats.write_failures += 1
        stats.last_error = str(exc)
        self._camera.close()
        self._camera = None
        self._next_device_try = now + DEVICE_RETRY_S
        stats.state = "unavailable"
