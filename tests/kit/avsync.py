"""Measuring the camera–mic offset at the sinks, from the simulator's marks.

The simulator (``simulate --sync-marks``) stamps every frame with its number and send time, and
clicks at every whole second of its media clock, aligned with frame ``k * fps``.  So:

- video latency of a frame = when the camera wrote it − when the simulator sent it;
- audio latency of click k = when it came out of the virtual mic − when frame ``k * fps`` was
  sent (from a straight-line fit of send time against frame number, so a dropped frame does
  not lose its click);
- the offset at click k = median latency of the frames sent within half a second of it −
  the click's latency; the result is the median over the clicks (positive: picture late).

Every shown frame counts for the video side, so a dropped or late mark frame cannot skew it;
comparing each click with the frames of its own moment keeps a passing stall on one path
from being compared with a calm moment on the other.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

from tests.kit.camera import Written
from tests.kit.pulse import RATE, Recorder

CLICK_LEVEL = 6000  # a sync click is a full-scale 3 kHz burst; the avatar is silent otherwise
FPS = 30


@dataclass(frozen=True, slots=True)
class AvSync:
    video_ms: list[float]  # every shown frame's latency
    audio_ms: list[float]  # every click's latency
    offsets_ms: list[float]  # per click: its frames' latency − its own

    @property
    def offset_ms(self) -> float:
        return statistics.median(self.offsets_ms)


def wall_offset() -> float:
    """Add this to a ``time.perf_counter()`` reading to get ``time.time()``."""
    return time.time() - time.perf_counter()


def measure(frames: list[Written], recorder: Recorder, to_wall: float) -> AvSync:
    now_ms = time.time() * 1000
    shown: dict[int, tuple[float, float]] = {}  # frame -> (written at, sent at), wall seconds
    for written in frames:
        if written.stamp is None or written.stamp.frame in shown:
            continue
        sent_ms = now_ms - ((now_ms - written.stamp.sent_ms) % 2**32)
        shown[written.stamp.frame] = (written.at + to_wall, sent_ms / 1000)
    numbers = np.array(sorted(shown), dtype=np.float64)
    sent = np.array([shown[int(n)][1] for n in numbers])
    slope, base = np.polyfit(numbers, sent, 1)
    video = [(at - sent_at) * 1000 for at, sent_at in shown.values()]
    expected = statistics.median(video) / 1000  # audio should be about as late
    audio, offsets = [], []
    for heard in clicks(recorder):
        heard_wall = heard + to_wall
        # Which second's click: the one sent about as long ago as the picture takes.
        k = round((heard_wall - expected - base) / (slope * FPS))
        sent_at = base + slope * k * FPS
        latency = (heard_wall - sent_at) * 1000
        around = [(at - s) * 1000 for at, s in shown.values() if abs(s - sent_at) <= 0.5]
        audio.append(latency)
        if around:
            offsets.append(statistics.median(around) - latency)
    return AvSync(video, audio, offsets)


def clicks(recorder: Recorder) -> list[float]:
    """When each click came out of the mic (perf_counter): its first loud sample."""
    samples = recorder.samples()
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > CLICK_LEVEL)
    found: list[float] = []
    last = -RATE
    for index in loud:
        if index - last > RATE // 2:
            heard = sample_time(recorder, int(index))
            if heard is not None:
                found.append(heard)
        last = int(index)
    return found


def sample_time(recorder: Recorder, index: int) -> float | None:
    """When sample ``index`` came out of the mic: the read that delivered it, less the
    samples after it in that read."""
    need = (index + 1) * 2
    for at, total in recorder.reads:
        if total >= need:
            return at - (total - need) / 2 / RATE
    return None
