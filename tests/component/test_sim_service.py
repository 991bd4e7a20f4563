"""The fakes' shared skeleton: the avatar's join and bounce, failures that surface, closing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bridge.sim import DEFAULT_HEYGEN_KEY
from bridge.sim.clock import ManualClock, Step
from bridge.sim.media import AvatarLink, Hooks, JoinFailed, RoomSpec
from bridge.sim.server import Simulator
from tests.kit.eventually import eventually
from tests.kit.liveavatar_sim import RecordingMedia

KEY = {"x-api-key": DEFAULT_HEYGEN_KEY}


class BrokenMedia(RecordingMedia):
    """A media host whose avatar fails to join with ``error``."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def join(self, spec: RoomSpec, hooks: Hooks) -> AvatarLink:
        raise self.error


async def started_heygen_session(sim: Simulator) -> str:
    async with aiohttp.ClientSession(headers=KEY) as http:
        async with http.post(f"{sim.url}/v1/streaming.new", json={"version": "v2"}) as resp:
            session_id: str = (await resp.json())["data"]["session_id"]
        body = {"session_id": session_id}
        async with http.post(f"{sim.url}/v1/streaming.start", json=body) as resp:
            assert resp.status == 200
    return session_id


async def test_a_room_that_cannot_be_joined_fails_the_session(clock: ManualClock) -> None:
    media = BrokenMedia(JoinFailed("livekit-server refused the token"))
    async with Simulator(media=media, clock=clock) as sim:
        session_id = await started_heygen_session(sim)
        await eventually(lambda: bool(sim.ledger.sessions("expired")), what="the session failed")
        expired = [
            (e.session_id, e.reason) for e in sim.ledger.session_events if e.kind == "expired"
        ]
        assert expired == [(session_id, "avatar failed to join: livekit-server refused the token")]


async def test_a_bug_in_the_simulated_avatar_surfaces(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    sim = await Simulator(media=BrokenMedia(RuntimeError("bug in the avatar")), clock=clock).start()
    try:
        session_id = await started_heygen_session(sim)
        await eventually(
            lambda: any("crashed" in r.message for r in caplog.records), what="the crash logged"
        )
        crash = next(r for r in caplog.records if "crashed" in r.message)
        assert crash.levelno == logging.ERROR and session_id[:8] in crash.message
        assert sim.ledger.sessions("expired") == []  # not dressed up as an expiry
    finally:
        with pytest.raises(RuntimeError, match="bug in the avatar"):
            await sim.aclose()
    assert sim.ledger.open_sessions() == []  # closed all the same


class StubbornClock(ManualClock):
    """Its expiry loops take a while to end when cancelled (until ``release`` is set)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.unwinding = 0

    async def every(self, period: float, step: Step) -> None:
        try:
            await super().every(period, step)
        except asyncio.CancelledError:
            self.unwinding += 1
            await self.release.wait()
            raise


async def test_aclose_does_not_swallow_its_own_cancellation() -> None:
    clock = StubbornClock()
    sim = await Simulator(clock=clock).start()
    closing = asyncio.create_task(sim.aclose())
    await eventually(lambda: clock.unwinding == 2, what="both expiry loops unwinding")
    closing.cancel()
    clock.release.set()
    with pytest.raises(asyncio.CancelledError):
        await closing
    await sim.aclose()  # the rest of the close ran, and a second close is harmless


@pytest.fixture
async def recorded(clock: ManualClock) -> AsyncIterator[tuple[Simulator, RecordingMedia]]:
    media = RecordingMedia()
    async with Simulator(media=media, clock=clock) as sim:
        yield sim, media


async def test_bounce_brings_the_avatar_back_on_the_clock(
    recorded: tuple[Simulator, RecordingMedia], clock: ManualClock
) -> None:
    sim, media = recorded
    session_id = await started_heygen_session(sim)
    session = sim.heygen.sessions[session_id]
    await eventually(lambda: session.state == "connected", what="avatar joined")
    bounce = asyncio.create_task(sim.heygen.bounce_avatar(session_id, away=5))
    await eventually(lambda: media.trail.count("leave") == 1, what="avatar left")
    assert sim.heygen.sessions[session_id].state == "connecting" and session.link is None
    await clock.advance(4.9)
    assert media.trail.count("join") == 1
    await clock.advance(0.2)
    await bounce
    assert media.trail.count("join") == 2
    assert sim.heygen.sessions[session_id].state == "connected"


async def test_admin_sessions_lists_both_services(
    recorded: tuple[Simulator, RecordingMedia],
) -> None:
    sim, _ = recorded
    session_id = await started_heygen_session(sim)
    await eventually(lambda: sim.heygen.sessions[session_id].state == "connected")
    async with aiohttp.ClientSession() as http, http.get(f"{sim.url}/_sim/sessions") as resp:
        listed: dict[str, Any] = await resp.json()
    assert listed == {
        "heygen": [
            {
                "session_id": session_id,
                "state": "connected",
                "room": f"heygen-{session_id}",
                "history": [],
            }
        ],
        "liveavatar": [],
    }
