"""Lip sync at the sinks: the camera waits as long as the voice takes to reach the speakers.

:class:`AvAligner` couples the two sinks: every ``EVERY_S`` it reads what the voice needs
(:meth:`MicSink.latency_ms <bridge.sinks.mic.MicSink.latency_ms>`: the jitter buffer's
measured wait plus the stream's own latency report; plus
:meth:`MicSink.lag_ms <bridge.sinks.mic.MicSink.lag_ms>`: how much later than the picture the
voice reached the bridge, from libwebrtc's receive stats, :mod:`bridge.source.rx_delay`) and
moves
:meth:`WebcamSink.set_delay <bridge.sinks.webcam.WebcamSink.set_delay>` towards it.  It runs
as a task of the daemon's TaskGroup until cancelled.  The camera's status shows the target
(``av_target_ms``) and the offset the delay applied leaves (``av_offset_ms``).

Measured (docs/benchmarks.md, "Lip sync in every run"): the mic's figure matches the recorded
voice within 1 ms at p50 in every run.  What moved the offset between runs was upstream of
the bridge: the voice reached the bridge 2-34 ms (p50 per session; more on a loaded machine)
after the picture of the same instant, and swung by up to 60 ms within a session, as
libwebrtc's audio and video jitter buffers adapt apart; ``lag_ms`` follows that.  The old
aligner also left up to 8 ms standing (it moved only in steps of 8 ms or more).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from bridge.sinks.mic import MicSink
from bridge.sinks.webcam import WebcamSink


class AvAligner:
    """Delays the camera by what the voice takes beyond the picture, so both meet at the sinks.

    The target is the audio path's latency (jitter buffer + sound server, measured by the mic
    sink), plus the voice's lag behind the picture at the bridge's door, plus
    ``microphone.av_offset_ms`` (positive: the voice later, so the picture waits
    longer).  The median of the readings of the last ``WINDOW_S`` is followed, so a passing
    wobble (a stalled sound server, one late chunk) barely moves it.  The delay slews towards
    the target at ``SLEW`` seconds per second (a short change of playback speed, not a jump),
    except the first time and after a jump of ``JUMP_S`` or more (a new session), where it is
    set at once.  Differences under ``DEADBAND_S`` are left alone.
    """

    EVERY_S = 0.1
    WINDOW_S = 1.0
    # 0.04 s/s (tried first) followed a 60 ms swing of the voice's path over 1.5 s and left
    # offsets of 50-120 ms standing meanwhile; at 0.2 s/s the picture runs 20 % slow or fast
    # for a moment (a frame held or skipped now and then), which is seen far less.
    SLEW = 0.2
    JUMP_S = 0.15
    DEADBAND_S = 0.002

    def __init__(self, webcam: WebcamSink, mic: MicSink | None, offset_ms: int) -> None:
        self._webcam = webcam
        self._mic = mic
        self._offset = offset_ms / 1000
        self._readings: deque[tuple[float, float]] = deque()  # (when, seconds)
        self._aligned = False
        self._last_step: float | None = None

    def target(self, now: float) -> float | None:
        """The delay the voice needs now (median of the window); None before any reading."""
        mic = self._mic
        audio_ms = mic.latency_ms() if mic is not None else None
        if audio_ms is not None and mic is not None:
            self._readings.append((now, (audio_ms + mic.lag_ms()) / 1000))
        while self._readings and self._readings[0][0] < now - self.WINDOW_S:
            self._readings.popleft()
        if not self._readings:
            return None
        values = sorted(seconds for _, seconds in self._readings)
        return max(0.0, values[len(values) // 2] + self._offset)

    def step(self, now: float) -> None:
        """One reading, and the camera's delay moved towards the target."""
        target = self.target(now)
        last, self._last_step = self._last_step, now
        # A late step (a stalled loop) moves a little more, never more than a second's worth.
        since = min(now - last, 1.0) if last is not None else self.EVERY_S
        if target is None:
            return
        delay = self._webcam.slot.delay
        stats = self._webcam.stats
        stats.av_target_ms = round(target * 1000, 1)
        miss = target - delay
        if not self._aligned or abs(miss) >= self.JUMP_S:
            self._aligned = True
            self._webcam.set_delay(target)
        elif abs(miss) >= self.DEADBAND_S:
            move = min(abs(miss), self.SLEW * since)
            self._webcam.set_delay(delay + (move if miss > 0 else -move))
        # + = the picture late: the delay applied beyond what the voice needs now.
        stats.av_offset_ms = round((self._webcam.slot.delay - target) * 1000, 1)

    async def run(self) -> None:
        while True:
            self.step(time.perf_counter())
            await asyncio.sleep(self.EVERY_S)
