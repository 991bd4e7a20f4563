"""Faults in a session's lifetime, end to end: the simulator process, the real local LiveKit
server and the bridge process with the recording camera (tests/kit/faults.py has the checks).

* the duration limit: the next session opens before it and takes over without a visible
  switch (make-before-break), and what is asked around the switch is said;
* the idle timeout: LiveAvatar's ends the session and the bridge opens a new one; HeyGen's
  is kept away by keep-alives;
* the room deleted by the server: the avatar comes back and queued speech is said;
* the concurrency limit at renewal: break-before-make, said in status and in an event, then
  a fresh session;
* LiveAvatar ending the session for want of credits: no retry storm, the fix in status.

Every case ends with every session in the simulator's ledger closed once the bridge has
exited, and every speech request accounted for.  Limits are short (seconds, not minutes) so
the whole file stays within its time budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from livekit import api

from bridge.sim.livekit_server import LiveKitServer
from tests.kit.bridge_process import (
    PROVIDERS,
    BridgeProcess,
    bridge_config,
    bridge_process,
)
from tests.kit.eventually import eventually
from tests.kit.faults import CAMERA as FAULT_CAMERA
from tests.kit.faults import (
    assert_all_sessions_closed,
    assert_no_visible_switch,
    assert_speech_accounted,
    assert_writer_steady,
    camera_report,
    speak,
)
from tests.kit.simproc import SimProcess, StartSim
from tests.kit.steal import StealWatch

# 360p in, 360p out: the cheapest path on this 2-core machine that still carries the stamp.
CAMERA = {**FAULT_CAMERA, "slate_after": 0.3}  # the gap between sessions is short
SETTLE_S = 1.5  # after going live: first keyframe, decoder start
# The session's duration limit and the renewal margin: the renewal starts LIMIT_S - MARGIN_S
# after the session opened, and has MARGIN_S to open the next one and switch to it.
LIMIT_S = 11
MARGIN_S = 5.0
IDLE_S = 6  # LiveAvatar's idle timeout, far below the bridge's keep-alive every 60 s
HEYGEN_IDLE_S = 30  # HeyGen's shortest activity_idle_timeout
QUIET_S = 5.0  # watched for a retry after a fatal end (the first retry would come within 1 s)
SHORT = "Hello there."


@dataclass
class Run:
    """A bridge against a simulator, and the session events it emitted (WebSocket)."""

    sim: SimProcess
    bridge: BridgeProcess
    device: str
    events: list[dict[str, Any]]

    async def status(self) -> dict[str, Any]:
        return await self.bridge.status()

    async def session(self) -> dict[str, Any]:
        session: dict[str, Any] = (await self.bridge.status())["session"]
        return session

    async def event(self, topic: str, *, within: float, **fields: Any) -> dict[str, Any]:
        """The first event of ``topic`` (with these ``fields``), once it has come: pushed,
        so even a state that lasted a moment is seen."""

        def first() -> dict[str, Any] | None:
            return next(
                (
                    e
                    for e in self.events
                    if e["topic"] == topic and all(e.get(k) == v for k, v in fields.items())
                ),
                None,
            )

        found = await eventually(first, within=within, what=f"a {topic} event", every=0.02)
        assert found is not None
        return found


async def _collect(ws: aiohttp.ClientWebSocketResponse, into: list[dict[str, Any]]) -> None:
    async for message in ws:
        if message.type is not aiohttp.WSMsgType.TEXT:
            break
        body = message.json()
        if body.get("type") == "event":
            into.append(body)


@asynccontextmanager
async def session_events(bridge: BridgeProcess) -> AsyncIterator[list[dict[str, Any]]]:
    """The bridge's ``session.*`` events from now on, as its WebSocket pushes them."""
    events: list[dict[str, Any]] = []
    url = bridge.url.replace("http://", "ws://", 1) + "/v1/ws"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await ws.send_json({"type": "subscribe", "topics": ["session.*"]})
        collector = asyncio.create_task(_collect(ws, events), name="ws-events")
        try:
            yield events
        finally:
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector


