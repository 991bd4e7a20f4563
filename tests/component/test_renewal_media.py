"""Renewal before the duration limit over a real LiveKit room: the HeyGen provider against its
simulator (a short ``session_duration_limit``), the manager, the room link and the LiveKit
source, wired as the daemon wires them.  The camera keeps getting frames across the switch."""

from __future__ import annotations

import asyncio
import itertools
import time

from bridge.config import AvatarConfig, Secret
from bridge.eventbus import EventBus
from bridge.media.frames import AudioChunk, VideoFrame
from bridge.providers.heygen.client import HeyGenClient
from bridge.providers.heygen.provider import HeyGenProvider
from bridge.session.manager import SessionManager
from bridge.sim import DEFAULT_HEYGEN_KEY
from bridge.sim.avatar import LiveKitHost
from bridge.sim.heygen import HeyGenLimits
from bridge.sim.livekit_server import LiveKitServer
from bridge.sim.server import Simulator
from tests.kit.eventually import eventually

LIMIT_S = 14  # the simulator ends a session after this
MARGIN_S = 5.0  # the manager renews this long before
# The longest pause between two camera frames across the renewal.  The simulator's low quality
# stream comes a frame every 40 to 70 ms here, and the longest pause across a renewal measured
# about 0.1 s; this allows a few frame intervals more (a loaded test machine stalls now and
# then).  A switch that does not wait for the new session's first frame paused about 0.45 s.
GAP_BOUND_S = 0.3


def ignore_audio(chunk: AudioChunk) -> None:
    pass


async def test_the_camera_gets_frames_across_a_renewal_and_the_old_session_is_stopped(
    livekit_server: LiveKitServer,
) -> None:
    arrivals: list[float] = []

    def camera(frame: VideoFrame) -> None:
        arrivals.append(time.monotonic())

    host = LiveKitHost(
        url=livekit_server.url, api_key=livekit_server.api_key, api_secret=livekit_server.api_secret
    )
    bus = EventBus()
    limits = HeyGenLimits(session_duration_limit=LIMIT_S)
    try:
        async with Simulator(media=host, heygen_limits=limits) as sim:
            client = HeyGenClient(
                base_url=sim.url, credential=Secret(DEFAULT_HEYGEN_KEY), timeout=5, retry_deadline=5
            )
            provider = HeyGenProvider(client=client, avatar=AvatarConfig(quality="low"))
            manager = SessionManager(
                provider=provider,
                bus=bus,
                video=camera,
                audio=ignore_audio,
                renew_margin_s=MARGIN_S,
            )
            try:
                async with asyncio.TaskGroup() as group:
                    running = group.create_task(manager.run(), name="manager")
                    await eventually(lambda: arrivals, within=30, what="the first frames")
                    await eventually(
                        lambda: [e for e in bus.recent if e.topic == "session.renewed"],
                        within=LIMIT_S + 10,
                        what="the renewal",
                    )
                    [renewed] = [e.data for e in bus.recent if e.topic == "session.renewed"]
                    switched_at = time.monotonic()
                    await eventually(
                        lambda: sim.ledger.sessions("stopped") == [renewed["previous"]],
                        within=15,
                        what="the old session stopped",
                    )
                    await eventually(
                        lambda: arrivals[-1] > switched_at + 1.0, within=10, what="new frames"
                    )
                    assert sim.ledger.open_sessions() == [renewed["session_id"]]
                    assert sim.ledger.sessions("expired") == []  # renewed before its limit
                    running.cancel()
            finally:
                await provider.aclose()
            assert sim.ledger.open_sessions() == []  # both sessions stopped
    finally:
        await host.aclose()

    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert max(gaps) < GAP_BOUND_S, f"the camera went {max(gaps):.3f} s without a frame"
    states = [e.data["state"] for e in bus.recent if e.topic == "session.state"]
    assert states == ["connecting", "live", "stopping", "stopped"]  # never ended in between
    assert manager.sessions_opened == 2 and manager.reconnects == 0
