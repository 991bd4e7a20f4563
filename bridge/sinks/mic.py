"""The virtual microphone: avatar audio → a jitter buffer → one playback stream, for life.

``put(chunk)`` runs on the event loop and never blocks: it only appends to a
:class:`JitterBuffer`.  A named thread (``mic-writer``) takes 10 ms blocks out of it and
writes them to ONE playback stream into the null sink made by
:mod:`bridge.devices.pulse_modules`.  The stream stays open for the daemon's life and
carries silence between utterances, because a recorder on an idle null sink waits 1–2 s for
its first data (media-api-and-numbers.md §4).

Jitter buffer (``microphone.jitter_buffer_ms``, default 60, grown to the longest wait between
arrivals of the last 15 s, up to 300 ms, while stalls happen): after silence, audio starts
playing once the buffer holds that much (or when no more audio came for that long, so a short
last word is not held back).  When the buffer runs dry mid-speech the gap is filled with
silence and, if audio comes back within 0.5 s (it was a gap, not the end of speech), counted
as an underrun; playback then waits for the buffer to refill.  Beyond ``jitter + 200 ms``
(a stalled loop delivering a burst) the oldest audio is dropped down to the target and counted
as an overrun.  If the buffer's median fill over 1 s stays 30 ms above the target (time the
sound server lost in a stall, clock drift), the excess is trimmed (``trims``), so the voice's
latency stays where the camera's alignment expects it.  :meth:`MicSink.latency_ms` is the
time from the audio's arrival at the bridge to the sound server's output, which the camera
side uses to line video up with the voice: the wait in the buffer, measured as each chunk's
first sample leaves it (from ``AudioChunk.arrived``, so a source that gathers audio into
larger chunks is accounted for), plus the stream's measured latency.  Between utterances it
is predicted from the target: the wait the next utterance's first sample will have.

Why libpulse-simple through ctypes, not a ``pacat`` pipe (measured here: private PulseAudio
16.1, 2-core x86_64; time from writing a marked 10 ms block to ``parec --latency-msec=10``
reading it, 15 marks each):

==============================================  ===========  =========  ================
writer                                          median (ms)  p95 (ms)   latency reported
==============================================  ===========  =========  ================
pa_simple, tlength 20 ms                        20.8         20.9       20.1 ms
pa_simple, tlength 30 ms                        29.8         30.1       24.3 ms
pacat --latency-msec=20, default 64 KiB pipe    655          665        none
pacat --latency-msec=20, pipe shrunk to 4 KiB   50.5         65.2       none
pacat --latency-msec=10, 4 KiB pipe, clocked    42.3         52.4       none
==============================================  ===========  =========  ================

``pa_simple_write`` blocks until the server wants more, so the server's clock paces the
writer and nothing queues up unseen; ``pa_simple_get_latency`` reports the real latency for
A/V alignment.  A pipe buffers up to 64 KiB (680 ms) before ``pacat`` even reads it, and says
nothing about latency.  No extra process, and libpulse is on every PulseAudio or PipeWire
desktop (``libpulse0``).  The stream targets 100 ms (first 30): on a busy machine this thread
(GIL, CPU) or the sound server stalls now and then, and a stream that runs dry meanwhile
plays silence and loses that time for good — a click in the voice, and the voice then lags
the picture more.  Measured here (bench/avsync.py, 30 s): 12 gaps a minute at 50 ms, none at
100 ms.  A writer away longer is counted (``late_writes``); the extra latency is matched by
the camera's alignment delay, so lips and voice still meet.
Cost, measured: 10 ms writes take 2.7–4 % of one core (writer thread + libpulse's own
thread; ``pacat`` doing the same work: 1.5 %).  20 ms writes into a 40 ms stream would halve
that for 9 ms more latency and a 6 ms less exact ``latency_ms()``; latency won here.

A server that dies or restarts makes the write fail: the sink marks itself ``unavailable``,
keeps accepting (and dropping, counted) audio, and reopens the stream once
:class:`~bridge.devices.pulse_modules.PulseDevices` reports the devices made again (or every few
seconds without it).  It also drops its stream whenever the devices are removed or
made anew, because PulseAudio moves the stream of a vanished sink to the default sink — the
user's speakers — and pa_simple cannot ask for ``PA_STREAM_DONT_MOVE``.

Other systems (``sys.platform`` win32/darwin; :mod:`bridge.devices.portaudio`, optional
extra ``othersystems``): the same buffer and thread write to a named output device through
``sounddevice`` — VB-Audio "CABLE Input" on Windows (apps then record "CABLE Output"),
"BlackHole 2ch" on macOS — chosen by name (``microphone.output_device``), never by index.
Where no sound server exists at all, the sink stays ``unavailable`` with a fix and the daemon
runs on.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from bridge.config import MicrophoneConfig
from bridge.devices.pulse_modules import DEVICE, REMOVED, DeviceState, server_fix
from bridge.errors import DeviceUnavailable
from bridge.media.frames import I16, AudioChunk

log = logging.getLogger(__name__)

RATE = 48000
BLOCK = RATE // 100  # the writer's 10 ms block
# libpulse tlength: enough to ride out a short stall of the sound server or of this
# thread without the server losing time (each such loss would add to the voice's latency).
STREAM_TARGET_MS = 100
OVERRUN_MARGIN_MS = 200  # buffer bound: jitter target + this
UNDERRUN_WINDOW_S = 0.5  # audio back within this after running dry: it was a gap
# Latency that crept in (a sound server that stalled and lost time, a burst after a stall)
# is given back: when the buffer's typical fill over a window stays this far above the
# target, the excess goes.  The median, not the minimum: one late packet must not hide a
# second of extra latency from the trim.
TRIM_WINDOW_S = 1.0
TRIM_MARGIN_MS = 30
# The target grows to the longest wait between arrivals seen lately (a loaded machine or
# network stalls for 100-200 ms now and then): held back that long, the next such stall does
# not run the voice dry.  It shrinks back when the stalls stop.
ADAPT_WINDOW_S = 15.0
ADAPT_MAX_MS = 300
LATENCY_EVERY_S = 0.1
WAIT_FRESH_S = 0.5  # a measured buffer wait older than this no longer describes the buffer
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 3.0
DEVICES_UP_FIX = "heygen-bridge devices up"


# --- the jitter buffer (pure; one lock) ----------------------------------------------------------


class JitterBuffer:
    """A bounded FIFO of samples: ``push`` from the loop thread, ``pop`` from the writer."""

    def __init__(self, *, rate: int, target_ms: int, max_ms: int, block: int) -> None:
        self.rate = rate
        self.base_target = self.target = rate * target_ms // 1000
        self._headroom = max(rate * max_ms // 1000 - self.target, block)
        self.bound = self.target + self._headroom
        self.block = block
        self.playing = False
        self.underruns = 0
        self.overruns = 0
        self.overrun_dropped = 0  # samples
        self.trims = 0
        self.trimmed = 0  # samples
        self.audio_blocks = 0
        self.silence_blocks = 0
        self._chunks: deque[I16] = deque()
        self._arrivals: deque[float] = deque()  # when each chunk's first sample arrived
        self._head = 0  # samples of _chunks[0] already taken
        self._chunk_len = block  # the last chunk's length and how long it had been gathered
        self._lead = 0.0
        self._wait: float | None = None  # the last measured wait of a chunk's first sample
        self._wait_at = float("-inf")
        self._size = 0
        self._last_push = float("-inf")
        self._dry_since: float | None = None
        self._window_end = 0.0
        self._fills: list[int] = []
        self._waits: deque[tuple[float, float]] = deque()  # (when, seconds since the last)
        self._silence = np.zeros(block, dtype=np.int16)
        self._lock = threading.Lock()

    @property
    def buffered(self) -> int:
        return self._size

    def buffered_ms(self) -> float:
        return self._size * 1000 / self.rate

    def latency_ms(self, now: float) -> float:
        """How long audio arriving now waits before the writer takes it.

        While playing: the wait last measured as a chunk's first sample was taken.  Otherwise
        the wait the next utterance's first sample will have: its chunk and those after it
        are held until the buffer reaches the target.
        """
        with self._lock:
            if self.playing and self._wait is not None and now - self._wait_at <= WAIT_FRESH_S:
                return max(self._wait, 0.0) * 1000
            chunks = -(-self.target // self._chunk_len)  # pushes it takes to reach the target
            held = (chunks - 1) * self._chunk_len / self.rate + self._lead
            return max(held, self._size / self.rate) * 1000

    def push(self, samples: I16, now: float, arrived: float | None = None) -> None:
        """``arrived``: when the chunk's first sample reached the bridge (default ``now``)."""
        if len(samples) == 0:
            return
        with self._lock:
            self._adapt(now)
            self._chunks.append(samples)
            self._arrivals.append(now if arrived is None else arrived)
            self._chunk_len, self._lead = len(samples), now - self._arrivals[-1]
            self._size += len(samples)
            self._last_push = now
            if self._dry_since is not None:
                if now - self._dry_since <= UNDERRUN_WINDOW_S:
                    self.underruns += 1
                self._dry_since = None
            if self._size > self.bound:
                excess = self._size - self.target
                self._drop(excess)
                self.overruns += 1
                self.overrun_dropped += excess

    def pop(self, now: float) -> tuple[I16, bool]:
        """The next ``block`` samples, and whether they carry avatar audio (else silence)."""
        with self._lock:
            if not self.playing:
                if self._size >= self.target or (
                    self._size > 0 and now - self._last_push >= self.target / self.rate
                ):
                    self.playing = True
                    self._window_end, self._fills = now + TRIM_WINDOW_S, []
                else:
                    self.silence_blocks += 1
                    return self._silence, False
            if self._size >= self.block:
                out = self._take(self.block, now)
            else:  # ran dry: what is left, then silence until the buffer refills
                out = np.concatenate(
                    [self._take(self._size, now), np.zeros(self.block - self._size, np.int16)]
                )
                self.playing = False
                self._dry_since = now
            self.audio_blocks += 1
            if self.playing:
                self._track_drift(now)
            return out, True

    def clear(self) -> int:
        """Drop everything; returns how many samples were dropped."""
        with self._lock:
            dropped = self._size
            self._drop(self._size)
            self.playing = False
            self._dry_since = None
            return dropped

    # --- under the lock -----------------------------------------------------------------------

    def _adapt(self, now: float) -> None:
        """Follow the target to the longest recent wait between arrivals (within bounds)."""
        if self.playing and self._last_push > float("-inf"):
            self._waits.append((now, now - self._last_push))
        while self._waits and self._waits[0][0] < now - ADAPT_WINDOW_S:
            self._waits.popleft()
        worst = max((wait for _, wait in self._waits), default=0.0)
        ceiling = self.rate * ADAPT_MAX_MS // 1000
        self.target = max(self.base_target, min(ceiling, int(worst * self.rate) + self.block))
        self.bound = self.target + self._headroom

    def _track_drift(self, now: float) -> None:
        self._fills.append(self._size)
        if now < self._window_end:
            return
        excess = sorted(self._fills)[len(self._fills) // 2] - self.target
        if excess > self.rate * TRIM_MARGIN_MS // 1000:
            excess = min(excess, self._size)
            self._drop(excess)
            self.trims += 1
            self.trimmed += excess
        self._window_end, self._fills = now + TRIM_WINDOW_S, []

    def _take(self, n: int, now: float) -> I16:
        """The next ``n`` samples, to be played from ``now`` on (10 ms apart per block)."""
        parts: list[I16] = []
        taken = 0
        while n > 0:
            head = self._chunks[0]
            if self._head == 0:  # a chunk's first sample: measure how long it waited
                self._wait = now + taken / self.rate - self._arrivals[0]
                self._wait_at = now
            piece = head[self._head : self._head + n]
            taken += len(piece)
            parts.append(piece)
            n -= len(piece)
            self._size -= len(piece)
            self._head += len(piece)
            if self._head >= len(head):
                self._chunks.popleft()
                self._arrivals.popleft()
                self._head = 0
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)

    def _drop(self, n: int) -> None:
        while n > 0 and self._chunks:
            left = len(self._chunks[0]) - self._head
            if left <= n:
                self._chunks.popleft()
                self._arrivals.popleft()
                self._head = 0
                self._size -= left
                n -= left
            else:
                self._head += n
                self._size -= n
                n = 0