@asynccontextmanager
async def bridge_on(
    sim: SimProcess,
    livekit_server: LiveKitServer,
    folder: Path,
    provider: str,
    avatar: dict[str, Any] | None = None,
) -> AsyncIterator[Run]:
    """The bridge (``avatar`` settings added) against ``sim``, live; stopped on exit."""
    await asyncio.to_thread(folder.mkdir, exist_ok=True)
    device = f"faults-{folder.name}"
    raw, env = bridge_config(
        sim.url,
        livekit_server,
        provider=provider,
        camera={**CAMERA, "device": device},
        quality="low",
    )
    raw["avatar"].update(avatar or {})
    async with bridge_process(raw, env, folder) as bridge, session_events(bridge) as events:
        yield Run(sim, bridge, device, events)


@asynccontextmanager
async def running(
    start_sim: StartSim,
    livekit_server: LiveKitServer,
    tmp_path: Path,
    provider: str,
    *sim_args: str,
    avatar: dict[str, Any] | None = None,
) -> AsyncIterator[Run]:
    """The simulator (``sim_args``) and the bridge, live; on exit the bridge is stopped and
    every session in the ledger must be closed."""
    sim = await start_sim(*sim_args)
    async with bridge_on(sim, livekit_server, tmp_path, provider, avatar) as run:
        yield run
    await assert_all_sessions_closed(sim)


def renewal_settings(margin: float = MARGIN_S) -> dict[str, Any]:
    return {"renew_margin_s": margin}


def limit_args(limit: int = LIMIT_S) -> tuple[str, ...]:
    """The duration limit, for either provider."""
    return ("--session-limit", str(limit), "--max-session-duration", str(limit))


async def ledger_sessions(sim: SimProcess, kind: str) -> list[dict[str, Any]]:
    return [e for e in (await sim.ledger())["sessions"] if e["kind"] == kind]


def said(sessions: list[dict[str, Any]]) -> list[str]:
    return [text for session in sessions for text in session["history"]]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_duration_limit_renews_without_a_visible_switch(
    start_sim: StartSim,
    livekit_server: LiveKitServer,
    steal_watch: StealWatch,
    tmp_path: Path,
    provider: str,
) -> None:
    texts = ["Just before the switch.", "And during it."]
    async with running(
        start_sim, livekit_server, tmp_path, provider, *limit_args(), avatar=renewal_settings()
    ) as run:
        first = (await run.session())["session_id"]
        await asyncio.sleep(SETTLE_S)
        start = time.perf_counter()
        await run.event("session.renewing", within=LIMIT_S)
        # The first goes to the old session (the switch waits for its end), the second
        # waits for the switch and goes to the new one.
        ids = [await speak(run.bridge, text) for text in texts]
        renewed = await run.event("session.renewed", within=MARGIN_S + 10)
        assert renewed["previous"] == first, renewed
        await assert_speech_accounted(run.bridge, ids)
        await asyncio.sleep(1.0)  # the new session on the camera for a while
        end = time.perf_counter()
        session = await run.session()
        assert session["session_id"] == renewed["session_id"] != first, session
        assert session["state"] == "live", session
        assert session["renewal"] == "make-before-break", session
        stopped = [e["session_id"] for e in await ledger_sessions(run.sim, "stopped")]
        assert first in stopped, "the old session was not stopped by the bridge"
        assert set(texts) <= set(said(await run.sim.sessions(provider)))
    frames = [f for f in run.bridge.recording(run.device).since(start) if f.at <= end]
    assert_no_visible_switch(camera_report(frames, steal_watch))


