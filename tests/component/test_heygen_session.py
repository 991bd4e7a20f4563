"""The HeyGen provider and session over REST against the simulator: what they send, and that
a session whose start fails is never left running."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bridge.config import AvatarConfig, Secret
from bridge.errors import InvalidRequest
from bridge.providers.heygen.client import HeyGenClient
from bridge.providers.heygen.provider import HeyGenProvider
from bridge.sim import DEFAULT_HEYGEN_KEY
from bridge.sim.faults import Fault
from bridge.sim.server import Simulator
from bridge.source.room import RoomAddress
from tests.kit.recorder import Noted

STILL_CONNECTING = 10002


@pytest.fixture
async def provider(sim: Simulator) -> AsyncIterator[HeyGenProvider]:
    client = HeyGenClient(
        base_url=sim.url, credential=Secret(DEFAULT_HEYGEN_KEY), timeout=5, retry_deadline=1
    )
    heygen = HeyGenProvider(client=client, avatar=AvatarConfig(activity_idle_timeout=90))
    yield heygen
    await heygen.aclose()


async def test_open_session_sends_the_request_and_gives_the_room(
    sim: Simulator, provider: HeyGenProvider
) -> None:
    noted = Noted()
    session = await provider.open_session(noted)
    assert sim.ledger.bodies("/v1/streaming.new") == [
        provider.new_session_request().model_dump(exclude_none=True)
    ]
    assert sim.ledger.bodies("/v1/streaming.start") == [{"session_id": session.session_id}]
    assert isinstance(session.media, RoomAddress)
    assert session.media.url.startswith("ws://") and session.media.token
    assert session.media.avatar_identity == "heygen"
    assert session.keep_alive_every == 30.0  # a third of the idle timeout
    assert noted.events == [f"created {session.session_id}"]
    await session.stop()
    await session.stop()  # already gone: not an error
    assert sim.ledger.open_sessions() == []


async def test_open_session_never_leaks_when_start_is_refused(
    sim: Simulator, provider: HeyGenProvider
) -> None:
    sim.faults.add(Fault("status", path="/v1/streaming.start", status=400, code=400))
    noted = Noted()
    with pytest.raises(InvalidRequest):
        await provider.open_session(noted)
    [session_id] = sim.ledger.sessions("created")
    assert sim.ledger.open_sessions() == []
    assert sim.ledger.bodies("/v1/streaming.stop") == [{"session_id": session_id}]
    assert noted.events == [f"created {session_id}", f"stopped {session_id}"]


async def test_speak_and_interrupt_send_tasks(sim: Simulator, provider: HeyGenProvider) -> None:
    session = await provider.open_session()
    repeat = await session.speak("Hello there", "repeat", None)
    chat = await session.speak("How are you?", "chat", None)
    await session.interrupt(None)
    sid = session.session_id
    assert sim.ledger.bodies("/v1/streaming.task") == [
        {"session_id": sid, "text": "Hello there", "task_type": "repeat", "task_mode": "async"},
        # HeyGen's own SDK sends "talk" for an LLM answer (the docs say "chat").
        {"session_id": sid, "text": "How are you?", "task_type": "talk", "task_mode": "async"},
    ]
    assert repeat and chat and repeat != chat
    assert sim.ledger.bodies("/v1/streaming.interrupt") == [{"session_id": sid}]
    await session.stop()


async def test_speak_waits_while_heygen_is_still_connecting(
    sim: Simulator, provider: HeyGenProvider
) -> None:
    session = await provider.open_session()
    sim.faults.add(
        Fault("status", path="/v1/streaming.task", status=400, code=STILL_CONNECTING, times=2)
    )
    assert await session.speak("Hello", "repeat", None)
    statuses = [r.status for r in sim.ledger.requests_to("/v1/streaming.task")]
    assert statuses == [400, 400, 200]
    await session.stop()
