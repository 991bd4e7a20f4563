"""Stopping while the room is still connecting is safe (issue 11, item 4).

A LiveKit ``Room.connect()`` cancelled mid-flight leaves the SDK's native side waiting for a
reply nobody will send: about 15 s later it logs "timed out waiting for
ReadyForRoomEventRequest after ConnectCallback" and panics, killing the process.  Both ends
that join rooms must let a connect finish (or time out) and then leave:

* the simulator, whose avatar is still joining when a client stops its session a few ms after
  ``POST /v1/sessions/start`` (what third-party clients do on their error paths);
* the bridge's :class:`~bridge.source.livekit.LiveKitSource`, cancelled by shutdown, renewal
  or reconnect while its room is connecting.

The panic comes after the SDK's 15 s timeout, so these tests wait that long once (for all
their tries together) and then check that everyone is still there.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from livekit import api

from bridge.sim import DEFAULT_LIVEAVATAR_KEY
from bridge.sim.liveavatar import USER_AVATARS
from bridge.sim.livekit_server import LiveKitServer
from bridge.source.base import MediaHandlers
from bridge.source.livekit import LiveKitSource
from bridge.source.room import RoomAddress, RoomLink
from tests.kit.eventually import eventually
from tests.kit.process import Child, launched

TRIES = 10
# The SDK gives up on the missing reply 15 s after the connect and panics then; wait past it.
SDK_PANIC_AFTER_S = 15.0
OUTLIVE_S = SDK_PANIC_AFTER_S + 5.0
AVATAR = USER_AVATARS[0]["id"]
# A cancelled source waits while its connect ends (bounded by the SDK's timeouts): generous.
BOUNDED_S = 30.0


# --- the simulator -----------------------------------------------------------------------


@pytest.fixture
async def own_sim(livekit_server: LiveKitServer, tmp_path: Path) -> AsyncIterator[Child]:
    """``heygen-bridge simulate`` with the LiveKit server it starts itself, as a user runs it
    (so a crash takes that server down too, as reported).  Stopped with SIGTERM at the end,
    which must end it cleanly."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # its livekit-server's log goes there
    argv = [sys.executable, "-m", "bridge", "simulate", "--port", "0", "--livekit", "auto"]
    async with launched("the simulator", argv, log_path=tmp_path / "sim.log", env=env) as sim:
        yield sim


def _sim_livekit_url(sim: Child) -> str:
    found = re.search(r"LiveKit server: (ws://\S+)", sim.log_path.read_text(errors="replace"))
    assert found, f"the simulator did not start its LiveKit server:\n{sim.log_tail()}"
    return found.group(1)


async def _start_and_stop(http: aiohttp.ClientSession, base: str) -> str:
    """Create and start a LiveAvatar session, then stop it at once (its avatar still joining)."""
    body = {"mode": "FULL", "avatar_id": AVATAR, "avatar_persona": {}}
    headers = {"X-API-KEY": DEFAULT_LIVEAVATAR_KEY}
    async with http.post(f"{base}/v1/sessions/token", json=body, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        data = (await resp.json())["data"]
    bearer = {"Authorization": f"Bearer {data['session_token']}"}
    async with http.post(f"{base}/v1/sessions/start", headers=bearer) as resp:
        assert resp.status == 201, await resp.text()
    async with http.post(f"{base}/v1/sessions/stop", headers=bearer) as resp:
        assert resp.status == 200, await resp.text()
    session_id: str = data["session_id"]
    return session_id


async def _answers(http: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with http.get(url) as resp:
            return resp.status < 500
    except aiohttp.ClientError:
        return False


async def test_the_simulator_survives_sessions_stopped_while_the_avatar_joins(
    own_sim: Child,
) -> None:
    lk_http = _sim_livekit_url(own_sim).replace("ws://", "http://")
    async with aiohttp.ClientSession() as http:
        assert await _answers(http, lk_http)
        first = time.monotonic()
        stopped = [await _start_and_stop(http, own_sim.url) for _ in range(TRIES)]

        async def still_up() -> bool:
            own_sim.check_running()  # a panic fails the wait at once, with the log
            for what, url in (("the simulator", own_sim.url), ("its LiveKit server", lk_http)):
                if not await _answers(http, url):
                    raise AssertionError(f"{what} stopped answering:\n{own_sim.log_tail()}")
            return time.monotonic() - first > OUTLIVE_S

        await eventually(still_up, within=OUTLIVE_S + 15, every=0.5, what="20 s without a crash")
        async with http.get(f"{own_sim.url}/_sim/ledger") as resp:
            events = (await resp.json())["sessions"]
    ends = {e["session_id"]: e["kind"] for e in events if e["kind"] in ("stopped", "expired")}
    assert ends == dict.fromkeys(stopped, "stopped")


# --- the bridge's media source -----------------------------------------------------------


def _token(server: LiveKitServer, room: str, identity: str) -> str:
    grants = api.VideoGrants(room_join=True, room=room, can_subscribe=True)
    return (
        api.AccessToken(server.api_key, server.api_secret)
        .with_identity(identity)
        .with_grants(grants)
        .to_jwt()
    )


async def _participants(server: LiveKitServer, room: str) -> list[str]:
    http_url = server.url.replace("ws://", "http://")
    async with api.LiveKitAPI(http_url, server.api_key, server.api_secret) as lk:
        try:
            found = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
        except api.TwirpError as exc:
            if exc.code == "not_found":
                return []
            raise
    return [p.identity for p in found.participants]


def _ignore(*_: object) -> None:
    return None


async def test_the_source_cancelled_while_its_room_connects_leaves_it(
    livekit_server: LiveKitServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Shutdown, renewal or reconnect cancel the source whenever they must: also while its
    room is connecting.  The cancellation goes on, the room is left, the process lives."""
    # The SDK ends a process whose connect it gave up on with a SIGTERM to itself: heard here.
    panicked = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, panicked.set)
    try:
        rooms: list[str] = []
        first = time.monotonic()
        for attempt in range(TRIES):
            room = f"connect-cancel-{uuid.uuid4().hex[:8]}"
            rooms.append(room)
            address = RoomAddress(livekit_server.url, _token(livekit_server, room, "bridge"))
            handlers = MediaHandlers(video=_ignore, audio=_ignore, data=_ignore, presence=_ignore)
            source = LiveKitSource(RoomLink(address, on_data=handlers.data), handlers)
            running = asyncio.create_task(source.run(), name=f"source-{attempt}")
            for _ in range(4):  # into the SDK's connect (its request is out after these)
                await asyncio.sleep(0)
            assert source.stats.state == "connecting"
            await asyncio.sleep(attempt * 0.005)  # and a little further each time
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                async with asyncio.timeout(BOUNDED_S):  # it waits for the connect: bounded
                    await running
            assert source.snapshot()["state"] == "stopped"

        async def quiet() -> bool:
            assert not panicked.is_set(), "the LiveKit SDK panicked (SIGTERM to itself)"
            return time.monotonic() - first > OUTLIVE_S

        await eventually(quiet, within=OUTLIVE_S + 15, every=0.5, what="20 s without a panic")
        assert "ReadyForRoomEventRequest" not in caplog.text
        for room in rooms:
            assert await _participants(livekit_server, room) == [], f"still in {room}"
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
