"""What the end-to-end tests share: a bridge configured against the simulator process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bridge.app import Bridge
from bridge.config import Secret, Secrets, Settings, parse
from bridge.sim import DEFAULT_HEYGEN_KEY, DEFAULT_LIVEAVATAR_KEY
from bridge.sim.livekit_server import LiveKitServer
from tests.helpers import eventually

LIVEAVATAR_AVATAR = "4f3c2b1a-9d8e-4c7b-a6f5-e4d3c2b1a098"  # "My presenter" in the fake
PROVIDERS = ["heygen", "liveavatar"]


def bridge_settings(
    sim_url: str,
    server: LiveKitServer,
    *,
    provider: str,
    camera: dict[str, Any],
    microphone: dict[str, Any] | None = None,
    own_room: str | None = None,
    quality: str = "high",
) -> Settings:
    """The bridge against the simulator: a recording camera, the mic off unless given."""
    raw: dict[str, Any] = {
        "provider": provider,
        "heygen": {"base_url": sim_url, "timeout": 5, "retry_deadline": 5},
        "liveavatar": {"base_url": sim_url, "timeout": 5, "retry_deadline": 5},
        "avatar": {
            "quality": quality,
            **({"avatar_id": LIVEAVATAR_AVATAR} if provider == "liveavatar" else {}),
        },
        "camera": {"backend": "recording", **camera},
        "microphone": microphone if microphone is not None else {"enabled": False},
        "control": {"port": 0},
    }
    if own_room is not None:
        raw["livekit"] = {"url": server.url, "room": own_room}
    return Settings(
        config=parse(raw),
        secrets=Secrets(
            heygen_api_key=Secret(DEFAULT_HEYGEN_KEY),
            liveavatar_api_key=Secret(DEFAULT_LIVEAVATAR_KEY),
            livekit_api_key=Secret(server.api_key),
            livekit_api_secret=Secret(server.api_secret),
        ),
    )


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Bridge]:
    """The whole bridge in this process, live with the avatar; stopped (gracefully) on exit."""
    bridge = Bridge(settings)
    task = asyncio.create_task(bridge.run(), name="bridge-under-test")
    try:
        await eventually(lambda: bridge.manager.state == "live", within=20, what="avatar live")
        yield bridge
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