async def test_idle_timeouts_liveavatar_reconnects_heygen_kept_alive(
    start_sim: StartSim, livekit_server: LiveKitServer, steal_watch: StealWatch, tmp_path: Path
) -> None:
    """Both providers at once against one simulator (HeyGen's shortest idle timeout is 30 s:
    the LiveAvatar case runs inside that wait).

    LiveAvatar: the bridge's keep-alive (every 60 s) is slower than this idle timeout, so the
    service ends the session (``session.stopped`` with ``IDLE_TIMEOUT``) and the bridge opens
    a new one, the slate on the camera meanwhile.  HeyGen: nothing is said for longer than
    ``activity_idle_timeout``, and the bridge's keep-alives keep the session (the simulator
    ends an idle one as HeyGen does)."""
    sim = await start_sim("--idle-timeout", str(IDLE_S))
    async with (
        bridge_on(
            sim,
            livekit_server,
            tmp_path / "heygen",
            "heygen",
            avatar={"activity_idle_timeout": HEYGEN_IDLE_S},
        ) as heygen,
        bridge_on(sim, livekit_server, tmp_path / "liveavatar", "liveavatar") as liveavatar,
    ):
        kept = (await heygen.session())["session_id"]
        kept_since = time.monotonic()  # the session started before it went live
        start = time.perf_counter()
        await assert_idle_session_replaced(liveavatar)
        end = time.perf_counter()
        await asyncio.sleep(max(0.0, HEYGEN_IDLE_S + 5 - (time.monotonic() - kept_since)))
        await assert_session_kept(heygen, kept)
    await assert_all_sessions_closed(sim)
    frames = [f for f in liveavatar.bridge.recording(liveavatar.device).since(start) if f.at <= end]
    assert_writer_steady(camera_report(frames, steal_watch))


async def assert_idle_session_replaced(run: Run) -> None:
    """The live session idles out and a new one opens, which says what it is asked to."""
    first = (await run.session())["session_id"]
    await run.event("session.ended", within=IDLE_S + 10, session_id=first)
    session = (
        await run.bridge.wait(
            lambda s: s["session"]["state"] == "live" and s["session"]["session_id"] != first,
            within=20,
            what="a new session live",
        )
    )["session"]
    assert session["reconnects"] >= 1, session
    assert "IDLE_TIMEOUT" in (session["last_reason"] or ""), session
    item = await speak(run.bridge, SHORT)  # speech is activity: said before the next idle
    await assert_speech_accounted(run.bridge, [item])
    expired = await ledger_sessions(run.sim, "expired")
    assert (first, "IDLE_TIMEOUT") in [(e["session_id"], e["reason"]) for e in expired]


async def assert_session_kept(run: Run, session_id: str) -> None:
    """The same session still live, kept by keep-alives alone, and it still speaks."""
    session = await run.session()
    assert (session["session_id"], session["state"]) == (session_id, "live"), session
    assert session["reconnects"] == 0, session
    ledger = await run.sim.ledger()
    ended = [
        e for e in ledger["sessions"] if e["session_id"] == session_id and e["kind"] == "expired"
    ]
    assert not ended, ended
    keep_alives = [r for r in ledger["requests"] if r["path"].endswith("streaming.keep_alive")]
    assert len(keep_alives) >= 2, [r["path"] for r in ledger["requests"]]
    item = await speak(run.bridge, SHORT)
    await assert_speech_accounted(run.bridge, [item])


