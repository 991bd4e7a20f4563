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

:class:`ArrivalProbe` (in the bridge's process, between the source and the sinks) notes when
each click and each stamped frame reached the bridge; :func:`split` then divides every
latency into the part before the bridge (encode, SFU, jitter buffers, decode, SDK) and the
bridge's own part (arrival → camera write including the alignment delay; arrival → out of
the mic).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import numpy as np

from bridge.media.frames import AudioChunk, VideoFrame
from bridge.synthetic import stamp as marker
from tests.kit.camera import Written
from tests.kit.pulse import RATE, Recorder

CLICK_LEVEL = 6000  # a sync click is a full-scale 3 kHz burst; the avatar is silent otherwise
FPS = 30


@dataclass(frozen=True, slots=True)
class AvSync:
    video_ms: list[float]  # every shown frame's latency
    audio_ms: list[float]  # every click's latency
    offsets_ms: list[float]  # per click: its frames' latency − its own
    # per click: when it came out of the mic (perf_counter) and when it was sent (wall)
    heard: list[float] = field(default_factory=list)
    sent: list[float] = field(default_factory=list)

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
    audio, offsets, heard_at, sent_of = [], [], [], []
    for heard in clicks(recorder):
        heard_wall = heard + to_wall
        # Which second's click: the one sent about as long ago as the picture takes.
        k = round((heard_wall - expected - base) / (slope * FPS))
        sent_at = base + slope * k * FPS
        latency = (heard_wall - sent_at) * 1000
        around = [(at - s) * 1000 for at, s in shown.values() if abs(s - sent_at) <= 0.5]
        audio.append(latency)
        heard_at.append(heard)
        sent_of.append(sent_at)
        if around:
            offsets.append(statistics.median(around) - latency)
    return AvSync(video, audio, offsets, heard_at, sent_of)


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


class ArrivalProbe:
    """Notes when each click and each stamped frame reached the bridge (perf_counter).

    Wrap the bridge's media handlers with :meth:`video` and :meth:`audio` (they pass every
    frame and chunk on).  A frame's arrival is its ``arrived`` stamp; a click's, its chunk's
    ``arrived`` (the chunk's first sample) plus the samples before the click.
    """

    def __init__(self) -> None:
        self.clicks: list[float] = []
        self.frames: dict[int, float] = {}
        self.decode_s = 0.0  # the probe's own cost (stamp decoding), for the report

    def video(self, frame: VideoFrame) -> None:
        c0 = time.thread_time()
        w, h = frame.width, frame.height
        found = marker.decode(frame.data[: w * h].reshape(h, w)[: h // 4, : w // 2])
        if found is not None:
            self.frames.setdefault(found.frame, frame.arrived)
        self.decode_s += time.thread_time() - c0

    def audio(self, chunk: AudioChunk) -> None:
        loud = np.flatnonzero(np.abs(chunk.samples.astype(np.int32)) > CLICK_LEVEL)
        if loud.size == 0:
            return
        at = chunk.arrived + int(loud[0]) / chunk.sample_rate
        if not self.clicks or at - self.clicks[-1] > 0.5:
            self.clicks.append(at)


@dataclass(frozen=True, slots=True)
class Split:
    """Each path's latency in two parts, ms: before the bridge, and the bridge's own."""

    audio_up_ms: list[float]  # click sent → arrived at the bridge
    audio_bridge_ms: list[float]  # arrived → out of the mic
    video_up_ms: list[float]  # frame sent → arrived at the bridge
    video_bridge_ms: list[float]  # arrived → camera write (alignment delay included)
    # per click: when it arrived (perf_counter), and its upstream lag behind the picture
    # (its sent → arrived less that of the frames sent within 0.5 s of it, median)
    click_arrivals: list[float] = field(default_factory=list)
    diffs_ms: list[float] = field(default_factory=list)
    # per click, alike: its own bridge share, and that of the frames around it (median)
    click_bridge_ms: list[float] = field(default_factory=list)
    frames_bridge_ms: list[float] = field(default_factory=list)


def split(sync: AvSync, frames: list[Written], probe: ArrivalProbe, to_wall: float) -> Split:
    """Divide the latencies of :func:`measure` at the bridge's door (see :class:`ArrivalProbe`)."""
    video_up, video_bridge = [], []
    frame_up: list[tuple[float, float, float]] = []  # (sent, up ms, bridge ms)
    seen: set[int] = set()
    for written in frames:
        stamp = written.stamp
        if stamp is None or stamp.frame in seen or stamp.frame not in probe.frames:
            continue
        seen.add(stamp.frame)
        arrived = probe.frames[stamp.frame]
        now_ms = time.time() * 1000
        sent_ms = now_ms - ((now_ms - stamp.sent_ms) % 2**32)
        video_up.append((arrived + to_wall) * 1000 - sent_ms)
        video_bridge.append((written.at - arrived) * 1000)
        frame_up.append((sent_ms / 1000, video_up[-1], video_bridge[-1]))
    arrivals = np.array(probe.clicks)
    audio_up, audio_bridge, click_arrivals, diffs = [], [], [], []
    click_bridge, frames_bridge = [], []
    for heard, sent in zip(sync.heard, sync.sent, strict=True):
        before = arrivals[(arrivals <= heard) & (arrivals > heard - 1.0)]
        if before.size:
            arrived = float(before[-1])
            audio_up.append((arrived + to_wall - sent) * 1000)
            audio_bridge.append((heard - arrived) * 1000)
            around = [(up, own) for s, up, own in frame_up if abs(s - sent) <= 0.5]
            if around:
                click_arrivals.append(arrived)
                diffs.append(audio_up[-1] - statistics.median(up for up, _ in around))
                click_bridge.append(audio_bridge[-1])
                frames_bridge.append(statistics.median(own for _, own in around))
    return Split(
        audio_up,
        audio_bridge,
        video_up,
        video_bridge,
        click_arrivals,
        diffs,
        click_bridge,
        frames_bridge,
    )
