"""What the end-to-end tests share: a bridge configured against the simulator process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bridge.app import Bridge
from bridge.config import Secret, Secrets, Settings, parse
from bridge.sim import DEFAULT_HEYGEN_KEY, DEFAULT_LIVEAVATAR_KEY
from bridge.sim.livekit_server import LiveKitServer, free_port
from tests.kit.camera import Recording, read_recording
from tests.kit.eventually import eventually

LIVEAVATAR_AVATAR = "4f3c2b1a-9d8e-4c7b-a6f5-e4d3c2b1a098"  # "My presenter" in the fake
PROVIDERS = ["heygen", "liveavatar"]


def bridge_config(
    sim_url: str,
    server: LiveKitServer,
    *,
    provider: str,
    camera: dict[str, Any],
    microphone: dict[str, Any] | None = None,
    own_room: str | None = None,
    quality: str = "high",
) -> tuple[dict[str, Any], dict[str, str]]:
    """The bridge against the simulator (a recording camera, the mic off unless given):
    the config file's content, and the secrets for its environment."""
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
    env = {
        "HEYGEN_API_KEY": DEFAULT_HEYGEN_KEY,
        "LIVEAVATAR_API_KEY": DEFAULT_LIVEAVATAR_KEY,
        "LIVEKIT_API_KEY": server.api_key,
        "LIVEKIT_API_SECRET": server.api_secret,
    }
    return raw, env


def bridge_settings(sim_url: str, server: LiveKitServer, **options: Any) -> Settings:
    """:func:`bridge_config` as in-process settings (benchmarks run the bridge this way)."""
    raw, env = bridge_config(sim_url, server, **options)
    return Settings(
        config=parse(raw),
        secrets=Secrets(
            heygen_api_key=Secret(env["HEYGEN_API_KEY"]),
            liveavatar_api_key=Secret(env["LIVEAVATAR_API_KEY"]),
            livekit_api_key=Secret(env["LIVEKIT_API_KEY"]),
            livekit_api_secret=Secret(env["LIVEKIT_API_SECRET"]),
        ),
    )


@dataclass
class BridgeProcess:
    """A running ``heygen-bridge run`` (tests/kit/bridge_child.py) and what it recorded."""

    url: str
    proc: asyncio.subprocess.Process
    record_dir: Path
    log_path: Path
    crashed: bool = False

    async def crash(self) -> None:
        """SIGKILL: no clean-up runs, as when the machine or the process dies."""
        self.proc.kill()
        await self.proc.wait()
        self.crashed = True

    async def status(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/v1/status") as resp:
            body: dict[str, Any] = await resp.json()
            return body

    async def wait(
        self, predicate: Callable[[dict[str, Any]], bool], *, within: float, what: str
    ) -> dict[str, Any]:
        """Poll the status until ``predicate`` holds; returns that status."""
        deadline = time.monotonic() + within
        while True:
            current = await self.status()
            if predicate(current):
                return current
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {within:g} s: {what}; status {current}")
            await asyncio.sleep(0.1)

    def recording(self, device: str) -> Recording:
        return read_recording(self.record_dir / f"{device}.jsonl")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@asynccontextmanager
async def bridge_process(
    raw: dict[str, Any], env: dict[str, str], folder: Path
) -> AsyncIterator[BridgeProcess]:
    """The bridge as its own process, live with the avatar; stopped with SIGTERM on exit
    (which must end it cleanly, exit code 0), unless the test crashed it."""
    port = free_port()
    config = {**raw, "control": {**raw.get("control", {}), "port": port}}
    config_path = folder / "bridge.yaml"
    config_path.write_text(yaml.safe_dump(config))
    record_dir = folder / "recordings"
    record_dir.mkdir(exist_ok=True)
    log_path = folder / "bridge.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.kit.bridge_child",
            "--config",
            str(config_path),
            "run",
            env={**os.environ, **env, "HB_RECORD_DIR": str(record_dir)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    bridge = BridgeProcess(f"http://127.0.0.1:{port}", proc, record_dir, log_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if (await bridge.status())["session"]["state"] == "live":
                    break
            except aiohttp.ClientError:
                pass
            if proc.returncode is not None or time.monotonic() > deadline:
                raise AssertionError(f"the bridge did not go live:\n{bridge.log_tail()}")
            await asyncio.sleep(0.1)
        yield bridge
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            code = await proc.wait()
        assert code == 0 or bridge.crashed, f"the bridge exited with {code}:\n{bridge.log_tail()}"


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
