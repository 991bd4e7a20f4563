"""The mic sink's writer loop against a fake output (no sound server): it keeps one output
open while the devices allow, lets go of it when they go or are made anew, and reopens it
after a failure."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import numpy as np
import pytest

from bridge.backoff import Backoff
from bridge.config import MicrophoneConfig
from bridge.devices.pulse_modules import REMOVED, DeviceState
from bridge.devices.pulse_stream import BLOCK, RATE
from bridge.errors import DeviceUnavailable
from bridge.media.frames import I16, AudioChunk
from bridge.sinks.mic import MicSink
from tests.kit.eventually import eventually


class FakeOutputs:
    """Opens numbered fake outputs; each writes at the device's pace (10 ms a block)."""

    def __init__(self) -> None:
        self.opened = 0
        self.closed: list[int] = []
        self.fail_open = 0  # how many opens fail before one works
        self.fail_write_of: int | None = None  # this output's next write fails
        self.written: list[I16] = []

    def open(self) -> FakeOutput:
        if self.fail_open:
            self.fail_open -= 1
            raise DeviceUnavailable("microphone", "no such sink", "heygen-bridge devices up")
        self.opened += 1
        return FakeOutput(self, self.opened)


class FakeOutput:
    def __init__(self, outputs: FakeOutputs, number: int) -> None:
        self.outputs = outputs
        self.number = number
        self.name = f"fake #{number}"

    def write(self, block: I16) -> None:
        if self.outputs.fail_write_of == self.number:
            self.outputs.fail_write_of = None
            raise DeviceUnavailable("microphone", "lost the sound server", "pulseaudio --start")
        self.outputs.written.append(block)
        time.sleep(BLOCK / RATE)

    def latency_ms(self) -> float | None:
        return 25.0

    def close(self) -> None:
        self.outputs.closed.append(self.number)


def ready(generation: int) -> DeviceState:
    return DeviceState(True, generation, "sink", "mic", server="PulseAudio", modules=(1, 2))


@pytest.fixture
def outputs(monkeypatch: pytest.MonkeyPatch) -> FakeOutputs:
    monkeypatch.setattr("bridge.sinks.mic.RETRY", Backoff(first=0.01, cap=0.05))
    return FakeOutputs()


@pytest.fixture
async def mic(outputs: FakeOutputs) -> AsyncIterator[MicSink]:
    sink = MicSink(MicrophoneConfig(), open_output=outputs.open)
    sink.start()
    yield sink
    await sink.aclose()
    assert sink.stats.state == "stopped" and sink.writer_error is None


async def test_writes_silence_then_the_audio_it_was_given(
    mic: MicSink, outputs: FakeOutputs
) -> None:
    await eventually(lambda: mic.stats.state == "silent", what="writing")
    assert mic.stats.output == "fake #1"
    mic.put(AudioChunk(np.full(BLOCK * 10, 7, np.int16), RATE, time.perf_counter()))
    await eventually(lambda: mic.stats.seconds_audio >= 0.1, what="the audio written")
    assert any(block.any() and block[0] == 7 for block in list(outputs.written))
    assert mic.stats.chunks_in == 1 and mic.stats.seconds_in == pytest.approx(0.1)
    await eventually(lambda: mic.latency_ms() is not None, what="a latency")


async def test_a_failed_write_reopens_the_output(mic: MicSink, outputs: FakeOutputs) -> None:
    await eventually(lambda: mic.stats.state == "silent", what="writing")
    outputs.fail_write_of = 1
    await eventually(lambda: outputs.opened == 2, what="reopened")
    await eventually(lambda: mic.stats.state == "silent", what="writing again")
    assert outputs.closed[:1] == [1]
    assert mic.stats.reconnects == 1 and mic.stats.output == "fake #2"


async def test_a_failed_open_is_retried_and_says_how_to_fix(outputs: FakeOutputs) -> None:
    outputs.fail_open = 2
    sink = MicSink(MicrophoneConfig(), open_output=outputs.open)
    sink.start()
    try:
        await eventually(lambda: sink.stats.state == "silent", what="opened at the third try")
        assert outputs.opened == 1 and sink.stats.fix is None
    finally:
        await sink.aclose()


async def test_it_follows_the_devices(mic: MicSink, outputs: FakeOutputs) -> None:
    mic.on_devices(DeviceState(False, 0, "sink", "mic", reason="not set up yet"))
    await eventually(lambda: outputs.closed == [1], what="the first stream let go")
    mic.on_devices(ready(1))
    await eventually(lambda: outputs.opened == 2, what="opened when the devices exist")
    mic.on_devices(ready(2))  # made anew: the old stream may have moved to the speakers
    await eventually(lambda: outputs.closed == [1, 2] and outputs.opened == 3, what="reopened")
    mic.on_devices(DeviceState(False, 2, "sink", "mic", reason=REMOVED))
    await eventually(lambda: outputs.closed == [1, 2, 3], what="let go on removal")
    assert mic.stats.state == "unavailable" and mic.stats.last_error == REMOVED
    assert mic.latency_ms() is None
    mic.put(AudioChunk(np.ones(BLOCK, np.int16), RATE, time.perf_counter()))
    assert mic.stats.dropped_chunks == 1
    assert outputs.opened == 3  # not reopened while the devices are gone
