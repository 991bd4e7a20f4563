"""Frame types that travel from a source to the sinks.

Frames are views: ``data`` is a 1-D ``uint8`` (video) or ``int16`` (audio) numpy array over a
buffer the producer will not touch again.  Nobody copies a frame in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
I16 = npt.NDArray[np.int16]


@dataclass(frozen=True, slots=True)
class VideoFrame:
    """One tightly packed I420 picture (Y plane, then U, then V; stride = width)."""

    width: int
    height: int
    data: U8
    # perf_counter() seconds when the frame reached the bridge (for latency accounting).
    arrived: float
    # Source timestamp in microseconds, if the source has one (LiveKit's timestamp_us).
    timestamp_us: int = 0

    @property
    def chroma_size(self) -> tuple[int, int]:
        return (self.width + 1) // 2, (self.height + 1) // 2

    def planes(self) -> tuple[U8, U8, U8]:
        """Y, U, V as 2-D views (no copy)."""
        w, h = self.width, self.height
        cw, ch = self.chroma_size
        y = self.data[: w * h].reshape(h, w)
        u = self.data[w * h : w * h + cw * ch].reshape(ch, cw)
        v = self.data[w * h + cw * ch : w * h + 2 * cw * ch].reshape(ch, cw)
        return y, u, v


def i420_size(width: int, height: int) -> int:
    return width * height + 2 * ((width + 1) // 2) * ((height + 1) // 2)


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Mono signed 16-bit PCM at ``sample_rate``."""

    samples: I16
    sample_rate: int
    # perf_counter() seconds when the chunk's FIRST sample reached the bridge (a source that
    # gathers audio into larger chunks dates them back): lip sync is measured from it.
    arrived: float
    # How much later than the picture of the same instant this audio reached the bridge
    # (the source's receive paths hold voice and picture apart); 0 when unknown.  The camera
    # waits that much longer (bridge/sinks/av_align.py).
    lag: float = 0.0

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate
