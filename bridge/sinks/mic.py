"""The virtual microphone: avatar audio → a jitter buffer → one playback stream, for life.

``put(chunk)`` runs on the event loop and never blocks: it counts the chunk (``chunks_in``,
``seconds_in``) and appends it to a :class:`~bridge.media.jitter.JitterBuffer`.  A named
thread (``mic-writer``) takes 10 ms blocks out of it and writes them to ONE output that stays
open for the daemon's life and carries silence between utterances: on Linux a libpulse stream
(:class:`~bridge.devices.pulse_stream.PulseStream`) into the null sink that
:class:`~bridge.devices.pulse_modules.PulseDevices` made, elsewhere a named device
(:mod:`bridge.devices.portaudio`).

:meth:`MicSink.latency_ms` is the time from the audio's arrival at the bridge
(``AudioChunk.arrived``) to the sound server's output: the jitter buffer's wait plus the
stream's measured latency; :meth:`MicSink.lag_ms` is how much later than the picture the
voice arrived (``AudioChunk.lag``); the camera is delayed by both
(:mod:`bridge.sinks.av_align`).

An output that fails makes the sink ``unavailable``: it keeps accepting (and dropping,
counted) audio and reopens the output once the devices are made again (``on_devices``), or
with a backoff without a device manager.  It lets go of its stream at once when the devices
are removed or made anew, because PulseAudio moves the stream of a vanished sink to the
default sink: the user's speakers.  Where no sound server exists at all, the sink stays
``unavailable`` with a fix and the daemon runs on.

The reasons and measurements behind the buffer sizes and the choice of libpulse:
docs/microphone.md.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from bridge.backoff import Backoff, Retrying
from bridge.config import MicrophoneConfig
from bridge.devices.pulse_modules import REMOVED, DeviceState
from bridge.devices.pulse_stream import BLOCK, RATE, STREAM_TARGET_MS, PulseStream
from bridge.errors import DeviceUnavailable
from bridge.media.frames import I16, AudioChunk
from bridge.media.jitter import JitterBuffer
from bridge.sinks.base import ThreadedSink, snapshot_of

log = logging.getLogger(__name__)

OVERRUN_MARGIN_MS = 200  # buffer bound: jitter target + this
LATENCY_EVERY_S = 0.1
# Reopening the output after a failure; devices that are not ready are waited for this
# long too, or until they change (on_devices wakes the writer).
RETRY = Backoff(first=0.5, cap=3.0)

MicState = Literal["starting", "speaking", "silent", "unavailable", "stopped"]


class Output(Protocol):
    """Where the writer thread puts blocks; ``write`` blocks at the device's pace."""

    name: str

    def write(self, block: I16) -> None: ...

    def latency_ms(self) -> float | None: ...

    def close(self) -> None: ...


def default_output(cfg: MicrophoneConfig) -> Callable[[], Output]:
    """The output for this system: the null sink on Linux, a named device elsewhere."""
    if sys.platform in ("win32", "darwin"):
        from bridge.devices.portaudio import PortAudioOutput

        return lambda: PortAudioOutput(cfg.output_device)
    return lambda: PulseStream(cfg.sink_name)


@dataclass
class MicStats:
    """The mic's part of ``/v1/status``; the writer thread keeps it current."""

    state: MicState = "starting"
    output: str | None = None
    sink: str | None = None
    source: str | None = None
    server: str | None = None
    # What put() was given (every chunk, whatever became of it), and what it had to drop.
    chunks_in: int = 0
    seconds_in: float = 0.0
    bad_chunks: int = 0  # not 48 kHz mono int16
    dropped_chunks: int = 0  # arrived while unavailable
    dropped_ms: float = 0.0
    lost_ms: float = 0.0  # buffered audio thrown away when the output was lost
    # What the writer wrote: audio and silence, and audio alone.
    seconds_written: float = 0.0
    seconds_audio: float = 0.0
    # The jitter buffer (docs/microphone.md); target_ms grows after stalls.
    underruns: int = 0
    overruns: int = 0
    overrun_dropped_ms: float = 0.0
    trims: int = 0
    trimmed_ms: float = 0.0
    buffer_ms: float = 0.0
    target_ms: float = 0.0
    # From arrival to the server's output: the stream's part, and buffer + stream.
    output_latency_ms: float | None = None
    latency_ms: float | None = None
    lag_ms: float = 0.0  # the voice's arrival after the picture of the same instant
    reconnects: int = 0
    late_writes: int = 0  # the writer came back too late: the stream ran dry
    max_write_gap_ms: float = 0.0
    last_error: str | None = None
    fix: str | None = None

    def snapshot(self) -> dict[str, Any]:
        return snapshot_of(self)


