"""How long libwebrtc held each of the avatar's tracks before the bridge got it, from the
tracks' own RTC statistics (inbound-rtp, cumulative counters).

Audio and video reach the bridge through different receive paths: audio through NetEq's
jitter buffer, video through the frame buffer and the decoder.  Each adapts its delay to the
jitter it sees (a loaded machine is jitter too), so the voice reaches the bridge after the
picture of the same instant by an amount that differs from session to session and moves
within one: measured 2-34 ms at p50 per session, and swinging by 60 ms within one disturbed
session (docs/benchmarks.md, "Lip sync in every run").  The bridge aligns what it writes
(:mod:`bridge.sinks.av_align`); this module tells it how much later the voice came in.

Per track, over the last window: audio, ``Δjitter_buffer_delay / Δjitter_buffer_emitted_count``
(the mean wait of a sample in NetEq); video, ``Δtotal_processing_delay / Δframes_decoded``
(first packet received → decoded, the mean per frame).  :class:`ReceiveDelay` keeps the
counters and turns each new reading into the window's mean; :func:`voice_lag_ms` turns the
two into the voice's lag.  Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["audio", "video"]
# A window needs this many samples (audio) or frames (video) to mean something; fewer (a
# stalled track) keeps the last figure.
MIN_COUNT = {"audio": 4800, "video": 5}
# The two means differ by more than the voice's real lag behind the picture: NetEq's figure is
# the mean over every sample of a 20 ms packet (its first sample, the one lip sync is about,
# waits about 10 ms less), and the two count from different points (a packet's arrival; a
# frame's first packet).  Measured over 7 sessions on the project machine, the difference
# exceeded the voice's measured lag by 13 ms at the median (0.5-20 ms per session), while it
# followed the lag's swings within a session to 1.5-8.5 ms (p90-p10) where the lag itself
# swung by up to 62 ms.
STATS_BIAS_MS = 13.0


def voice_lag_ms(audio_ms: float | None, video_ms: float | None) -> float:
    """How much later than the picture of the same instant the voice reaches the bridge, from
    the two tracks' receive delays; 0 while either is unknown."""
    if audio_ms is None or video_ms is None:
        return 0.0
    return audio_ms - video_ms - STATS_BIAS_MS


@dataclass(frozen=True, slots=True)
class Counters:
    """A track's cumulative receive delay: seconds summed over ``count`` samples or frames."""

    seconds: float
    count: int


def counters(kind: Kind, stats: Iterable[Any]) -> Counters | None:
    """The inbound-rtp counters in a track's ``get_stats()`` answer (``RtcStats`` messages);
    None when there is no inbound-rtp entry yet."""
    for entry in stats:
        if entry.WhichOneof("stats") != "inbound_rtp":
            continue
        inbound = entry.inbound_rtp.inbound
        if kind == "audio":
            return Counters(inbound.jitter_buffer_delay, inbound.jitter_buffer_emitted_count)
        return Counters(inbound.total_processing_delay, inbound.frames_decoded)
    return None


class ReceiveDelay:
    """One track's receive delay over the last window between two readings, in ms."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.ms: float | None = None
        self._last: Counters | None = None

    def update(self, now: Counters | None) -> float | None:
        """Take a new reading; the window's mean (or the last one while too little came)."""
        if now is None:
            return self.ms
        last = self._last
        if last is None or now.count < last.count:  # first reading, or a new stream
            self._last = now
            return self.ms
        count = now.count - last.count
        if count < MIN_COUNT[self.kind]:
            return self.ms
        self.ms = max(0.0, (now.seconds - last.seconds) / count * 1000)
        self._last = now
        return self.ms
