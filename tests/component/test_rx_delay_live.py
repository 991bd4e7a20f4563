"""Over a real LiveKit room, the source reads libwebrtc's receive delays of the avatar's two
tracks and hands the voice's lag behind the picture on with the audio (for lip sync)."""

from __future__ import annotations

import asyncio
from typing import Any

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


def ignore_video(frame: VideoFrame) -> None:
    pass


async def test_the_source_measures_both_receive_delays_and_the_audio_carries_the_lag(
    livekit_server: LiveKitServer,
) -> None:
    chunks: list[AudioChunk] = []
    host = LiveKitHost(
        url=livekit_server.url, api_key=livekit_server.api_key, api_secret=livekit_server.api_secret
    )
    try:
        async with Simulator(media=host) as sim:
            client = HeyGenClient(
                base_url=sim.url, credential=Secret(DEFAULT_HEYGEN_KEY), timeout=5, retry_deadline=5
            )
            provider = HeyGenProvider(client=client, avatar=AvatarConfig(quality="low"))
            manager = SessionManager(
                provider=provider, bus=EventBus(), video=ignore_video, audio=chunks.append
            )

            def measured() -> dict[str, Any] | None:
                source = manager.source
                snap: dict[str, Any] | None = getattr(source, "snapshot", lambda: None)()
                if snap is None or snap["audio_rx_delay_ms"] is None:
                    return None
                return snap if snap["video_rx_delay_ms"] is not None else None

            try:
                async with asyncio.TaskGroup() as group:
                    running = group.create_task(manager.run(), name="manager")
                    snap = await eventually(measured, within=30, what="both receive delays")
                    assert snap is not None
                    chunks.clear()
                    await eventually(lambda: len(chunks) >= 5, within=10, what="more audio")
                    running.cancel()
            finally:
                await provider.aclose()
    finally:
        await host.aclose()
    # Plausible receive delays (a jitter buffer holds audio; a frame takes time to decode),
    # and the audio handed on says how much later than the picture it came.
    assert 0 < snap["audio_rx_delay_ms"] < 1000 and 0 < snap["video_rx_delay_ms"] < 1000
    assert any(chunk.lag != 0.0 for chunk in chunks)