# --- outputs -------------------------------------------------------------------------------------


class Output(Protocol):
    """Where the writer thread puts blocks; ``write`` blocks at the device's pace."""

    name: str

    def write(self, block: I16) -> None: ...

    def latency_ms(self) -> float | None: ...

    def close(self) -> None: ...


class _SampleSpec(ctypes.Structure):
    _fields_ = [("format", ctypes.c_int), ("rate", ctypes.c_uint32), ("channels", ctypes.c_uint8)]


class _BufferAttr(ctypes.Structure):
    _fields_ = [
        ("maxlength", ctypes.c_uint32),
        ("tlength", ctypes.c_uint32),
        ("prebuf", ctypes.c_uint32),
        ("minreq", ctypes.c_uint32),
        ("fragsize", ctypes.c_uint32),
    ]


PA_STREAM_PLAYBACK = 1
PA_SAMPLE_S16LE = 3
PA_DEFAULT = 0xFFFFFFFF  # (uint32_t) -1: let the server choose
PA_ERR_ACCESS, PA_ERR_NOENTITY, PA_ERR_AUTHKEY = 1, 5, 9
LIBPULSE_FIX = "sudo apt install libpulse0"

_libs: tuple[Any, Any] | None = None


def _libpulse() -> tuple[Any, Any]:
    """(libpulse-simple, libpulse), loaded once, signatures declared."""
    global _libs
    if _libs is not None:
        return _libs
    try:
        simple = ctypes.CDLL(ctypes.util.find_library("pulse-simple") or "libpulse-simple.so.0")
        pulse = ctypes.CDLL(ctypes.util.find_library("pulse") or "libpulse.so.0")
    except OSError as exc:
        raise DeviceUnavailable(DEVICE, f"libpulse is not installed ({exc})", LIBPULSE_FIX) from exc
    err = ctypes.POINTER(ctypes.c_int)
    simple.pa_simple_new.restype = ctypes.c_void_p
    simple.pa_simple_new.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.POINTER(_SampleSpec),
        ctypes.c_void_p,
        ctypes.POINTER(_BufferAttr),
        err,
    ]
    simple.pa_simple_write.restype = ctypes.c_int
    simple.pa_simple_write.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, err]
    simple.pa_simple_get_latency.restype = ctypes.c_uint64
    simple.pa_simple_get_latency.argtypes = [ctypes.c_void_p, err]
    simple.pa_simple_free.restype = None
    simple.pa_simple_free.argtypes = [ctypes.c_void_p]
    pulse.pa_strerror.restype = ctypes.c_char_p
    pulse.pa_strerror.argtypes = [ctypes.c_int]
    _libs = (simple, pulse)
    return _libs


