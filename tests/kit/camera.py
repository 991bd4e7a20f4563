"""A pyvirtualcam backend that records what the bridge's camera writes (no kernel needed).

Registered as backend ``recording``; each camera opened with ``device=NAME`` records into
``RECORDINGS[NAME]``.  Per frame it keeps the write time, the decoded stamp and the colour of
the test patch.  In a bridge running as its own process (tests/kit/bridge_child.py) it also writes
them, one JSON line per frame, to ``$HB_RECORD_DIR/NAME.jsonl``; :func:`read_recording` reads
them back.  Write times are ``time.perf_counter()``, which is CLOCK_MONOTONIC here: the same
clock in every process.

A hung camera on demand: while the file ``$HB_RECORD_DIR/NAME.hang`` exists, ``send()`` blocks
(as a driver stuck in a write does); removing it releases the writer.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
import pyvirtualcam
from pyvirtualcam.util import encode_fourcc

from bridge.media.frames import U8
from bridge.synthetic import stamp as marker


@dataclass
class Written:
    at: float
    stamp: marker.Stamp | None  # None: no stamp (the slate)
    patch_rgb: tuple[float, float, float]  # the colour test patch, back in RGB


@dataclass
class Recording:
    width: int
    height: int
    fourcc: int
    frames: list[Written] = field(default_factory=list)
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def since(self, t: float) -> list[Written]:
        with self.lock:
            return [f for f in self.frames if f.at >= t]


RECORDINGS: dict[str, Recording] = {}
YUYV = encode_fourcc(pyvirtualcam.PixelFormat.YUYV.value)
HANG_POLL_S = 0.02  # how often a hung send() looks whether it is released


class RecordingBackend:
    def __init__(
        self, *, width: int, height: int, fps: float, fourcc: int, device: str | None, **kw: Any
    ) -> None:
        assert device is not None, "give the recording camera a device name"
        self._device = device
        self.recording = Recording(width, height, fourcc)
        RECORDINGS[device] = self.recording
        folder = os.environ.get("HB_RECORD_DIR")
        self._file: IO[str] | None = None
        self._hang: Path | None = None
        if folder:
            self._hang = Path(folder) / f"{device}.hang"
            self._file = (Path(folder) / f"{device}.jsonl").open("w", buffering=1)
            self._file.write(
                json.dumps({"width": width, "height": height, "fourcc": fourcc}) + "\n"
            )
        self._patch_box = marker.test_patch_box(width, height)

    def send(self, frame: U8) -> None:
        while self._hang is not None and self._hang.exists():
            time.sleep(HANG_POLL_S)
        at = time.perf_counter()
        w, h = self.recording.width, self.recording.height
        if self.recording.fourcc == YUYV:
            luma = marker.luma_of_yuyv(frame, w, h)
            patch = marker.patch_rgb_from_yuyv(frame, w, h, self._patch_box)
        else:
            luma = marker.luma_of_i420(frame, w, h)
            patch = marker.patch_rgb_from_i420(frame, w, h, self._patch_box)
        written = Written(at=at, stamp=marker.decode(luma), patch_rgb=patch)
        if self._file is not None:
            stamp = written.stamp
            row = [
                at,
                *((stamp.frame, stamp.sent_ms, stamp.sync) if stamp else (None,) * 3),
                *patch,
            ]
            self._file.write(json.dumps(row) + "\n")
        with self.recording.lock:
            self.recording.frames.append(written)

    def close(self) -> None:
        self.recording.closed = True
        if self._file is not None:
            self._file.close()

    def device(self) -> str:
        return self._device

    def native_fourcc(self) -> int | None:
        return self.recording.fourcc


def read_recording(path: Path) -> Recording:
    """What a camera in another process wrote (see the module docstring)."""
    lines = path.read_text().splitlines()
    head = json.loads(lines[0])
    recording = Recording(head["width"], head["height"], head["fourcc"])
    for line in lines[1:]:
        at, frame, sent_ms, sync, r, g, b = json.loads(line)
        stamp = marker.Stamp(frame, sent_ms, sync) if frame is not None else None
        recording.frames.append(Written(at=at, stamp=stamp, patch_rgb=(r, g, b)))
    return recording


@pytest.fixture(scope="session", autouse=True)
def recording_camera() -> dict[str, Recording]:
    pyvirtualcam.register_backend("recording", RecordingBackend)
    return RECORDINGS
