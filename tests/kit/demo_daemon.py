"""``heygen-bridge run --demo`` as its own process, for the browser tests: the demo avatar (no
key, no network), a real control API, optionally a control token, asked as a client would
(the token as a Bearer header when one is set)."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.kit.eventually import eventually
from tests.kit.process import Child, launched

PROGRAM = ("-m", "bridge")  # the daemon exactly as users run it
CAMERA = {"width": 640, "height": 360, "card_label": "no-such-camera-here"}  # no v4l2 here
MIC_OFF = {"enabled": False}


@dataclass
class DemoDaemon:
    child: Child
    token: str | None

    @property
    def url(self) -> str:
        return self.child.url

    def log_tail(self, lines: int = 40) -> str:
        return self.child.log_tail(lines)

    async def get(self, path: str, **headers: str) -> tuple[int, Any]:
        """``GET path`` with the token (unless headers name one); (status, JSON body)."""
        if self.token is not None:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{self.url}{path}", headers=headers) as response,
            ):
                return response.status, await response.json()
        except aiohttp.ClientConnectionError:
            self.child.check_running()
            raise

    async def status(self) -> dict[str, Any]:
        code, body = await self.get("/v1/status")
        assert code == 200, body
        assert isinstance(body, dict)
        return body


@asynccontextmanager
async def demo_daemon(
    folder: Path,
    *,
    token: str | None = None,
    config: dict[str, Any] | None = None,
    port: int = 0,
) -> AsyncIterator[DemoDaemon]:
    """The daemon on the demo avatar (camera 640×360 with no device behind it, mic off, plus
    ``config``), yielded once its session is live; stopped with SIGTERM on exit, which must
    end it cleanly within the launcher's bound.  ``port`` 0: the system picks one (give a
    port only to bring a daemon back where an earlier one was)."""
    raw = {"camera": CAMERA, "microphone": MIC_OFF, **(config or {})}
    raw["control"] = {**raw.get("control", {}), "port": port}
    config_path = folder / "bridge.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    env = {k: v for k, v in os.environ.items() if k != "HEYGEN_BRIDGE_TOKEN"}
    if token is not None:
        env["HEYGEN_BRIDGE_TOKEN"] = token
    argv = [sys.executable, *PROGRAM, "--config", str(config_path), "run", "--demo"]
    async with launched("the bridge", argv, log_path=folder / "bridge.log", env=env) as child:
        daemon = DemoDaemon(child, token)
        await eventually(
            daemon.status,
            until=lambda s: s["session"]["state"] == "live",
            within=30,
            what="the demo avatar live",
            every=0.1,
        )
        yield daemon
