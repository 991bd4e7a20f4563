"""Listen mode end to end: speech (espeak-ng) played into the virtual speaker, as a meeting app
plays the other participants → the bridge → the real LiveKit server → the simulated avatar,
which answers → the answer on the virtual mic; transcript events on the WebSocket;
push-to-talk gating it; and no echo: while the avatar answers and nobody else speaks, what the
bridge hears and sends stays at silence (measured and printed).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.media.vad import SILENCE_DBFS
from bridge.sim.livekit_server import LiveKitServer
from tests.kit.bridge_process import PROVIDERS, BridgeProcess, bridge_config, bridge_process
from tests.kit.pulse import PrivatePulse, Recorder, rms
from tests.kit.simproc import StartSim

SPEAKER = "e2e_listen_ears"
QUESTION = "Hello avatar. What is the weather like today?"
CONTEXT = "6c1d7f3e-2b4a-4e5f-8a9b-0c1d2e3f4a5b"  # any context: the fake's LLM is canned
HEARD_ANSWER_RMS = 1000.0  # the avatar's voice on the virtual mic (silence there is 0)


def listen_raw(raw: dict[str, Any]) -> dict[str, Any]:
    # A LiveAvatar avatar without a context hears but never answers (restricted mode).
    avatar = {**raw["avatar"], "context_id": CONTEXT} if raw["provider"] == "liveavatar" else {}
    return {
        **raw,
        **({"avatar": avatar} if avatar else {}),
        "microphone": {
            "enabled": True,
            "sink_name": "e2e_listen_voice",
            "source_name": "e2e_listen_mic",
            "make_default": True,  # a misrouted recorder would hear the avatar: it must not
        },
        "listen": {"mode": "push-to-talk", "speaker_name": SPEAKER},
    }


def speech_file(folder: Path) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed: sudo apt install espeak-ng")
    path = folder / "question.wav"
    with path.open("wb") as out:
        subprocess.run(["espeak-ng", "--stdout", QUESTION], stdout=out, check=True)
    return path


async def say_into_speaker(pulse: PrivatePulse, wav: Path) -> None:
    """What a meeting app does with another participant's voice: play it into its output."""
    proc = await asyncio.create_subprocess_exec(
        "paplay", f"--device={SPEAKER}", str(wav), env=pulse.env()
    )
    assert await proc.wait() == 0


class Events:
    """The bridge's WebSocket events, kept in order."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def of(self, topic: str, **match: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.seen
            if e.get("topic") == topic and all(e.get(k) == v for k, v in match.items())
        ]


@asynccontextmanager
async def websocket(bridge: BridgeProcess) -> AsyncIterator[Events]:
    events = Events()
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{bridge.url}/v1/ws") as ws:
        await ws.send_json({"type": "subscribe", "topics": ["transcript", "avatar.*", "listen.*"]})

        async def read() -> None:
            async for frame in ws:
                message = json.loads(frame.data)
                if message.get("type") == "event":
                    events.seen.append(message)

        reader = asyncio.create_task(read(), name="e2e-ws")
        try:
            yield events
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


async def post(bridge: BridgeProcess, path: str, body: dict[str, Any] | None = None) -> Any:
    async with aiohttp.ClientSession() as http, http.post(f"{bridge.url}{path}", json=body) as r:
        assert r.status < 300, await r.text()
        return await r.json()


async def until(check: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not within {within:g} s: {what}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_avatar_hears_the_meeting_and_answers_on_the_mic(
    start_sim: StartSim,
    livekit_server: LiveKitServer,
    pulse_server: PrivatePulse,
    tmp_path: Path,
    provider: str,
) -> None:
    wav = speech_file(tmp_path)
    sim = await start_sim()
    raw, env = bridge_config(
        sim.url, livekit_server, provider=provider, camera={"device": f"e2e-listen-{provider}"}
    )
    async with bridge_process(listen_raw(raw), env, tmp_path) as bridge:
        await bridge.wait(
            lambda s: (
                s["session"]["state"] == "live"
                and s["microphone"]["state"] in ("silent", "speaking")
                and s["listen"]["hearing"]["state"] == "hearing"
                and s["listen"]["uplink"]["rooms"] == 1
            ),
            within=30,
            what="live, the mic writing, the ears hearing, the uplink in the room",
        )
        async with websocket(bridge) as events:
            # Push-to-talk released: the meeting speaks, the avatar hears nothing.
            await say_into_speaker(pulse_server, wav)
            await asyncio.sleep(1.5)  # longer than the simulated avatar's end-of-speech wait
            status = await bridge.status()
            assert status["listen"]["uplink"]["seconds_sent"] == 0.0
            assert status["listen"]["hearing"]["seconds_read"] > 1.0  # it was there to hear
            assert events.of("transcript", role="user") == []

            pressed = await post(bridge, "/v1/listen/start")
            assert pressed["listening"] is True and pressed["avatar_told"] == "yes"
            recorder = Recorder("e2e_listen_mic", env=pulse_server.env()).start()
            try:
                await say_into_speaker(pulse_server, wav)
                await until(lambda: events.of("transcript", role="user"), 20, "what it heard")
                await until(lambda: events.of("avatar.speak_started"), 20, "its answer")
                before = (await bridge.status())["listen"]
                sent_before = before["uplink"]["seconds_sent"]
                loud_before = before["hearing"]["loud_blocks"]
                levels, after = await measure_while_answering(bridge, events)
                sent = after["uplink"]["seconds_sent"]
                loud_during = after["hearing"]["loud_blocks"] - loud_before
                await until(lambda: events.of("transcript", role="avatar"), 20, "what it said")
            finally:
                await asyncio.to_thread(recorder.stop)
            await post(bridge, "/v1/listen/stop")
            await until(lambda: events.of("listen.state", listening=False), 10, "released")

    heard = events.of("transcript", role="user")[0]["text"]
    said = events.of("transcript", role="avatar")[0]["text"]
    loudest = max(levels)
    print(
        f"\n{provider}: sent {sent_before:.2f} s of the meeting; heard {heard!r}; "
        f"answered {said!r}\n  while the avatar answered ({len(levels)} samples): the "
        f"uplink's input peaked at {loudest:.1f} dBFS, had {loud_during} loud 20 ms blocks, "
        f"and sent {sent - sent_before:.2f} s"
    )
    assert sent_before > 1.0  # the question went up
    assert loudest == SILENCE_DBFS  # no echo: its own voice never reached its ears
    assert loud_during == 0
    assert sent == sent_before  # ... nor its room
    answer = recorder.samples()
    window = 4800
    loud = [rms(answer[i : i + window]) for i in range(0, len(answer) - window, window)]
    assert max(loud, default=0.0) > HEARD_ANSWER_RMS  # the answer was heard on the mic


async def measure_while_answering(
    bridge: BridgeProcess, events: Events
) -> tuple[list[float], dict[str, Any]]:
    """The uplink's input level, sampled while the avatar answers (nobody else speaks), and
    the listen status at the end of the answer."""
    levels: list[float] = []
    started = len(events.of("avatar.speak_started"))
    deadline = time.monotonic() + 30
    while len(events.of("avatar.speak_ended")) < started:
        assert time.monotonic() < deadline, "the answer did not end within 30 s"
        status = await bridge.status()
        levels.append(status["listen"]["hearing"]["level_dbfs"])
        await asyncio.sleep(0.02)
    status = await bridge.status()
    return levels, status["listen"]
