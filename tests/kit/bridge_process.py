"""The bridge as the end-to-end tests and benchmarks run it: configured against the
simulator (:func:`bridge_config`), then as its own process through the kit's launcher
(:func:`bridge_process`: ``control.port: 0``, the URL from its READY message) or in this
process (:func:`running`)."""

from __future__ import annotations

import asyncio
import os
import sys
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
from bridge.sim.livekit_server import LiveKitServer
from tests.kit.camera import Recording, read_recording
from tests.kit.eventually import eventually
from tests.kit.process import Child, launched

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
    """A running daemon (``heygen-bridge run``, or tests/kit/bridge_child.py with the recording
    camera), its control API, and what it recorded."""

    child: Child
    record_dir: Path

    @property
    def url(self) -> str:
        return self.child.url

    @property
    def log_path(self) -> Path:
        return self.child.log_path

    async def crash(self) -> None:
        """SIGKILL: no clean-up runs, as when the machine or the process dies."""
        await self.child.kill()

    async def status(self) -> dict[str, Any]:
        """``GET /v1/status``; fails with the end of the log if the daemon has died."""
        try:
            async with aiohttp.ClientSession() as http, http.get(f"{self.url}/v1/status") as resp:
                body: dict[str, Any] = await resp.json()
                return body
        except aiohttp.ClientConnectionError:
            self.child.check_running()
            raise

    async def wait(
        self, predicate: Callable[[dict[str, Any]], bool], *, within: float, what: str
    ) -> dict[str, Any]:
        """Poll the status until ``predicate`` holds; returns that status."""
        return await eventually(self.status, until=predicate, within=within, what=what, every=0.1)

    def recording(self, device: str) -> Recording:
        return read_recording(self.record_dir / f"{device}.jsonl")

    def log_tail(self, lines: int = 40) -> str:
        return self.child.log_tail(lines)


RECORDING_BRIDGE = ("-m", "tests.kit.bridge_child")  # the daemon with the recording camera
USERS_BRIDGE = ("-m", "bridge")  # the daemon exactly as users run it


@asynccontextmanager
async def bridge_process(
    raw: dict[str, Any],
    env: dict[str, str],
    folder: Path,
    *,
    program: tuple[str, ...] = RECORDING_BRIDGE,
    run: tuple[str, ...] = ("run",),
    live_within: float = 30,
) -> AsyncIterator[BridgeProcess]:
    """The daemon as its own process (config ``raw`` with ``control.port: 0``, environment
    ``os.environ`` + ``env``, ``$XDG_STATE_HOME`` in ``folder`` unless ``env`` sets it),
    yielded once its avatar is live; stopped with SIGTERM on exit
    (which must end it cleanly, exit code 0), unless the test crashed it."""
    async with bridge_started(raw, env, folder, program=program, run=run) as bridge:
        await bridge.wait(
            lambda s: s["session"]["state"] == "live", within=live_within, what="avatar live"
        )
        yield bridge


@dataclass(frozen=True)
class BridgeLaunch:
    """How :func:`bridge_process` starts the daemon: its command line, its environment (the
    recording camera's folder in ``$HB_RECORD_DIR``) and its log."""

    argv: list[str]
    env: dict[str, str]
    record_dir: Path
    log_path: Path


def bridge_launch(
    raw: dict[str, Any],
    env: dict[str, str],
    folder: Path,
    *,
    program: tuple[str, ...] = RECORDING_BRIDGE,
    run: tuple[str, ...] = ("run",),
) -> BridgeLaunch:
    """Write the daemon's config into ``folder``; how to start it (see :func:`bridge_process`)."""
    config = {**raw, "control": {**raw.get("control", {}), "port": 0}}
    # Its own state directory (orphan records, the speech queue's file), unless the test
    # shares one between runs on purpose (a restart).
    env = {"XDG_STATE_HOME": str(folder / "state"), **env}
    config_path = folder / "bridge.yaml"
    config_path.write_text(yaml.safe_dump(config))
    record_dir = folder / "recordings"
    record_dir.mkdir(exist_ok=True)
    return BridgeLaunch(
        argv=[sys.executable, *program, "--config", str(config_path), *run],
        env={**os.environ, **env, "HB_RECORD_DIR": str(record_dir)},
        record_dir=record_dir,
        log_path=folder / "bridge.log",
    )


@asynccontextmanager
async def bridge_started(
    raw: dict[str, Any],
    env: dict[str, str],
    folder: Path,
    *,
    program: tuple[str, ...] = RECORDING_BRIDGE,
    run: tuple[str, ...] = ("run",),
) -> AsyncIterator[BridgeProcess]:
    """:func:`bridge_process` yielding as soon as the control API answers (READY), before
    the avatar is live: for a test that acts while the session is still opening."""
    how = bridge_launch(raw, env, folder, program=program, run=run)
    async with launched("the bridge", how.argv, log_path=how.log_path, env=how.env) as child:
        yield BridgeProcess(child, how.record_dir)


def is_live(bridge: Bridge) -> bool:
    return bridge.manager.state == "live"


@asynccontextmanager
async def running(
    bridge: Bridge, *, ready: Callable[[Bridge], bool] = is_live, within: float = 30
) -> AsyncIterator[Bridge]:
    """``bridge.run()`` in this process (benchmarks run the bridge this way), yielded once
    ``ready(bridge)`` holds (by default: the avatar is live); cancelled on exit, which is its
    graceful stop.  Fails at once if ``run`` ends early."""
    task = asyncio.create_task(bridge.run(), name="bridge-under-test")

    def check() -> bool:
        if task.done():
            task.result()  # its error, if it failed
            raise AssertionError("Bridge.run() ended before the bridge was ready")
        return ready(bridge)

    try:
        await eventually(check, within=within, what=f"the bridge ready ({ready.__name__})")
        yield bridge
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            if (current := asyncio.current_task()) is not None and current.cancelling():
                raise
