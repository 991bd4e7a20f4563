"""The webcam sink on its own: steady writes, repeat then slate, and no device is no crash."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import pyvirtualcam

from bridge.config import CameraConfig
from bridge.media.frames import VideoFrame
from bridge.sinks.webcam import UNEXPECTED_FAILURES_LIMIT, WebcamSink
from bridge.synthetic import stamp as marker
from bridge.synthetic.face import FaceRenderer
from tests.kit.camera import RECORDINGS
from tests.kit.eventually import eventually_blocking

FPS = 30.0


def camera(name: str, **overrides: Any) -> CameraConfig:
    base: dict[str, Any] = {
        "backend": "recording",
        "device": name,
        "width": 640,
        "height": 360,
        "fps": FPS,
        "slate_after": 0.3,
    }
    return CameraConfig(**{**base, **overrides})


@pytest.fixture
def renderer() -> FaceRenderer:
    return FaceRenderer(640, 360)


def feed(sink: WebcamSink, face: FaceRenderer, seconds: float, fps: float = FPS) -> int:
    """Frames at ``fps`` for ``seconds`` from another thread, as a source would."""
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        data = face.render(mouth_open=0, caption="", t=0, stamp=marker.Stamp(count, 0)).copy()
        sink.put(VideoFrame(640, 360, data, arrived=time.perf_counter()))
        count += 1
        time.sleep(max(0.0, start + count / fps - time.perf_counter()))
    return count


@pytest.fixture
def sink_factory() -> Iterator[list[WebcamSink]]:
    sinks: list[WebcamSink] = []
    yield sinks
    for sink in sinks:
        sink.close()


def test_fresh_frames_in_order_then_repeats_then_slate(
    renderer: FaceRenderer, sink_factory: list[WebcamSink]
) -> None:
    sink = WebcamSink(camera("unit-steady"))
    sink_factory.append(sink)
    sink.start()
    sent = feed(sink, renderer, 1.5)
    time.sleep(1.0)  # the source stalls: last frame for 0.3 s, then the slate
    recording = RECORDINGS["unit-steady"]
    frames = recording.since(0)
    numbers = [f.stamp.frame for f in frames if f.stamp is not None]
    assert numbers == sorted(numbers) and numbers[-1] == sent - 1
    assert frames[-1].stamp is None  # the slate
    stats = sink.stats.snapshot()
    assert stats["state"] == "writing" and stats["showing"] == "slate"
    assert stats["repeats"] >= 5 and stats["slate_frames"] >= 10
    rate = len(frames) / (frames[-1].at - frames[0].at)
    assert rate == pytest.approx(FPS, rel=0.15)


def test_a_faster_source_is_paced_down(
    renderer: FaceRenderer, sink_factory: list[WebcamSink]
) -> None:
    sink = WebcamSink(camera("unit-fast"))
    sink_factory.append(sink)
    sink.start()
    feed(sink, renderer, 1.5, fps=90)
    frames = RECORDINGS["unit-fast"].since(0)
    assert len(frames) / (frames[-1].at - frames[0].at) < FPS * 1.3
    assert sink.stats.dropped > 0  # latest wins: the extra frames were dropped, counted


def test_without_a_device_it_keeps_running_and_says_how_to_fix(
    renderer: FaceRenderer, sink_factory: list[WebcamSink]
) -> None:
    sink = WebcamSink(camera("ignored", backend=None, device=None, card_label="Nowhere Cam"))
    sink_factory.append(sink)
    sink.start()
    feed(sink, renderer, 0.5)
    stats = sink.stats.snapshot()
    assert stats["state"] == "unavailable"
    assert "no v4l2loopback device labelled 'Nowhere Cam'" in stats["last_error"]
    assert "sudo modprobe v4l2loopback" in stats["fix"] and "Nowhere Cam" in stats["fix"]
    assert stats["frames_out"] > 5  # the snapshot still shows the avatar
    assert sink.current_frame().size == 640 * 360 * 2


class FlakyBackend:
    """A camera whose writes fail now and then, as a yanked device would."""

    sends = 0

    def __init__(self, **kw: Any) -> None:
        self._device = str(kw["device"])

    def send(self, frame: Any) -> None:
        FlakyBackend.sends += 1
        if FlakyBackend.sends == 5:
            raise TypeError("the driver fell over")

    def close(self) -> None:
        pass

    def device(self) -> str:
        return self._device

    def native_fourcc(self) -> None:
        return None


def test_a_failing_device_write_does_not_stop_the_camera(
    renderer: FaceRenderer, sink_factory: list[WebcamSink], monkeypatch: pytest.MonkeyPatch
) -> None:
    pyvirtualcam.register_backend("flaky", FlakyBackend)
    monkeypatch.setattr("bridge.sinks.webcam.DEVICE_RETRY_S", 0.1)
    sink = WebcamSink(camera("flaky-cam", backend="flaky"))
    sink_factory.append(sink)
    sink.start()
    feed(sink, renderer, 1.0)
    assert sink.stats.last_error == "the driver fell over"
    assert sink.stats.write_failures == 1
    assert sink.stats.state == "writing"  # reopened
    assert FlakyBackend.sends > 15
    assert any(t.name == "webcam-writer" for t in threading.enumerate())


class BrokenBackend(FlakyBackend):
    """A camera whose every write fails with ``error``."""

    error: type[Exception] = TypeError

    def send(self, frame: Any) -> None:
        raise self.error("broken, every time")


def writer_alive() -> bool:
    return any(t.name == "webcam-writer" for t in threading.enumerate())


def test_a_device_error_that_keeps_coming_is_survived(
    sink_factory: list[WebcamSink], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(BrokenBackend, "error", RuntimeError)  # what native backends raise
    pyvirtualcam.register_backend("broken-device", BrokenBackend)
    monkeypatch.setattr("bridge.sinks.webcam.DEVICE_RETRY_S", 0.05)
    sink = WebcamSink(camera("broken-device-cam", backend="broken-device"))
    sink_factory.append(sink)
    sink.start()
    eventually_blocking(
        lambda: sink.stats.write_failures,
        until=lambda n: n > UNEXPECTED_FAILURES_LIMIT,
        within=10,
        what="failures counted",
    )
    assert writer_alive() and sink.writer_error is None
    assert sink.stats.last_error == "broken, every time"


def test_an_unknown_error_that_keeps_coming_ends_the_writer(
    sink_factory: list[WebcamSink],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pyvirtualcam.register_backend("broken", BrokenBackend)  # TypeError: a bug
    monkeypatch.setattr("bridge.sinks.webcam.DEVICE_RETRY_S", 0.05)
    sink = WebcamSink(camera("broken-cam", backend="broken"))
    sink_factory.append(sink)
    sink.start()
    eventually_blocking(writer_alive, until=lambda alive: not alive, within=10, what="its end")
    assert sink.stats.state == "failed"
    assert sink.stats.write_failures == UNEXPECTED_FAILURES_LIMIT
    assert isinstance(sink.writer_error, TypeError)
    assert any(
        r.levelno == logging.ERROR and "webcam-writer stopped by TypeError" in r.getMessage()
        for r in caplog.records
    )


def test_a_delay_holds_every_frame_back(
    renderer: FaceRenderer, sink_factory: list[WebcamSink]
) -> None:
    sink = WebcamSink(camera("unit-delay"))
    sink_factory.append(sink)
    sink.set_delay(0.2)
    sink.start()
    arrivals: dict[int, float] = {}
    start = time.perf_counter()
    count = 0
    while time.perf_counter() - start < 1.0:
        data = renderer.render(mouth_open=0, caption="", t=0, stamp=marker.Stamp(count, 0)).copy()
        arrivals[count] = time.perf_counter()
        sink.put(VideoFrame(640, 360, data, arrived=arrivals[count]))
        count += 1
        time.sleep(max(0.0, start + count / FPS - time.perf_counter()))
    time.sleep(0.3)
    shown = {}
    for written in RECORDINGS["unit-delay"].since(start):
        if written.stamp is not None and written.stamp.frame not in shown:
            shown[written.stamp.frame] = written.at
    delays = [shown[n] - arrivals[n] for n in shown]
    assert len(shown) > FPS * 0.6
    assert min(delays) >= 0.2  # never early
    assert sorted(delays)[len(delays) // 2] < 0.2 + 2 / FPS  # and not much later
    assert sink.stats.snapshot()["delay_ms"] == 200.0