class PulseStream:
    """One libpulse-simple playback stream (s16le mono 48 kHz) into ``device``."""

    def __init__(self, device: str, *, target_ms: int = STREAM_TARGET_MS) -> None:
        self._simple, self._pulse = _libpulse()
        self.name = f"libpulse-simple → {device}"
        self.device = device
        spec = _SampleSpec(PA_SAMPLE_S16LE, RATE, 1)
        bytes_per_ms = RATE * 2 // 1000
        attr = _BufferAttr(PA_DEFAULT, target_ms * bytes_per_ms, PA_DEFAULT, BLOCK * 2, PA_DEFAULT)
        error = ctypes.c_int(0)
        # server=NULL: libpulse finds the server as every client does (PULSE_SERVER, ...).
        handle = self._simple.pa_simple_new(
            None,
            b"heygen-bridge",
            PA_STREAM_PLAYBACK,
            device.encode(),
            b"avatar voice",
            ctypes.byref(spec),
            None,
            ctypes.byref(attr),
            ctypes.byref(error),
        )
        if not handle:
            raise self._error("cannot open a stream into " + device, error.value, opening=True)
        self._handle: int | None = handle
        self._error_code = ctypes.c_int(0)

    def write(self, block: I16) -> None:
        if self._handle is None:
            raise DeviceUnavailable(DEVICE, "the stream is closed", DEVICES_UP_FIX)
        data = np.ascontiguousarray(block, dtype="<i2")
        if self._simple.pa_simple_write(
            self._handle, data.ctypes.data, data.nbytes, ctypes.byref(self._error_code)
        ):
            raise self._error("lost the sound server", self._error_code.value, opening=False)

    def latency_ms(self) -> float | None:
        if self._handle is None:
            return None
        usec = int(self._simple.pa_simple_get_latency(self._handle, ctypes.byref(self._error_code)))
        return None if usec == 0xFFFFFFFFFFFFFFFF else usec / 1000

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            self._simple.pa_simple_free(handle)

    def _error(self, what: str, code: int, *, opening: bool) -> DeviceUnavailable:
        text = (self._pulse.pa_strerror(code) or b"unknown error").decode(errors="replace")
        if opening and code == PA_ERR_NOENTITY:
            return DeviceUnavailable(
                DEVICE, f"{what}: the sink {self.device} does not exist ({text})", DEVICES_UP_FIX
            )
        if code in (PA_ERR_ACCESS, PA_ERR_AUTHKEY):
            return DeviceUnavailable(
                DEVICE,
                f"{what}: {text}",
                "run heygen-bridge as the user who owns the desktop session's sound server",
            )
        return DeviceUnavailable(DEVICE, f"{what}: {text}", server_fix())


