"""The daemon as systemd runs it: a notify socket of our own (as systemd binds), a watchdog,
``timeout(1)`` around it (which delivers one ``kill -TERM`` twice: to the daemon and to its
process group).  It says READY=1, pings WATCHDOG=1, reloads on SIGHUP between RELOADING=1
and READY=1 (a changed preset is spoken without a new session), and one SIGTERM delivered
twice still stops it gracefully: STOPPING=1, its session stopped, exit code 0."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.kit.demo_daemon import CAMERA, MIC_OFF
from tests.kit.eventually import eventually

ROOT = Path(__file__).resolve().parents[2]
WATCHDOG_USEC = 400_000  # a ping every 0.2 s


@dataclass
class Notifications:
    """Every datagram the daemon sent to $NOTIFY_SOCKET, as field dicts, in order."""

    sock: socket.socket
    messages: list[dict[str, str]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            datagram = await loop.sock_recv(self.sock, 4096)
            lines = datagram.decode(errors="replace").splitlines()
            self.messages.append(dict(line.partition("=")[::2] for line in lines if "=" in line))
            self.arrived.set()

    def count(self, key: str) -> int:
        return sum(1 for m in self.messages if m.get(key) == "1")

    def keys_after(self, start: int) -> list[str]:
        """The state each message since ``start`` announced (READY, RELOADING, ...)."""
        order = ("READY", "RELOADING", "STOPPING", "WATCHDOG")
        return [next((k for k in order if m.get(k) == "1"), "") for m in self.messages[start:]]


@asynccontextmanager
async def notify_socket(folder: Path) -> AsyncIterator[tuple[str, Notifications]]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        address = str(folder / "notify")
        sock.bind(address)
        sock.setblocking(False)
        notes = Notifications(sock)
        reader = asyncio.create_task(notes.read(), name="notify-reader")
        try:
            yield address, notes
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


def write_config(path: Path, raw: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(raw))


def read_log(path: Path) -> str:
    return path.read_text(errors="replace")


def child_of(pid: int) -> int:
    """The one child of ``pid`` (the daemon that timeout(1) runs)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


async def get(url: str) -> Any:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_notify_watchdog_reload_and_one_sigterm_delivered_twice(tmp_path: Path) -> None:
    raw: dict[str, Any] = {
        "camera": CAMERA,  # a writer with no device behind it: the watchdog checks it writes
        "microphone": MIC_OFF,
        "control": {"port": 0, "persist_queue": False},
        "presets": {"hello": {"text": "Hello from before the reload."}},
    }
    config_path = tmp_path / "bridge.yaml"
    write_config(config_path, raw)
    log_path = tmp_path / "bridge.log"
    async with notify_socket(tmp_path) as (address, notes):
        env = {
            **{k: v for k, v in os.environ.items() if k != "HEYGEN_BRIDGE_TOKEN"},
            "NOTIFY_SOCKET": address,
            "WATCHDOG_USEC": str(WATCHDOG_USEC),
            "XDG_STATE_HOME": str(tmp_path / "state"),
        }
        argv = ["timeout", "120", sys.executable, "-m", "bridge"]
        argv += ["--config", str(config_path), "run", "--demo"]
        with log_path.open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                *argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        try:
            await _exercise(proc, notes, config_path, raw)
        except BaseException as exc:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            exc.add_note(f"the bridge's log:\n{read_log(log_path)[-4000:]}")
            raise
    log_text = read_log(log_path)
    assert "the same request, still stopping" in log_text, log_text[-3000:]


async def _exercise(
    proc: asyncio.subprocess.Process,
    notes: Notifications,
    config_path: Path,
    raw: dict[str, Any],
) -> None:
    ready = await eventually(
        lambda: next((m for m in notes.messages if m.get("READY") == "1"), None),
        within=30,
        what="READY=1",
    )
    assert ready is not None  # eventually returns only what passed
    url = ready["X_URL"]
    status = await eventually(
        lambda: get(f"{url}/v1/status"),
        until=lambda s: s["session"]["state"] == "live",
        within=30,
        what="the demo avatar live",
        every=0.1,
    )
    opened = status["session"]["sessions_opened"]
    pings = notes.count("WATCHDOG")
    await eventually(
        lambda: notes.count("WATCHDOG"), until=lambda n: n >= pings + 3, within=10, what="pings"
    )

    # SIGHUP: the changed preset is what the button says now, on the same session.
    raw["presets"]["hello"]["text"] = "Hello from after the reload."
    raw["camera"] = {**raw["camera"], "fit": "crop"}  # not live: reported
    write_config(config_path, raw)
    before = len(notes.messages)
    os.kill(proc.pid, signal.SIGHUP)  # timeout(1) forwards SIGHUP to the daemon
    await eventually(
        lambda: [k for k in notes.keys_after(before) if k != "WATCHDOG"],
        until=lambda keys: keys[:2] == ["RELOADING", "READY"],
        within=15,
        what="RELOADING=1 then READY=1",
    )
    reloading = next(m for m in notes.messages[before:] if m.get("RELOADING") == "1")
    assert int(reloading["MONOTONIC_USEC"]) > 0
    status = await get(f"{url}/v1/status")
    assert status["reload"]["applied"] == ["presets.hello.text"], status["reload"]
    assert status["reload"]["needs_restart"] == ["camera.fit"]
    presets = await get(f"{url}/v1/presets")
    assert presets["presets"][0]["text"] == "Hello from after the reload."
    async with aiohttp.ClientSession() as http, http.post(f"{url}/v1/presets/hello") as response:
        assert response.status == 202, await response.text()
        item = (await response.json())["items"][0]
    assert item["text"] == "Hello from after the reload."
    await eventually(
        lambda: get(f"{url}/v1/status"),
        until=lambda s: any(
            i["text"] == item["text"] and i["state"] == "done" for i in s["speech"]["recent"]
        ),
        within=30,
        what="the new preset spoken",
        every=0.1,
    )
    status = await get(f"{url}/v1/status")
    assert status["session"]["sessions_opened"] == opened, "the reload opened a new session"
    session_id = status["session"]["session_id"]

    # One `kill -TERM` of timeout(1): it signals the daemon, then its whole group; the two
    # often merge into one pending signal, so the daemon is sent the repeat itself too, as
    # soon as it said it is stopping (well within the second a repeat is the same request).
    daemon_pid = child_of(proc.pid)
    stopping = notes.count("STOPPING")
    os.kill(proc.pid, signal.SIGTERM)
    await eventually(
        lambda: notes.count("STOPPING"), until=lambda n: n > stopping, within=10, every=0.005
    )
    os.kill(daemon_pid, signal.SIGTERM)
    async with asyncio.timeout(30):
        code = await proc.wait()
    assert code == 0, "one SIGTERM delivered twice must stop the daemon gracefully"
    assert notes.count("STOPPING") == 1
    log_text = read_log(config_path.parent / "bridge.log")
    assert f"stopped session {session_id}" in log_text
