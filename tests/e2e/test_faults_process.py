"""Fault injection on the daemon's own process (issue 11): the simulator process, the real
LiveKit server, the bridge process with the recording camera.

* **SIGTERM mid-speech**: a graceful stop (``STOPPING=1``, exit 0, its session stopped); the
  item being said is reported dropped with a reason, the queued ones are kept on disk and
  said by the next run;
* **SIGKILL, then a restart**: the session the killed run left open is stopped by the next
  run before it opens its own, which goes live;
* **a hung camera writer** under systemd's watchdog: the ``WATCHDOG=1`` pings stop while the
  writer hangs (and the log says why), and come back when it writes again;
* **stopped while the room is still connecting**, ten rounds against one simulator: a client
  stopping its session right after starting it, and the bridge getting SIGTERM as its
  session's room connects; the simulator stays up and serves a new session, the bridge exits
  0 every time, and neither logs a traceback or the LiveKit SDK's panic.

Every case ends with the checks of tests/kit/faults.py: the camera writer steady, every
session in the simulator's ledger closed, every accepted speech request accounted for.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.sim import DEFAULT_HEYGEN_KEY, DEFAULT_LIVEAVATAR_KEY
from bridge.sim.livekit_server import LiveKitServer
from tests.kit.bridge_process import (
    LIVEAVATAR_AVATAR,
    PROVIDERS,
    BridgeProcess,
    bridge_config,
    bridge_launch,
    bridge_process,
    bridge_started,
)
from tests.kit.eventually import eventually
from tests.kit.faults import (
    CAMERA,
    assert_all_sessions_closed,
    assert_speech_accounted,
    assert_writer_steady,
    camera_report,
    speak,
)
from tests.kit.process import ROOT, Child
from tests.kit.simproc import SimProcess, StartSim
from tests.kit.steal import StealWatch

# Long enough to be still in the avatar's mouth when the daemon is stopped (about 15 s).
LONG = (
    "Good morning everyone, and welcome to the quarterly review of the platform team, where "
    "we will walk through the roadmap, the incidents of the last three months, and the plans "
    "for the next quarter, one slide at a time, with questions at the end of each part."
)
QUEUED = ["Second.", "Third."]
WATCHDOG_USEC = 400_000  # a ping every 0.2 s
HUNG_FOR_S = 1.0  # the writer stays hung this long after the daemon said it is unhealthy
ROUNDS = 10
# Where the SIGTERM lands: this long after the bridge says its room is connecting.  Joining
# takes about 150-200 ms here, so most land inside the connect, the last just after it.
SIGTERM_AFTER_S = (0.0, 0.0, 0.03, 0.06, 0.15)
# The LiveKit SDK panics this long after a connect cut in half (the bug these rounds guard).
SDK_PANIC_AFTER_S = 15.0
# In a log, what must never be there: a Python traceback, the Rust SDK's panic, and its
# complaint about a connect cut in half (bridge/source/livekit_join.py).
CRASH_SIGNS = re.compile(r"Traceback|panicked|ReadyForRoomEventRequest")


def config(
    sim: SimProcess, livekit: LiveKitServer, provider: str, device: str, state: Path
) -> tuple[dict[str, Any], dict[str, str]]:
    """The bridge against ``sim``, its state (orphan records, the queue) in ``state``:
    the same folder for every run of one test, as for a daemon restarted on one machine."""
    raw, env = bridge_config(
        sim.url, livekit, provider=provider, camera={**CAMERA, "device": device}, quality="low"
    )
    raw["microphone"] = {"enabled": False}
    return raw, {**env, "XDG_STATE_HOME": str(state)}


def folder(base: Path, name: str) -> Path:
    path = base / name
    path.mkdir()
    return path


async def ledger_kinds(sim: SimProcess, session_id: str) -> list[str]:
    """What the simulator's ledger says happened to one session, in order."""
    events = (await sim.ledger())["sessions"]
    return [e["kind"] for e in events if e["session_id"] == session_id]


def assert_clean_log(path: Path) -> None:
    text = path.read_text(errors="replace")
    found = CRASH_SIGNS.search(text)
    assert found is None, f"{path.name}: {found.group(0)!r} in\n{text[-3000:]}"


def speaking(item_id: str) -> Any:
    def check(status: dict[str, Any]) -> bool:
        current = status["speech"]["current"]
        return current is not None and current["id"] == item_id and current["state"] == "speaking"

    return check