async def delete_room(livekit_server: LiveKitServer, room: str) -> None:
    """The LiveKit server deletes the room: everyone in it is disconnected."""
    lk = api.LiveKitAPI(
        livekit_server.url.replace("ws://", "http://"),
        livekit_server.api_key,
        livekit_server.api_secret,
    )
    try:
        await lk.room.delete_room(api.DeleteRoomRequest(room=room))
    finally:
        await lk.aclose()


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_room_deleted_by_the_server_the_avatar_comes_back(
    start_sim: StartSim,
    livekit_server: LiveKitServer,
    steal_watch: StealWatch,
    tmp_path: Path,
    provider: str,
) -> None:
    async with running(start_sim, livekit_server, tmp_path, provider) as run:
        await asyncio.sleep(SETTLE_S)
        start = time.perf_counter()
        first = (await run.session())["session_id"]
        room = (await run.sim.session(provider, first))["room"]
        await delete_room(livekit_server, room)
        # Gone from the camera's point of view (the state leaves live: reconnecting, ended).
        await eventually(
            lambda: any(e["state"] != "live" for e in run.events if e["topic"] == "session.state"),
            within=10,
            what="the avatar gone",
        )
        item = await speak(run.bridge, SHORT)  # asked while it is away: said once it is back
        await assert_speech_accounted(run.bridge, [item])
        await run.bridge.wait(
            lambda s: s["session"]["state"] == "live", within=30, what="the avatar back"
        )
        await asyncio.sleep(1.0)  # the avatar on the camera again for a while
        end = time.perf_counter()
    frames = [f for f in run.bridge.recording(run.device).since(start) if f.at <= end]
    report = camera_report(frames, steal_watch)
    assert_writer_steady(report)
    assert frames[-1].stamp is not None, report.describe()  # the avatar back on the camera


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_concurrency_limit_at_renewal_falls_back_to_break_before_make(
    start_sim: StartSim,
    livekit_server: LiveKitServer,
    steal_watch: StealWatch,
    tmp_path: Path,
    provider: str,
) -> None:
    """One session at a time: the next cannot open beside the old one, so the old runs to its
    limit and the next one opens after it (the slate between, when the gap outlasts the
    camera's ``slate_after``)."""
    async with running(
        start_sim,
        livekit_server,
        tmp_path,
        provider,
        "--max-concurrent",
        "1",
        *limit_args(),
        avatar=renewal_settings(),
    ) as run:
        first = (await run.session())["session_id"]
        start = time.perf_counter()
        fallback = await run.event("session.renewal", within=LIMIT_S)
        assert fallback["mode"].startswith("break-before-make"), fallback
        session = await run.session()
        assert session["renewal"].startswith("break-before-make"), session
        before = await speak(run.bridge, SHORT)  # on the old session, before its end
        await run.event("session.ended", within=LIMIT_S, session_id=first)
        during = await speak(run.bridge, "Said by the next session.")  # in the gap
        await run.bridge.wait(
            lambda s: s["session"]["state"] == "live" and s["session"]["session_id"] != first,
            within=20,
            what="the next session live",
        )
        await assert_speech_accounted(run.bridge, [before, during])
        await asyncio.sleep(1.0)
        end = time.perf_counter()
        expired = [e["session_id"] for e in await ledger_sessions(run.sim, "expired")]
        assert expired == [first], "the old session did not run to its limit"
        created = await ledger_sessions(run.sim, "created")
        assert len(created) == 2, created  # no storm of refused opens either
    frames = [f for f in run.bridge.recording(run.device).since(start) if f.at <= end]
    report = camera_report(frames, steal_watch)
    assert_writer_steady(report)
    assert frames[-1].stamp is not None, report.describe()  # the next session's avatar


async def test_liveavatar_no_credits_fails_without_a_retry_storm(
    start_sim: StartSim, livekit_server: LiveKitServer, tmp_path: Path
) -> None:
    """LiveAvatar ends the session with ``NO_CREDITS``: a new session would meet it again, so
    the bridge stops trying and says what to do."""
    provider = "liveavatar"
    async with running(start_sim, livekit_server, tmp_path, provider) as run:
        first = (await run.session())["session_id"]
        await assert_speech_accounted(run.bridge, [await speak(run.bridge, SHORT)])
        await run.sim.end(first, "NO_CREDITS")
        failed = (
            await run.bridge.wait(
                lambda s: s["session"]["state"] == "failed", within=15, what="failed"
            )
        )["session"]
        assert "credits" in (failed["fix"] or "").lower(), failed
        assert failed["next_try_in_s"] is None, failed  # no retry planned
        await asyncio.sleep(QUIET_S)
        created = await ledger_sessions(run.sim, "created")
        assert [e["session_id"] for e in created] == [first], created
        session = await run.session()
        assert session["state"] == "failed", session
