"""A session's media over a real LiveKit room: the manager, the HeyGen provider against its
simulator, the room link and the LiveKit source, wired as the daemon wires them."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bridge.config import AvatarConfig, Secret
from bridge.eventbus import EventBus
from bridge.media.frames import AudioChunk, VideoFrame
from bridge.providers.heygen.client import HeyGenClient
from bridge.providers.heygen.provider import HeyGenProvider
from bridge.session.manager import SessionManager
from bridge.sim import DEFAULT_HEYGEN_KEY
from bridge.sim.avatar import LiveKitHost
from bridge.sim.livekit_server import LiveKitServer
from bridge.sim.server import Simulator
from tests.kit.eventually import eventually


def ignore_audio(chunk: AudioChunk) -> None:
    pass


async def test_a_consumer_that_dies_is_logged_and_the_next_session_brings_frames(
    livekit_server: LiveKitServer, caplog: pytest.LogCaptureFixture
) -> None:
    broke = False
    frames: list[VideoFrame] = []

    def camera(frame: VideoFrame) -> None:  # a sink with a bug that bites once
        nonlocal broke
        if not broke:
            broke = True
            raise ValueError("the camera handler broke")
        frames.append(frame)

    host = LiveKitHost(
        url=livekit_server.url, api_key=livekit_server.api_key, api_secret=livekit_server.api_secret
    )
    bus = EventBus()
    try:
        async with Simulator(media=host) as sim:
            client = HeyGenClient(
                base_url=sim.url, credential=Secret(DEFAULT_HEYGEN_KEY), timeout=5, retry_deadline=5
            )
            provider = HeyGenProvider(client=client, avatar=AvatarConfig(quality="low"))
            manager = SessionManager(provider=provider, bus=bus, video=camera, audio=ignore_audio)
            try:
                with caplog.at_level(logging.ERROR, logger="bridge.session.manager"):
                    async with asyncio.TaskGroup() as group:
                        running = group.create_task(manager.run(), name="manager")
                        await eventually(
                            lambda: len(frames) >= 10, within=30, what="the next session's frames"
                        )
                        running.cancel()
            finally:
                await provider.aclose()
            assert sim.ledger.open_sessions() == []  # both sessions stopped
    finally:
        await host.aclose()

    states = [e.data["state"] for e in bus.recent if e.topic == "session.state"]
    assert states == [
        "connecting",
        "live",
        "ended",
        "starting",
        "connecting",
        "live",
        "stopping",
        "stopped",
    ]
    assert manager.sessions_opened == 2
    # (the LiveKit SDK may log its own errors about the room it is leaving: not ours)
    [error] = [
        r
        for r in caplog.records
        if r.name == "bridge.session.manager" and r.levelno >= logging.ERROR
    ]
    message = error.getMessage()
    assert "video track" in message and "ValueError('the camera handler broke')" in message
    assert error.exc_info is not None  # with the traceback of the cause