def default_output(cfg: MicrophoneConfig) -> Callable[[], Output]:
    """The output for this system: the null sink on Linux, a named device elsewhere."""
    if sys.platform in ("win32", "darwin"):
        from bridge.devices.portaudio import PortAudioOutput

        return lambda: PortAudioOutput(cfg.output_device)
    return lambda: PulseStream(cfg.sink_name)


# --- the sink --------------------------------------------------------------------------------


@dataclass
class MicStats:
    state: str = "starting"  # speaking | silent | unavailable | stopped
    output: str | None = None
    sink: str | None = None
    source: str | None = None
    server: str | None = None
    chunks_in: int = 0
    seconds_in: float = 0.0
    bad_chunks: int = 0  # not 48 kHz mono int16: dropped
    dropped_chunks: int = 0  # arrived while unavailable: dropped
    dropped_ms: float = 0.0
    lost_ms: float = 0.0  # buffered audio thrown away when the output was lost
    seconds_written: float = 0.0  # audio and silence
    seconds_audio: float = 0.0
    underruns: int = 0
    overruns: int = 0
    overrun_dropped_ms: float = 0.0
    trims: int = 0
    trimmed_ms: float = 0.0
    buffer_ms: float = 0.0
    target_ms: float = 0.0  # the jitter buffer's current target (grows after stalls)
    output_latency_ms: float | None = None
    latency_ms: float | None = None  # arrival to the server's output (buffer + stream)
    reconnects: int = 0
    late_writes: int = 0  # the writer came back too late: the stream ran dry
    max_write_gap_ms: float = 0.0
    last_error: str | None = None
    fix: str | None = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "output": self.output,
            "sink": self.sink,
            "source": self.source,
            "server": self.server,
            "chunks_in": self.chunks_in,
            "seconds_in": round(self.seconds_in, 2),
            "bad_chunks": self.bad_chunks,
            "dropped_chunks": self.dropped_chunks,
            "dropped_ms": round(self.dropped_ms, 1),
            "lost_ms": round(self.lost_ms, 1),
            "seconds_written": round(self.seconds_written, 2),
            "seconds_audio": round(self.seconds_audio, 2),
            "underruns": self.underruns,
            "overruns": self.overruns,
            "overrun_dropped_ms": round(self.overrun_dropped_ms, 1),
            "trims": self.trims,
            "trimmed_ms": round(self.trimmed_ms, 1),
            "buffer_ms": round(self.buffer_ms, 1),
            "target_ms": round(self.target_ms, 1),
            "output_latency_ms": (
                round(self.output_latency_ms, 1) if self.output_latency_ms is not None else None
            ),
            "latency_ms": round(self.latency_ms, 1) if self.latency_ms is not None else None,
            "reconnects": self.reconnects,
            "late_writes": self.late_writes,
            "max_write_gap_ms": round(self.max_write_gap_ms, 1),
            "last_error": self.last_error,
            "fix": self.fix,
        }