# --- systemd's side: a notify socket of our own -------------------------------------------


@dataclass
class Notifications:
    """Every datagram the daemon sent to ``$NOTIFY_SOCKET``, as field dicts, in order."""

    sock: socket.socket
    messages: list[dict[str, str]] = field(default_factory=list)

    async def read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            datagram = await loop.sock_recv(self.sock, 4096)
            lines = datagram.decode(errors="replace").splitlines()
            self.messages.append(dict(line.partition("=")[::2] for line in lines if "=" in line))

    def count(self, key: str, since: int = 0) -> int:
        return sum(1 for m in self.messages[since:] if m.get(key) == "1")

    def find(self, key: str, value: str, since: int = 0) -> int:
        """The index of the first message at or after ``since`` whose ``key`` starts with
        ``value``; -1 when there is none (yet)."""
        for index in range(since, len(self.messages)):
            if self.messages[index].get(key, "").startswith(value):
                return index
        return -1

    async def wait_for(
        self, key: str, value: str, *, since: int = 0, within: float, child: Child
    ) -> int:
        """:meth:`find`, once the message has come; fails at once if ``child`` exits."""

        def look() -> int:
            child.check_running()
            return self.find(key, value, since)

        found: int = await eventually(
            look, until=lambda i: i >= 0, within=within, what=f"{key}={value}"
        )
        return found


@asynccontextmanager
async def notified_bridge(
    raw: dict[str, Any], env: dict[str, str], base: Path, *, watchdog_usec: int | None = None
) -> AsyncIterator[tuple[BridgeProcess, Notifications]]:
    """The daemon as systemd runs it: ``$NOTIFY_SOCKET`` bound here for its whole life (the
    kit's launcher closes its own at READY), ``$WATCHDOG_USEC`` when given; yielded once its
    avatar is live, stopped with SIGTERM on exit (exit code 0 required)."""
    how = bridge_launch(raw, env, base)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        address = str(base / "notify")
        sock.bind(address)
        sock.setblocking(False)
        notes = Notifications(sock)
        reader = asyncio.create_task(notes.read(), name="notify-reader")
        extra = {"NOTIFY_SOCKET": address}
        if watchdog_usec is not None:
            extra["WATCHDOG_USEC"] = str(watchdog_usec)
        with how.log_path.open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                *how.argv,
                env={**how.env, **extra},
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        child = Child("the bridge", proc, how.log_path)
        bridge = BridgeProcess(child, how.record_dir)
        try:
            ready = await notes.wait_for("READY", "1", within=30, child=child)
            child.ready = notes.messages[ready]
            await bridge.wait(lambda s: s["session"]["state"] == "live", within=30, what="live")
            yield bridge, notes
        except BaseException as exc:
            code = await child.stop()
            exc.add_note(f"the bridge (exit code {code}), end of its log:\n{child.log_tail()}")
            raise
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    code = await child.stop()
    assert code == 0 or child.killed, f"the bridge exited with code {code}:\n{child.log_tail()}"


async def collect_events(url: str, topics: list[str], into: list[dict[str, Any]]) -> None:
    """The daemon's events on ``/v1/ws`` until it closes the connection (its shutdown)."""
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/v1/ws") as ws:
        await ws.send_json({"type": "subscribe", "topics": topics, "ref": "sub"})
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                into.append(json.loads(message.data))


# --- SIGTERM mid-speech --------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_sigterm_mid_speech_drops_what_is_said_and_keeps_the_queue(
    start_sim: StartSim,
    livekit_server: LiveKitServer,
    steal_watch: StealWatch,
    tmp_path: Path,
    provider: str,
) -> None:
    sim = await start_sim()
    device = f"faults-sigterm-{provider}"
    raw, env = config(sim, livekit_server, provider, device, tmp_path / "state")
    events: list[dict[str, Any]] = []
    async with notified_bridge(raw, env, folder(tmp_path, "first")) as (first, notes):
        listener = asyncio.create_task(
            collect_events(first.url, ["speech.*"], events), name="ws-events"
        )
        await eventually(lambda: events, what="the WebSocket's subscription acknowledged")
        said = await speak(first, LONG)
        queued = [await speak(first, text) for text in QUEUED]
        status = await first.wait(speaking(said), within=30, what="the long item being said")
        old_session = status["session"]["session_id"]
        code = await first.child.stop()
        async with asyncio.timeout(10):
            await listener  # the daemon closed the WebSocket on its way out
    assert code == 0
    assert notes.count("STOPPING") == 1
    assert "stopped" in await ledger_kinds(sim, old_session)
    dropped = [e for e in events if e.get("topic") == "speech.dropped" and e["id"] == said]
    assert dropped, f"no speech.dropped event for {said}: {events}"
    assert dropped[0]["item"]["detail"], dropped[0]
    line = re.compile(rf"speech {said} \(.*\): dropped \(.+\)")
    assert line.search(first.log_path.read_text()), first.log_tail()
    assert_writer_steady(camera_report(first.recording(device).frames, steal_watch))

    async with bridge_process(raw, env, folder(tmp_path, "second")) as second:
        await assert_speech_accounted(second, queued)  # the same ids, spoken by this run
        new_session = (await second.status())["session"]["session_id"]
        assert (await sim.session(provider, new_session))["history"] == QUEUED
    assert_writer_steady(camera_report(second.recording(device).frames, steal_watch))
    await assert_all_sessions_closed(sim)