class MicSink(ThreadedSink):
    """``start()`` launches the writer; ``put()`` offers audio; ``aclose()`` stops it.

    ``on_devices`` is :class:`~bridge.devices.pulse_modules.PulseDevices`' ``on_change``: with
    it, the stream is (re)opened only while the devices exist.  Without it the sink simply tries.
    """

    def __init__(
        self, cfg: MicrophoneConfig, *, open_output: Callable[[], Output] | None = None
    ) -> None:
        self.cfg = cfg
        self.stats = MicStats(sink=cfg.sink_name, source=cfg.source_name)
        self.buffer = JitterBuffer(
            rate=RATE,
            target_ms=cfg.jitter_buffer_ms,
            max_ms=cfg.jitter_buffer_ms + OVERRUN_MARGIN_MS,
            block=BLOCK,
        )
        self._open_output = open_output or default_output(cfg)
        self._available = False
        self._ever_opened = False
        self._devices: DeviceState | None = None
        self._wake = threading.Event()
        super().__init__("mic-writer", wake=self._wake.set)
        # The writer thread's own state.
        self._out: Output | None = None
        self._opened_generation = -1
        self._retrying = Retrying(RETRY)
        self._next_latency = 0.0
        self._last_write: float | None = None

    # --- the event loop's side ------------------------------------------------------------------

    def put(self, chunk: AudioChunk) -> None:
        """Offer one chunk; never blocks, never raises for a device problem."""
        stats = self.stats
        stats.chunks_in += 1
        stats.seconds_in += chunk.duration
        samples = chunk.samples
        if chunk.sample_rate != RATE or samples.ndim != 1 or samples.dtype != np.int16:
            stats.bad_chunks += 1
            stats.last_error = (
                f"audio must be {RATE} Hz mono int16; got {chunk.sample_rate} Hz "
                f"{samples.dtype} {samples.shape}"
            )
            return
        if not self._available:
            stats.dropped_chunks += 1
            stats.dropped_ms += chunk.duration * 1000
            return
        stats.lag_ms = chunk.lag * 1000
        self.buffer.push(samples, time.perf_counter(), chunk.arrived)

    def on_devices(self, state: DeviceState) -> None:
        """The devices changed (any thread): reopen, or let go of, the stream."""
        self._devices = state
        if state.ready:
            self.stats.server = state.server
        self._wake.set()

    def latency_ms(self) -> float | None:
        """From the audio's arrival (``AudioChunk.arrived``) to the sound server's output, now;
        None while unavailable."""
        out = self.stats.output_latency_ms
        if not self._available or out is None:
            return None
        return self.buffer.latency_ms(time.perf_counter()) + out

    def lag_ms(self) -> float:
        """How much later than the picture of the same instant the voice reached the bridge
        (the last chunk's ``AudioChunk.lag``)."""
        return self.stats.lag_ms

    # --- writer thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        """Keep an output open while the devices allow it, and write one block per turn."""
        try:
            while not self._stopping.is_set():
                self._let_go_if_devices_changed()
                out = self._out if self._out is not None else self._open()
                if out is not None:
                    self._write_block(out)
        finally:
            if self._out is not None:
                self._out.close()
                self._out = None

    def _let_go_if_devices_changed(self) -> None:
        devices = self._devices
        if self._out is None or devices is None:
            return
        if devices.ready and devices.generation == self._opened_generation:
            return
        # The null sink went away or was made anew: this stream may already have been moved
        # to another sink (the speakers).  Let go of it at once.
        self._out.close()
        self._out = None
        self._lost(
            devices.reason or "the virtual mic was made again",
            devices.fix,
            reported=devices.reason is not None,
        )

    def _open(self) -> Output | None:
        """The output, opened; None after waiting (devices not ready, or opening failed)."""
        devices = self._devices
        if devices is not None and not devices.ready:
            if devices.generation or devices.fix:  # not merely "starting"
                # The device manager has logged why already.
                self._unavailable(devices.reason or "no devices", devices.fix, reported=True)
            self._sleep(RETRY.cap)
            return None
        try:
            out = self._open_output()
        except DeviceUnavailable as exc:
            self._unavailable(exc.reason, exc.fix)
            self._sleep(self._retrying.failed())
            return None
        self._retrying.succeeded()
        self._out, self._last_write = out, None
        self._opened_generation = devices.generation if devices is not None else -1
        self._opened(out)
        return out

    def _write_block(self, out: Output) -> None:
        start = time.perf_counter()
        block, audio = self.buffer.pop(start)
        try:
            out.write(block)
        except DeviceUnavailable as exc:
            out.close()
            self._out = None
            self._lost(exc.reason, exc.fix)
            return
        now = time.perf_counter()
        if self._last_write is not None:
            self._check_late(start - self._last_write)
        self._last_write = now
        if now >= self._next_latency:
            self.stats.output_latency_ms = out.latency_ms()
            self._next_latency = now + LATENCY_EVERY_S
        self._account(len(block), audio)

    def _release(self) -> None:
        self._available = False
        self.stats.state = "stopped"

    def _sleep(self, seconds: float) -> None:
        if self._wake.wait(seconds):
            self._wake.clear()

    def _opened(self, out: Output) -> None:
        stats = self.stats
        if self._ever_opened:
            stats.reconnects += 1
        self._ever_opened = True
        stats.output, stats.last_error, stats.fix = out.name, None, None
        stats.state = "silent"
        self._available = True
        log.info("virtual mic writing to %s", out.name)

    def _lost(self, reason: str, fix: str | None, *, reported: bool = False) -> None:
        self._available = False
        self.stats.lost_ms += self.buffer.clear() * 1000 / RATE
        self.stats.output_latency_ms = self.stats.latency_ms = None
        self._unavailable(reason, fix, reported=reported)

    def _unavailable(self, reason: str, fix: str | None, *, reported: bool = False) -> None:
        """``reported``: the reason came from the device manager, which logged it."""
        stats = self.stats
        self._available = False
        if stats.state != "unavailable" or stats.last_error != reason:
            level = logging.DEBUG if reported else logging.WARNING
            log.log(
                logging.INFO if reason == REMOVED else level,
                "virtual mic unavailable: %s%s",
                reason,
                f" (fix: {fix})" if fix else "",
            )
        stats.state, stats.last_error = "unavailable", reason
        stats.fix = fix

    def _check_late(self, idle_s: float) -> None:
        """``idle_s``: from the last write's return to this one's start."""
        idle_ms = idle_s * 1000
        stats = self.stats
        stats.max_write_gap_ms = max(stats.max_write_gap_ms, idle_ms)
        # The stream held at most STREAM_TARGET_MS when the last write returned: a writer
        # away longer than that let the server run dry (a gap the jitter buffer cannot see:
        # the thread was starved of CPU or the GIL).
        if idle_ms > STREAM_TARGET_MS:
            stats.late_writes += 1

    def _account(self, samples: int, audio: bool) -> None:
        stats, buf = self.stats, self.buffer
        seconds = samples / RATE
        stats.seconds_written += seconds
        if audio:
            stats.seconds_audio += seconds
        stats.state = "speaking" if buf.playing or audio else "silent"
        stats.buffer_ms = buf.buffered_ms()
        stats.target_ms = buf.target * 1000 / RATE
        out = stats.output_latency_ms
        stats.latency_ms = buf.latency_ms(time.perf_counter()) + out if out is not None else None
        stats.underruns = buf.underruns
        stats.overruns = buf.overruns
        stats.overrun_dropped_ms = buf.overrun_dropped * 1000 / RATE
        stats.trims = buf.trims
        stats.trimmed_ms = buf.trimmed * 1000 / RATE
