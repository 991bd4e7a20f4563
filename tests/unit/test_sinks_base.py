"""The sinks' shared parts: the status snapshot derived from the stats dataclass, the writer
thread's lifecycle and its error boundary, and both sinks meeting the Sink protocol."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from bridge.config import CameraConfig, MicrophoneConfig
from bridge.sinks.base import NOT_IN_SNAPSHOT, Sink, ThreadedSink, snapshot_of
from bridge.sinks.mic import MicSink, MicStats
from bridge.sinks.webcam import CameraStats, WebcamSink

# What /v1/status showed for each sink before the snapshot was derived (the web status and
# the e2e tests read these keys).
MIC_KEYS = [
    "state", "output", "sink", "source", "server", "chunks_in", "seconds_in", "bad_chunks",
    "dropped_chunks", "dropped_ms", "lost_ms", "seconds_written", "seconds_audio", "underruns",
    "overruns", "overrun_dropped_ms", "trims", "trimmed_ms", "buffer_ms", "target_ms",
    "output_latency_ms", "latency_ms", "lag_ms", "reconnects", "late_writes", "max_write_gap_ms",
    "last_error", "fix",
]  # fmt: skip
CAMERA_KEYS = {
    "state", "device", "engine", "showing", "frames_in", "frames_out", "repeats",
    "slate_frames", "dropped", "max_gap_ms", "max_late_ms", "delay_ms", "av_target_ms",
    "av_offset_ms", "latency_ms_p50", "latency_ms_p95", "last_error", "fix",
}  # fmt: skip


@dataclass
class Counters:
    name: str = "x"
    count: int = 3
    seconds: float = 1.23456
    wait_ms: float = 12.3456
    unknown_ms: float | None = None
    window: list[float] = field(default_factory=lambda: [1.0], metadata=NOT_IN_SNAPSHOT)


def test_snapshot_of_names_every_field_and_rounds_for_reading() -> None:
    snap = snapshot_of(Counters())
    assert list(snap) == ["name", "count", "seconds", "wait_ms", "unknown_ms"]
    assert snap == {"name": "x", "count": 3, "seconds": 1.23, "wait_ms": 12.3, "unknown_ms": None}


def test_mic_snapshot_keeps_the_status_keys_and_roundings() -> None:
    stats = MicStats(seconds_in=2.345678, dropped_ms=10.06, latency_ms=None, output_latency_ms=7.77)
    snap = stats.snapshot()
    assert list(snap) == MIC_KEYS
    assert snap["seconds_in"] == 2.35 and snap["dropped_ms"] == 10.1
    assert snap["output_latency_ms"] == 7.8 and snap["latency_ms"] is None
    assert snap["state"] == "starting"


def test_camera_snapshot_keeps_the_status_keys_and_gives_latency_quantiles() -> None:
    stats = CameraStats(max_gap_ms=33.333, delay_ms=120.5)
    assert stats.snapshot()["latency_ms_p50"] is None
    stats.latencies_ms.extend(float(n) for n in range(1, 101))
    snap = stats.snapshot()
    assert set(snap) == CAMERA_KEYS | {"write_failures"}
    assert snap["max_gap_ms"] == 33.3 and snap["delay_ms"] == 120.5
    assert snap["latency_ms_p50"] == 51.0 and snap["latency_ms_p95"] == 96.0
    assert "latencies_ms" not in snap


class Blocking(ThreadedSink):
    """A writer that blocks on an event until woken, like the sinks' writers do."""

    def __init__(self, *, fail: bool = False) -> None:
        self.woken = threading.Event()
        self.released = False
        self.fail = fail
        super().__init__("test-writer", wake=self.woken.set)

    def _run(self) -> None:
        if self.fail:
            raise ValueError("the writer broke")
        while not self._stopping.is_set():
            self.woken.wait(10)

    def _release(self) -> None:
        self.released = True


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "test-writer"]


async def test_aclose_wakes_and_joins_the_named_writer_then_releases() -> None:
    sink = Blocking()
    sink.start()
    assert len(writer_threads()) == 1
    await asyncio.wait_for(sink.aclose(), 5)  # wake() ends the 10 s wait at once
    assert writer_threads() == []
    assert sink.released and sink.writer_error is None


def test_a_writer_that_raises_is_logged_at_error_and_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = Blocking(fail=True)
    with caplog.at_level(logging.ERROR, logger="bridge.sinks.base"):
        sink.start()
        sink.close()
    assert isinstance(sink.writer_error, ValueError)
    [record] = caplog.records
    assert "test-writer stopped by ValueError: the writer broke" in record.getMessage()
    assert record.exc_info is not None
    assert sink.released


def test_both_sinks_are_sinks() -> None:
    sinks: list[Sink[Any]] = [
        WebcamSink(CameraConfig(backend="recording", device="unit-protocol", width=64, height=36)),
        MicSink(MicrophoneConfig()),
    ]
    assert [s.stats.snapshot()["state"] for s in sinks] == ["starting", "starting"]