# --- SIGKILL, then a restart ---------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_sigkill_then_restart_stops_the_orphan_and_goes_live(
    start_sim: StartSim,
    livekit_server: LiveKitServer,
    steal_watch: StealWatch,
    tmp_path: Path,
    provider: str,
) -> None:
    sim = await start_sim()
    device = f"faults-sigkill-{provider}"
    raw, env = config(sim, livekit_server, provider, device, tmp_path / "state")
    async with bridge_process(raw, env, folder(tmp_path, "killed")) as killed:
        orphan = (await killed.status())["session"]["session_id"]
        await killed.crash()
    assert await sim.ledger_open_sessions() == [orphan]  # nobody stopped it

    async with bridge_process(raw, env, folder(tmp_path, "next")) as after:
        assert "stopped" in await ledger_kinds(sim, orphan)  # before the new one went live
        status = await after.status()
        assert status["session"]["session_id"] != orphan
        await assert_speech_accounted(after, [await speak(after, "Back again.")])
    assert_writer_steady(camera_report(after.recording(device).frames, steal_watch))
    await assert_all_sessions_closed(sim)


# --- a hung camera writer under systemd's watchdog -----------------------------------------


async def test_watchdog_pings_stop_while_the_camera_writer_hangs(
    start_sim: StartSim, livekit_server: LiveKitServer, steal_watch: StealWatch, tmp_path: Path
) -> None:
    sim = await start_sim()
    device = "faults-hung-writer"
    raw, env = config(sim, livekit_server, "heygen", device, tmp_path / "state")
    async with notified_bridge(
        raw, env, folder(tmp_path, "bridge"), watchdog_usec=WATCHDOG_USEC
    ) as (bridge, notes):
        await eventually(lambda: notes.count("WATCHDOG"), until=lambda n: n >= 3, what="pings")
        hang = bridge.record_dir / f"{device}.hang"
        hung_at = time.perf_counter()
        hang.touch()
        unhealthy = await notes.wait_for("STATUS", "unhealthy", within=30, child=bridge.child)
        await asyncio.sleep(HUNG_FOR_S)  # still hung: no ping may go out meanwhile
        released_at = time.perf_counter()
        hang.unlink()
        healthy = await notes.wait_for(
            "STATUS", "healthy", since=unhealthy + 1, within=15, child=bridge.child
        )
        await eventually(
            lambda: notes.count("WATCHDOG", since=healthy),
            until=lambda n: n >= 3,
            what="pings again",
        )
        assert notes.count("WATCHDOG", since=unhealthy) == notes.count("WATCHDOG", since=healthy)
        assert (await bridge.status())["session"]["state"] == "live"
    log = bridge.log_path.read_text()
    assert "unhealthy, not pinging the systemd watchdog: camera writer has not written" in log
    assert "healthy again, pinging the systemd watchdog" in log
    frames = bridge.recording(device).frames
    for part in (
        [f for f in frames if f.at < hung_at],
        [f for f in frames if f.at > released_at],
    ):
        assert_writer_steady(camera_report(part, steal_watch))
    await assert_all_sessions_closed(sim)


# --- stopped while the room is still connecting, ten times ---------------------------------


