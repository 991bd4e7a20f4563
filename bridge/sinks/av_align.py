"""Lip sync at the sinks: the camera waits as long as the voice takes to reach the speakers.

:class:`AvAligner` couples the two sinks: every ``EVERY_S`` it reads
:meth:`MicSink.latency_ms <bridge.sinks.mic.MicSink.latency_ms>` and, when the target moved by
``STEP_S`` or more, calls :meth:`WebcamSink.set_delay <bridge.sinks.webcam.WebcamSink.set_delay>`.
It runs as a task of the daemon's TaskGroup until cancelled.
"""

from __future__ import annotations

import asyncio
from collections import deque

from bridge.sinks.mic import MicSink
from bridge.sinks.webcam import WebcamSink


class AvAligner:
    """Delays the camera by the audio path's latency, so lips and voice meet at the sinks.

    The audio path (jitter buffer + sound server) is the slower one; its latency is measured
    by the mic sink.  ``microphone.av_offset_ms`` is added (positive: the voice later, so the
    picture waits longer).  The median of the last few readings is followed, and changes
    smaller than ``STEP_S`` are ignored, so the picture does not stutter with every wobble of
    the audio buffer (a stalled sound server makes it jump for a moment).
    """

    EVERY_S = 0.25
    STEP_S = 0.008
    WINDOW = 5

    def __init__(self, webcam: WebcamSink, mic: MicSink | None, offset_ms: int) -> None:
        self._webcam = webcam
        self._mic = mic
        self._offset = offset_ms / 1000
        self._readings: deque[float] = deque(maxlen=self.WINDOW)

    def target(self) -> float:
        audio_ms = self._mic.latency_ms() if self._mic is not None else None
        if audio_ms is not None:
            self._readings.append(audio_ms / 1000)
        audio = sorted(self._readings)[len(self._readings) // 2] if self._readings else 0.0
        return max(0.0, audio + self._offset)

    async def run(self) -> None:
        while True:
            target = self.target()
            if abs(target - self._webcam.slot.delay) >= self.STEP_S:
                self._webcam.set_delay(target)
            await asyncio.sleep(self.EVERY_S)
