"""Third-party clients' requests, replayed against the HeyGen fake: it must take them all.

The bodies are written here from what each client sends (issue 9):

* pipecat 1.14 (``services/heygen/api_interactive_avatar.py``): server side, ``x-api-key``;
  ``create_token`` with ``{}``; ``streaming.new`` with *every* optional field present and
  ``null`` when unset (``voice`` is always an object of four nulls); ``start`` and ``stop``.
  It then needs ``access_token``, ``livekit_agent_token``, ``realtime_endpoint`` and ``url``.
* HeyGen's JS SDK 2.1.0 (``@heygen/streaming-avatar``): a backend mints the token with
  ``x-api-key`` and no body (the Next.js demo); the browser sends everything else with
  ``Authorization: Bearer <token>``.  ``JSON.stringify`` drops unset fields, and the SDK adds
  fields of its own (``avatar_name``, ``source``, ``ia_is_livekit_transport``).  A ``repeat``
  without ``taskMode`` goes out with no ``task_mode``: the service's default, sync.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from bridge.sim import DEFAULT_HEYGEN_KEY
from bridge.sim.clock import ManualClock
from bridge.sim.server import Simulator
from tests.kit.eventually import eventually

KEY = {"x-api-key": DEFAULT_HEYGEN_KEY, "Content-Type": "application/json"}

PIPECAT_NEW = {
    "quality": None,
    "avatar_id": "Wayne_20240711",
    "voice": {"voice_id": None, "rate": None, "emotion": None, "elevenlabs_settings": None},
    "knowledge_id": None,
    "knowledge_base": None,
    "version": "v2",
    "video_encoding": None,
    "disable_idle_timeout": None,
    "activity_idle_timeout": None,
}
JS_SDK_NEW = {
    "avatar_name": "Wayne_20240711",
    "quality": "low",
    "knowledge_base_id": "kb-demo",
    "voice": {
        "rate": 1.5,
        "emotion": "excited",
        "elevenlabs_settings": {"model_id": "eleven_flash_v2_5"},
    },
    "language": "en",
    "version": "v2",
    "video_encoding": "H264",
    "source": "sdk",
    "stt_settings": {"provider": "deepgram"},
    "ia_is_livekit_transport": False,
    "activity_idle_timeout": 300,
}


async def post(
    sim: Simulator, name: str, headers: dict[str, str], body: Any = None
) -> tuple[int, Any]:
    """One POST as the client sends it (``body`` None: no body at all)."""
    data = None if body is None else json.dumps(body)
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sim.url}/v1/{name}", headers=headers, data=data) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


async def test_pipecat_session(sim: Simulator) -> None:
    status, answer = await post(sim, "streaming.create_token", KEY, {})
    assert status == 200 and answer["data"]["token"]
    status, answer = await post(sim, "streaming.new", KEY, PIPECAT_NEW)
    assert status == 200, answer
    data = answer["data"]
    for field in ("session_id", "access_token", "livekit_agent_token", "url"):
        assert isinstance(data[field], str) and data[field], field
    session_id = data["session_id"]
    assert data["realtime_endpoint"] == f"ws://127.0.0.1:{sim.port}/v1-alpha/realtime/{session_id}"
    session = sim.heygen.sessions[session_id]
    # Every null took the default, as if left out.
    assert (session.quality, session.encoding, session.voice_rate) == ("medium", "VP8", 1.0)
    assert session.idle_timeout == 120
    assert (await post(sim, "streaming.start", KEY, {"session_id": session_id}))[0] == 200
    await eventually(lambda: session.state == "connected", what="avatar joined")
    assert (await post(sim, "streaming.stop", KEY, {"session_id": session_id}))[0] == 200
    assert sim.ledger.sessions("stopped") == [session_id]


async def test_js_sdk_session(sim: Simulator, clock: ManualClock) -> None:
    status, answer = await post(sim, "streaming.create_token", {"x-api-key": DEFAULT_HEYGEN_KEY})
    assert status == 200
    browser = {"Authorization": f"Bearer {answer['data']['token']}"} | KEY
    del browser["x-api-key"]
    status, answer = await post(sim, "streaming.new", browser, JS_SDK_NEW)
    assert status == 200, answer
    session_id = answer["data"]["session_id"]
    assert answer["data"]["access_token"] and answer["data"]["url"]
    session = sim.heygen.sessions[session_id]
    assert (session.avatar_id, session.quality, session.encoding) == (
        "Wayne_20240711",
        "low",
        "H264",
    )
    only_id = {"session_id": session_id}
    speak = {"text": "Async hello", "session_id": session_id}
    steps: list[tuple[str, dict[str, Any]]] = [
        ("streaming.start", only_id),
        ("streaming.task", speak | {"task_mode": "async", "task_type": "repeat"}),
        ("streaming.interrupt", only_id),
        ("streaming.start_listening", only_id),
        ("streaming.stop_listening", only_id),
        ("streaming.keep_alive", only_id),
    ]
    for name, body in steps:
        status, answer = await post(sim, name, browser, body)
        assert status == 200, (name, answer)
        if name == "streaming.start":
            await eventually(lambda: session.state == "connected", what="avatar joined")
    # repeat without taskMode: sync, answered when the speech is over on the fake's clock.
    sync = asyncio.create_task(
        post(
            sim,
            "streaming.task",
            browser,
            {"text": "Sync hello", "session_id": session_id, "task_type": "repeat"},
        )
    )
    await eventually(lambda: "Sync hello" in session.history, what="the fake took the task")
    await clock.advance(session.speaking_until - clock.now())
    status, answer = await sync
    assert status == 200 and answer["data"]["task_id"]
    assert (await post(sim, "streaming.stop", browser, only_id))[0] == 200
    assert [r.status for r in sim.ledger.requests] == [200] * len(sim.ledger.requests)
    assert {r.auth for r in sim.ledger.requests[1:]} == {"bearer"}
