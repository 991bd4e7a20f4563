"""`heygen-bridge run --demo` as a user runs it: a real process, real HTTP, no key, no network."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bridge.sim.livekit_server import free_port
from tests.kit.pulse import RATE, PrivatePulse, Recorder, window_rms


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        body: bytes = resp.read()
        return body


def post(url: str, body: bytes) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def caption_ink(jpeg: bytes) -> int:
    """Bright pixels in the caption strip (the bottom sixth of the picture)."""
    gray = np.asarray(Image.open(io.BytesIO(jpeg)).convert("L"))
    strip = gray[gray.shape[0] * 5 // 6 :]
    return int((strip > 200).sum())


@contextmanager
def demo_daemon(
    tmp_path: Path, *, microphone: str = "  enabled: false\n", env: dict[str, str] | None = None
) -> Iterator[str]:
    """``heygen-bridge run --demo`` as its own process; yields the control API's base URL."""
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        f"control:\n  port: {port}\nmicrophone:\n{microphone}"
        "camera:\n  width: 640\n  height: 360\n  card_label: no-such-camera-here\n"
    )
    log_path = tmp_path / "log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bridge", "--config", str(config), "run", "--demo"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            status = json.loads(get(f"{base}/v1/status"))
            if status["session"]["state"] == "live":
                break
        except OSError:
            pass
        time.sleep(0.2)
    else:
        proc.kill()
        raise AssertionError(log_path.read_text())
    try:
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log_path.read_text()
        assert "stopped" in log_path.read_text()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with demo_daemon(tmp_path_factory.mktemp("demo")) as base:
        yield base


def speak_and_wait(base: str, text: str) -> None:
    code, _ = post(f"{base}/v1/speak", json.dumps({"text": text}).encode())
    assert code == 202
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if json.loads(get(f"{base}/v1/status"))["speech"]["recent"][-1]["state"] == "done":
            return
        time.sleep(0.2)
    raise AssertionError("the demo avatar did not finish speaking")


def test_demo_speaks_through_the_virtual_mic(tmp_path: Path, pulse_server: PrivatePulse) -> None:
    mic = "  sink_name: demo_sink\n  source_name: demo_mic\n"
    with demo_daemon(tmp_path, microphone=mic, env=pulse_server.env()) as base:
        deadline = time.monotonic() + 15
        while (mic_status := json.loads(get(f"{base}/v1/status"))["microphone"])["state"] not in (
            "silent",
            "speaking",
        ):
            assert time.monotonic() < deadline, mic_status
            time.sleep(0.2)
        recorder = Recorder("demo_mic", env=pulse_server.env()).start()
        try:
            speak_and_wait(base, "Hello, you can hear me through the virtual microphone.")
        finally:
            recorder.stop()
        assert any("demo_mic" in args for _, _, args in pulse_server.modules())
    voice = recorder.samples()
    loud = window_rms(voice, RATE // 100) > 500  # 10 ms windows with speech in them
    assert loud.sum() > 100, f"{loud.sum() * 10} ms of voice"  # over a second of speech
    assert not any("demo_mic" in args for _, _, args in pulse_server.modules())  # removed


def test_demo_serves_its_avatar_and_speaks_with_captions(demo: str) -> None:
    status = json.loads(get(f"{demo}/v1/status"))
    assert status["provider"] == "demo"
    assert status["camera"]["state"] == "unavailable"  # no v4l2loopback here ...
    assert "modprobe v4l2loopback" in status["camera"]["fix"]  # ... and it says how to fix it
    quiet = get(f"{demo}/v1/snapshot.jpg")
    assert Image.open(io.BytesIO(quiet)).size == (640, 360)

    code, accepted = post(
        f"{demo}/v1/speak", b'{"text": "Hello there, this is the demo avatar speaking."}'
    )
    assert code == 202 and accepted["state"] == "queued"
    time.sleep(1.5)
    speaking = get(f"{demo}/v1/snapshot.jpg")
    assert caption_ink(speaking) > caption_ink(quiet) + 200  # words appeared in the captions

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        speech = json.loads(get(f"{demo}/v1/status"))["speech"]
        if speech["recent"][-1]["state"] == "done":
            break
        time.sleep(0.3)
    assert speech["recent"][-1]["state"] == "done"


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (b"", 400, "body: is empty"),
        (b"{not json", 400, "body: is not valid JSON"),
        (b'["a list"]', 400, "body: must be a JSON object"),
        (b'{"text": ""}', 400, "text: is empty"),
        (b'{"text": 5}', 400, "text: must be a string"),
        (b'{"text": "hi", "mode": "shout"}', 400, "mode: 'shout' is not one of repeat, chat"),
        (b'{"text": "hi", "volume": 3}', 400, "volume: unknown field"),
        (b'{"text": "' + b"a" * 1001 + b'"}', 400, "at most 1000 per request"),
    ],
)
def test_bad_speak_requests_get_a_specific_error(
    demo: str, body: bytes, status: int, detail: str
) -> None:
    before = json.loads(get(f"{demo}/v1/status"))["speech"]["recent"]
    code, answer = post(f"{demo}/v1/speak", body)
    assert code == status
    assert answer["error"] == "bad_request" and detail in str(answer["detail"])
    # Nothing was queued, and the daemon is fine.
    assert json.loads(get(f"{demo}/v1/status"))["speech"]["recent"] == before


def test_unknown_paths_and_methods_answer_json(demo: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        get(f"{demo}/v1/nope")
    assert caught.value.code == 404
    assert json.loads(caught.value.read())["error"] == "not_found"
    code, answer = post(f"{demo}/v1/status", b"{}")
    assert code == 405 and answer["error"] == "method_not_allowed"
