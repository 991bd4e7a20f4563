"""`heygen-bridge run --demo` as a user runs it: a real process, real HTTP, no key, no network.

Every error the control API can answer is covered in-process by
tests/component/test_control_api.py; here the daemon shows that they reach a real client.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from PIL import Image

from tests.kit.bridge_process import USERS_BRIDGE, BridgeProcess, bridge_process
from tests.kit.eventually import eventually
from tests.kit.pulse import RATE, PrivatePulse, Recorder, window_rms

DEMO = ("run", "--demo")
CAMERA = {"width": 640, "height": 360, "card_label": "no-such-camera-here"}
MIC_OFF = {"enabled": False}


def caption_ink(jpeg: bytes) -> int:
    """Bright pixels in the caption strip (the bottom sixth of the picture)."""
    gray = np.asarray(Image.open(io.BytesIO(jpeg)).convert("L"))
    strip = gray[gray.shape[0] * 5 // 6 :]
    return int((strip > 200).sum())


async def post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.post(url, data=body) as resp:
        answer: dict[str, Any] = await resp.json()
        return resp.status, answer


async def get(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.read()


async def snapshot(demo: BridgeProcess) -> bytes:
    status, jpeg = await get(f"{demo.url}/v1/snapshot.jpg")
    assert status == 200
    return jpeg


async def speak(demo: BridgeProcess, text: str) -> str:
    """Ask the daemon to say ``text`` (one sentence: one item); the accepted item's id."""
    status, accepted = await post(f"{demo.url}/v1/speak", json.dumps({"text": text}).encode())
    assert status == 202 and [i["state"] for i in accepted["items"]] == ["queued"], accepted
    return str(accepted["items"][0]["id"])


async def spoken(demo: BridgeProcess, request_id: str) -> None:
    def done(status: dict[str, Any]) -> bool:
        request = next(r for r in status["speech"]["recent"] if r["id"] == request_id)
        return bool(request["state"] == "done")

    await demo.wait(done, within=20, what=f"request {request_id} spoken")


async def test_demo_speaks_through_the_virtual_mic(
    tmp_path: Path, pulse_server: PrivatePulse
) -> None:
    mic = {"sink_name": "demo_sink", "source_name": "demo_mic"}
    raw = {"microphone": mic, "camera": CAMERA}
    async with bridge_process(
        raw, pulse_server.client_env(), tmp_path, program=USERS_BRIDGE, run=DEMO
    ) as demo:
        await demo.wait(
            lambda s: s["microphone"]["state"] in ("silent", "speaking"),
            within=15,
            what="the mic writing",
        )
        recorder = Recorder("demo_mic", env=pulse_server.env()).start()
        try:
            await spoken(demo, await speak(demo, "Hello, you can hear me through the mic."))
        finally:
            await asyncio.to_thread(recorder.stop)
        assert any("demo_mic" in args for _, _, args in pulse_server.modules())
    voice = recorder.samples()
    loud = window_rms(voice, RATE // 100) > 500  # 10 ms windows with speech in them
    assert loud.sum() > 100, f"{loud.sum() * 10} ms of voice"  # over a second of speech
    assert not any("demo_mic" in args for _, _, args in pulse_server.modules())  # removed


async def test_demo_serves_its_avatar_and_speaks_with_captions(tmp_path: Path) -> None:
    raw = {"microphone": MIC_OFF, "camera": CAMERA}
    async with bridge_process(raw, {}, tmp_path, program=USERS_BRIDGE, run=DEMO) as demo:
        status = await demo.status()
        assert status["provider"] == "demo"
        assert status["camera"]["state"] == "unavailable"  # no v4l2loopback here ...
        assert "modprobe v4l2loopback" in status["camera"]["fix"]  # ... and it says how to fix it
        quiet = await snapshot(demo)
        assert Image.open(io.BytesIO(quiet)).size == (640, 360)

        request = await speak(demo, "Hello there, this is the demo avatar speaking.")
        # Words appear in the captions while it speaks.
        await eventually(
            lambda: snapshot(demo),
            until=lambda jpeg: caption_ink(jpeg) > caption_ink(quiet) + 200,
            within=15,
            what="captions on the picture",
            every=0.2,
        )
        await spoken(demo, request)
    assert "stopped" in demo.log_path.read_text()  # SIGTERM stopped it gracefully


async def test_the_daemon_answers_bad_requests_with_a_json_error(tmp_path: Path) -> None:
    raw = {"microphone": MIC_OFF, "camera": CAMERA}
    async with bridge_process(raw, {}, tmp_path, program=USERS_BRIDGE, run=DEMO) as demo:
        before = (await demo.status())["speech"]["recent"]
        code, answer = await post(f"{demo.url}/v1/speak", b"{not json")
        assert code == 400 and answer["error"] == "bad_request", answer
        assert answer["detail"].startswith("body: is not valid JSON"), answer
        code, answer = await post(f"{demo.url}/v1/nope", b"{}")
        assert code == 404 and answer["error"] == "not_found", answer
        code, answer = await post(f"{demo.url}/v1/status", b"{}")
        assert code == 405 and answer["error"] == "method_not_allowed", answer
        # Nothing was queued, and the daemon is fine.
        assert (await demo.status())["speech"]["recent"] == before