async def start_then_stop(sim_url: str, provider: str) -> str:
    """What third-party clients do on their error paths: start a session, stop it at once
    (while the avatar's room is still connecting).  The session's id."""
    async with aiohttp.ClientSession(raise_for_status=True) as http:
        if provider == "liveavatar":
            key = {"X-API-KEY": DEFAULT_LIVEAVATAR_KEY}
            body = {"mode": "FULL", "avatar_id": LIVEAVATAR_AVATAR}
            async with http.post(f"{sim_url}/v1/sessions/token", json=body, headers=key) as r:
                data = (await r.json())["data"]
            bearer = {"Authorization": f"Bearer {data['session_token']}"}
            async with http.post(f"{sim_url}/v1/sessions/start", headers=bearer):
                pass
            async with http.post(f"{sim_url}/v1/sessions/stop", json={}, headers=bearer):
                pass
        else:
            key = {"x-api-key": DEFAULT_HEYGEN_KEY}
            body = {"version": "v2", "quality": "low"}
            async with http.post(f"{sim_url}/v1/streaming.new", json=body, headers=key) as r:
                data = (await r.json())["data"]
            ask = {"session_id": data["session_id"]}
            async with http.post(f"{sim_url}/v1/streaming.start", json=ask, headers=key):
                pass
            async with http.post(f"{sim_url}/v1/streaming.stop", json=ask, headers=key):
                pass
    session_id: str = data["session_id"]
    return session_id


async def connecting(bridge: BridgeProcess, *, not_: str | None = None) -> str:
    """Once the bridge's session (another than ``not_``) has been created and its room is
    connecting (or has just connected), that session's id."""

    def opened(status: dict[str, Any]) -> bool:
        session = status["session"]
        return session["state"] in ("connecting", "live") and session["session_id"] != not_

    status = await eventually(bridge.status, until=opened, within=30, what="a room connecting")
    session_id: str = status["session"]["session_id"]
    return session_id


async def ended_then_sigterm_while_connecting(
    sim: SimProcess, raw: dict[str, Any], env: dict[str, str], base: Path, delay: float
) -> str:
    """Start the bridge; as its first session's room connects the service ends that session
    (the bridge must leave the room it is joining and open the next); ``delay`` s after the
    next one's room is connecting, SIGTERM: exit 0, the session stopped.  The bridge's state
    at the SIGTERM."""
    async with bridge_started(raw, env, base) as bridge:
        ended = await connecting(bridge)
        await sim.end(ended, reason="SERVER_ERROR")
        stopped = await connecting(bridge, not_=ended)
        await asyncio.sleep(delay)
        state: str = (await bridge.status())["session"]["state"]
        code = await bridge.child.stop()
    assert code == 0, bridge.log_tail()
    assert "expired" in await ledger_kinds(sim, ended)
    assert "stopped" in await ledger_kinds(sim, stopped)
    assert_clean_log(bridge.log_path)
    return state


async def test_stop_and_sigterm_while_the_room_connects_ten_times(
    start_sim: StartSim, livekit_server: LiveKitServer, steal_watch: StealWatch, tmp_path: Path
) -> None:
    sim = await start_sim()
    seen: list[str] = []  # the bridge's state when the SIGTERM went
    last_stop = time.monotonic()
    for round_ in range(ROUNDS):
        provider = PROVIDERS[round_ % len(PROVIDERS)]
        stopped = await start_then_stop(sim.url, provider)
        assert "stopped" in await ledger_kinds(sim, stopped)
        raw, env = config(
            sim, livekit_server, provider, f"faults-connect-{round_}", tmp_path / "state"
        )
        delay = SIGTERM_AFTER_S[round_ % len(SIGTERM_AFTER_S)]
        seen.append(
            await ended_then_sigterm_while_connecting(
                sim, raw, env, folder(tmp_path, f"round-{round_}"), delay
            )
        )
        last_stop = time.monotonic()
        sim.child.check_running()

    # The simulator still serves a new session (either provider), past the SDK's panic time.
    device = "faults-connect-after"
    raw, env = config(sim, livekit_server, "liveavatar", device, tmp_path / "state")
    async with bridge_process(raw, env, folder(tmp_path, "after")) as bridge:
        await assert_speech_accounted(bridge, [await speak(bridge, "Still here.")])
        await asyncio.sleep(max(0.0, last_stop + SDK_PANIC_AFTER_S - time.monotonic()))
        sim.child.check_running()
        assert (await bridge.status())["session"]["state"] == "live"
    assert_writer_steady(camera_report(bridge.recording(device).frames, steal_watch))
    assert_clean_log(bridge.log_path)
    await assert_all_sessions_closed(sim)
    assert_clean_log(sim.child.log_path)
    assert "connecting" in seen, seen
