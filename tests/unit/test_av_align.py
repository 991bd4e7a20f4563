"""Lip sync: the camera's delay follows what the voice needs (the audio path's latency, the
voice's lag behind the picture, the configured offset), ignores a passing wobble, and moves
smoothly."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bridge.config import CameraConfig, MicrophoneConfig
from bridge.devices.pulse_stream import BLOCK, RATE
from bridge.media.frames import I16, AudioChunk
from bridge.sinks.av_align import AvAligner
from bridge.sinks.mic import MicSink
from bridge.sinks.webcam import WebcamSink
from tests.kit.eventually import eventually


class ScriptedMic(MicSink):
    """A mic sink whose measurements the test sets (no sound server needed for the aligner)."""

    def __init__(self) -> None:
        super().__init__(MicrophoneConfig(), open_output=lambda: pytest.fail("no output"))
        self.reading: float | None = None
        self.lag = 0.0

    def latency_ms(self) -> float | None:
        return self.reading

    def lag_ms(self) -> float:
        return self.lag


class PacedOutput:
    """A sound server's stream that takes a block every 10 ms and reports 25 ms of latency."""

    name = "paced"

    def write(self, block: I16) -> None:
        time.sleep(BLOCK / RATE)

    def latency_ms(self) -> float | None:
        return 25.0

    def close(self) -> None:
        pass


@pytest.fixture
def webcam() -> WebcamSink:
    return WebcamSink(CameraConfig(width=320, height=180))


def run(aligner: AvAligner, seconds: float, start: float = 0.0) -> float:
    """Step the aligner every EVERY_S for ``seconds``; returns the time reached."""
    now = start
    for _ in range(round(seconds / AvAligner.EVERY_S)):
        now += AvAligner.EVERY_S
        aligner.step(now)
    return now


def test_first_reading_sets_the_delay_at_once(webcam: WebcamSink) -> None:
    mic = ScriptedMic()
    mic.reading = 140.0
    aligner = AvAligner(webcam, mic, offset_ms=5)
    aligner.step(1.0)
    assert webcam.slot.delay == pytest.approx(0.145)
    assert webcam.stats.delay_ms == pytest.approx(145.0)
    assert webcam.stats.av_target_ms == pytest.approx(145.0)
    assert webcam.stats.av_offset_ms == pytest.approx(0.0)


async def test_the_voice_lag_the_source_reports_makes_the_picture_wait_longer(
    webcam: WebcamSink,
) -> None:
    mic = MicSink(MicrophoneConfig(), open_output=PacedOutput)
    mic.start()
    try:
        await eventually(lambda: mic.latency_ms() is not None, what="the mic measuring")
        silence = np.zeros(BLOCK * 4, np.int16)
        mic.put(AudioChunk(silence, RATE, time.perf_counter(), lag=0.03))
        aligner = AvAligner(webcam, mic, offset_ms=0)
        aligner.step(time.perf_counter())
        audio_ms = mic.latency_ms()
        assert audio_ms is not None and mic.lag_ms() == pytest.approx(30.0)
        # The buffer's wait moves as the writer runs: the delay is what the reading said then.
        assert webcam.slot.delay * 1000 >= 25.0 + 30.0
        assert webcam.stats.av_target_ms == pytest.approx(webcam.slot.delay * 1000, abs=0.1)
    finally:
        await mic.aclose()


def test_a_change_is_followed_smoothly_to_the_end(webcam: WebcamSink) -> None:
    mic = ScriptedMic()
    mic.reading = 140.0
    aligner = AvAligner(webcam, mic, offset_ms=0)
    now = run(aligner, 1.0)
    mic.lag = 40.0  # the voice now reaches the bridge 40 ms after the picture
    delays = []
    for _ in range(60):
        now = run(aligner, AvAligner.EVERY_S, now)
        delays.append(webcam.slot.delay)
    steps = [b - a for a, b in zip([0.140, *delays], delays, strict=False)]
    assert max(steps) <= AvAligner.SLEW * AvAligner.EVERY_S + 1e-9  # no jump: no stutter
    assert min(steps) >= 0  # never the wrong way, never past the target
    assert delays[-1] == pytest.approx(0.180)
    assert webcam.stats.av_offset_ms == pytest.approx(0.0)


def test_a_passing_wobble_does_not_move_the_picture(webcam: WebcamSink) -> None:
    mic = ScriptedMic()
    mic.reading = 150.0
    aligner = AvAligner(webcam, mic, offset_ms=0)
    now = run(aligner, 2.0)
    mic.reading = 400.0  # a stalled sound server, for three readings
    now = run(aligner, 3 * AvAligner.EVERY_S, now)
    mic.reading = 150.0
    run(aligner, 2.0, now)
    assert webcam.slot.delay == pytest.approx(0.150)


def test_a_new_session_far_off_is_met_at_once(webcam: WebcamSink) -> None:
    mic = ScriptedMic()
    mic.reading = 150.0
    aligner = AvAligner(webcam, mic, offset_ms=0)
    now = run(aligner, 2.0)
    mic.reading = 450.0
    run(aligner, 1.5, now)  # the window's median has flipped by then
    assert webcam.slot.delay == pytest.approx(0.450)


def test_without_a_reading_the_delay_stays(webcam: WebcamSink) -> None:
    aligner = AvAligner(webcam, ScriptedMic(), offset_ms=0)
    webcam.set_delay(0.1)
    run(aligner, 1.0)
    assert webcam.slot.delay == pytest.approx(0.1)
    assert webcam.stats.av_target_ms is None


def test_a_negative_target_means_no_delay(webcam: WebcamSink) -> None:
    mic = ScriptedMic()
    mic.reading = 50.0
    aligner = AvAligner(webcam, mic, offset_ms=-200)
    aligner.step(1.0)
    assert webcam.slot.delay == 0.0