class MicSink:
    """``start()`` launches the writer; ``put()`` offers audio; ``close()`` stops it.

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
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

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

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mic-writer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._available = False
        self.stats.state = "stopped"

    # --- writer thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        out: Output | None = None
        opened_generation = -1
        delay = RETRY_FIRST_S
        next_latency = 0.0
        last_write: float | None = None
        try:
            while not self._stop.is_set():
                devices = self._devices
                if (
                    out is not None
                    and devices is not None
                    and (not devices.ready or devices.generation != opened_generation)
                ):
                    # The null sink went away or was made anew: this stream may already have
                    # been moved to another sink (the speakers).  Let go of it at once.
                    out.close()
                    out = None
                    self._lost(
                        devices.reason or "the virtual mic was made again",
                        devices.fix,
                        reported=devices.reason is not None,
                    )
                if out is None:
                    if devices is not None and not devices.ready:
                        if devices.generation or devices.fix:  # not merely "starting"
                            # The device manager has logged why already.
                            self._unavailable(
                                devices.reason or "no devices", devices.fix, reported=True
                            )
                        self._sleep(RETRY_MAX_S)
                        continue
                    try:
                        out = self._open_output()
                    except DeviceUnavailable as exc:
                        self._unavailable(exc.reason, exc.fix)
                        self._sleep(delay)
                        delay = min(delay * 2, RETRY_MAX_S)
                        continue
                    opened_generation = devices.generation if devices is not None else -1
                    last_write = None
                    delay = RETRY_FIRST_S
                    self._opened(out)
                start = time.perf_counter()
                block, audio = self.buffer.pop(start)
                try:
                    out.write(block)
                except DeviceUnavailable as exc:
                    out.close()
                    out = None
                    self._lost(exc.reason, exc.fix)
                    continue
                now = time.perf_counter()
                if last_write is not None:
                    self._check_late(start - last_write)
                last_write = now
                if now >= next_latency:
                    self.stats.output_latency_ms = out.latency_ms()
                    next_latency = now + LATENCY_EVERY_S
                self._account(len(block), audio)
        finally:
            if out is not None:
                out.close()

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
