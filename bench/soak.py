"""Chaos soak: the daemon against the simulator for minutes, a fault every 30 s, speech every 5 s.

    python bench/soak.py [--minutes 10] [--provider liveavatar|heygen]

A real ``livekit-server --dev``, the simulator as its own process (``heygen-bridge simulate``,
a short duration limit so that sessions renew every ~35 s) and the daemon as its own process
with the recording camera (tests/kit/bridge_process.py), quality "low" (360p).  Every 5 s a
``POST /v1/speak``; every 30 s the next fault of the rotation (:data:`ROTATION`): the first
slot is calm (only the renewal at the duration limit happens) and is the baseline.

Printed at the end, and checked (exit code 1 when an invariant breaks):

* sessions created in the simulator's ledger = sessions closed (stopped by the bridge, or
  ended by the service), none left open after the daemon's graceful stop;
* speech requests accepted = spoken + reported dropped/failed (each with a reason), from the
  daemon's own event stream (``/v1/ws``);
* the camera (tests/kit/faults.py ``camera_report`` on the recording): the longest time
  without a fresh avatar frame, split into outside break-before-make (the daemon live, no
  fault that takes the picture away: renewals count here), across renewals, and overall;
  the longest writer gap; beside the calm first slot as baseline;
* the daemon's RSS at start and end (and the simulator's, beside it).

Goals (issue 11): longest gap outside break-before-make ≤ 2 frame intervals, RSS growth ≤ 10 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from livekit import api

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.kit

from bridge.sim.livekit_server import LiveKitServer, find_binary
from tests.kit.bridge_process import BridgeProcess, bridge_config, bridge_process
from tests.kit.camera import Written
from tests.kit.faults import CameraReport, camera_report
from tests.kit.simproc import SimProcess, sim_process
from tests.kit.steal import TICK_S, StealWatch, read_steal

SLOT_S = 30.0  # a fault every 30 s
SPEAK_EVERY_S = 5.0
FAULT_HOLD_S = 10.0  # how long a lasting fault (5xx, latency, drops) stays on
SESSION_LIMIT_S = 50  # renewal at 50 - 15 = 35 s of a session's life
RENEW_MARGIN_S = 15.0
RECOVER_WITHIN_S = 60.0
SETTLE_WITHIN_S = 90.0  # for the last speech items once the faults stop
PAD_S = 1.0  # a break window's margin: the picture stops before the daemon notices
FPS = 30.0
GOAL_GAP_S = 2 / FPS
GOAL_RSS_MB = 10.0
DEVICE = "soak-cam"
FINAL = ("done", "dropped", "failed")


@dataclass
class Window:
    """A fault's time on the run (``perf_counter``); ``breaks``: it takes the picture away,
    so the daemon must show the slate (break-before-make) until ``end``."""

    kind: str
    start: float
    end: float
    breaks: bool
    note: str = ""


@dataclass
class Soak:
    """What the run shares: the parts, and what it saw."""

    provider: str
    sim: SimProcess
    bridge: BridgeProcess
    rooms: api.LiveKitAPI
    windows: list[Window] = field(default_factory=list)
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    refused: Counter[int] = field(default_factory=Counter)
    states: list[tuple[float, str]] = field(default_factory=list)  # daemon state changes
    rss: list[tuple[float, int, int]] = field(default_factory=list)  # t, bridge kB, sim kB

    async def session_id(self) -> str:
        status = await self.bridge.status()
        session_id: str = status["session"]["session_id"]
        return session_id

    async def live_again(self, start: float, *, other_than: str | None = None) -> float:
        """When the daemon is live again (on another session than ``other_than``)."""
        await self.bridge.wait(
            lambda s: (
                s["session"]["state"] == "live"
                and (other_than is None or s["session"]["session_id"] != other_than)
            ),
            within=RECOVER_WITHIN_S,
            what="the daemon live again after the fault",
        )
        return time.perf_counter()


# ------------------------------------------------------------------------------- faults


async def calm(soak: Soak) -> Window:
    now = time.perf_counter()
    return Window("calm (renewal at the limit only)", now, now, breaks=False)


async def room_deleted(soak: Soak) -> Window:
    """The SFU ends the room (LiveKit's RoomService.DeleteRoom): bridge and avatar are out."""
    session_id = await soak.session_id()
    room = (await soak.sim.session(soak.provider, session_id))["room"]
    start = time.perf_counter()
    await soak.rooms.room.delete_room(api.DeleteRoomRequest(room=room))
    end = await soak.live_again(start, other_than=session_id)
    return Window("room deleted (LiveKit API)", start, end, breaks=True)


async def latency(soak: Soak) -> Window:
    """Every API answer 2 s late for 10 s (under the client's 5 s timeout)."""
    start = time.perf_counter()
    await soak.sim.add_fault(kind="latency", delay=2.0, times=None)
    await asyncio.sleep(FAULT_HOLD_S)
    await soak.sim.clear_faults()
    return Window("API latency 2 s for 10 s", start, time.perf_counter(), breaks=False)


async def server_end_in_5xx(soak: Soak) -> Window:
    """The service ends the session, and answers every API call with 503 for 10 s."""
    session_id = await soak.session_id()
    start = time.perf_counter()
    await soak.sim.add_fault(kind="status", status=503, times=None)
    await soak.sim.end(session_id, "SERVER_ERROR")
    await asyncio.sleep(FAULT_HOLD_S)
    await soak.sim.clear_faults()
    end = await soak.live_again(start, other_than=session_id)
    return Window("server-side end + API 503 for 10 s", start, end, breaks=True)


async def bounce(soak: Soak) -> Window:
    """The avatar leaves its room and comes back 3 s later."""
    away = 3.0
    session_id = await soak.session_id()
    start = time.perf_counter()
    await soak.sim.bounce(session_id, away)
    await asyncio.sleep(away)
    end = await soak.live_again(start)
    return Window("avatar bounce (3 s away)", start, end, breaks=True)


async def dropped_connections(soak: Soak) -> Window:
    """Every API request's connection closed without an answer, for 10 s."""
    start = time.perf_counter()
    await soak.sim.add_fault(kind="drop", times=None)
    await asyncio.sleep(FAULT_HOLD_S)
    await soak.sim.clear_faults()
    return Window("API connections dropped for 10 s", start, time.perf_counter(), breaks=False)


Fault = Callable[[Soak], Awaitable[Window]]
# Gentle and disruptive faults alternate, so sessions live long enough to be renewed too
# (the first session's renewal, ~35 s in, falls in the gentle second slot).
ROTATION: list[Fault] = [
    calm,
    latency,
    room_deleted,
    dropped_connections,
    server_end_in_5xx,
    bounce,
]


# ------------------------------------------------------------------------------- watchers


async def speak_forever(soak: Soak, http: aiohttp.ClientSession) -> None:
    for n in itertools.count(1):
        body = {"text": f"Soak line {n}, all is well."}
        try:
            async with http.post(f"{soak.bridge.url}/v1/speak", json=body) as resp:
                answer: dict[str, Any] = await resp.json()
                if resp.status == 202:
                    soak.accepted.extend(item["id"] for item in answer["items"])
                else:
                    soak.refused[resp.status] += 1
        except aiohttp.ClientError:  # not accepted: counted, the daemon's watch tells why
            soak.refused[0] += 1
        await asyncio.sleep(SPEAK_EVERY_S)


async def read_events(soak: Soak, http: aiohttp.ClientSession) -> None:
    """The daemon's speech and session events, as they come."""
    url = soak.bridge.url.replace("http", "ws", 1) + "/v1/ws"
    async with http.ws_connect(url) as ws:
        await ws.send_json({"type": "subscribe", "topics": ["speech.*", "session.*"]})
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data: dict[str, Any] = message.json()
            if data.get("type") == "event":
                soak.events.append((time.perf_counter(), data))
    raise RuntimeError("the daemon closed its event stream")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def watch_daemon(soak: Soak) -> None:
    """The daemon's state every 0.25 s (its changes kept), RSS every 5 s."""
    last, next_rss = "", 0.0
    while True:
        now = time.perf_counter()
        state = (await soak.bridge.status())["session"]["state"]
        if state != last:
            soak.states.append((now, state))
            last = state
        if now >= next_rss:
            soak.rss.append((now, rss_kb(soak.bridge.child.pid), rss_kb(soak.sim.pid)))
            next_rss = now + 5.0
        await asyncio.sleep(0.25)


async def settle(soak: Soak) -> list[str]:
    """Wait until every accepted item has a final state; those that did not, in the end."""
    deadline = time.perf_counter() + SETTLE_WITHIN_S
    while True:
        open_ = [i for i in soak.accepted if i not in finals(soak)]
        if not open_ or time.perf_counter() > deadline:
            return open_
        await asyncio.sleep(0.5)


def finals(soak: Soak) -> dict[str, tuple[str, str]]:
    """Item id → (final state, detail), from the events."""
    found: dict[str, tuple[str, str]] = {}
    for _, event in soak.events:
        state = event["topic"].removeprefix("speech.")
        if event["topic"].startswith("speech.") and state in FINAL:
            found[event["id"]] = (state, event["item"].get("detail") or "")
    return found


# ------------------------------------------------------------------------------- the run


async def run_slots(soak: Soak, t0: float, slots: int, rotation: list[Fault]) -> None:
    for n in range(slots):
        await asyncio.sleep(max(0.0, t0 + n * SLOT_S - time.perf_counter()))
        fault = rotation[n % len(rotation)]
        print(f"  {time.perf_counter() - t0:6.1f} s  fault: {fault.__name__}", flush=True)
        try:
            soak.windows.append(await fault(soak))
        except (AssertionError, aiohttp.ClientError, api.TwirpError) as exc:
            now = time.perf_counter()
            soak.windows.append(Window(fault.__name__, now, now, True, f"FAILED: {exc}"))
            print(f"           {fault.__name__} failed: {exc}", flush=True)
    await asyncio.sleep(max(0.0, t0 + slots * SLOT_S - time.perf_counter()))


async def soak_with(
    soak: Soak, minutes: float, rotation: list[Fault]
) -> tuple[float, float, list[str]]:
    """The run itself, from live to the end of the last slot; then the speech settles."""
    t0 = time.perf_counter()
    slots = max(1, round(minutes * 60 / SLOT_S))
    async with aiohttp.ClientSession() as http, asyncio.TaskGroup() as group:
        watchers = [
            group.create_task(speak_forever(soak, http), name="soak-speak"),
            group.create_task(read_events(soak, http), name="soak-events"),
            group.create_task(watch_daemon(soak), name="soak-watch"),
        ]
        await asyncio.sleep(0.5)  # the event stream is open before the first request
        await run_slots(soak, t0, slots, rotation)
        t_end = time.perf_counter()
        watchers[0].cancel()
        await soak.sim.clear_faults()
        unsettled = await settle(soak)
        soak.rss.append((time.perf_counter(), rss_kb(soak.bridge.child.pid), rss_kb(soak.sim.pid)))
        for task in watchers[1:]:
            task.cancel()
    return t0, t_end, unsettled


# ------------------------------------------------------------------------------- analysis


@dataclass
class Gap:
    start: float
    end: float

    @property
    def length(self) -> float:
        return self.end - self.start

    def overlaps(self, windows: Iterable[tuple[float, float]]) -> bool:
        return any(self.start < b and a < self.end for a, b in windows)


def fresh_gaps(frames: list[Written]) -> list[Gap]:
    """The times between fresh avatar frames (a new stamp, not a repeat or the slate), as
    tests/kit/faults.py ``camera_report`` counts them."""
    fresh: list[float] = []
    last: tuple[int, int] | None = None
    for written in frames:
        if (
            written.stamp is not None
            and (key := (written.stamp.frame, written.stamp.sent_ms)) != last
        ):
            fresh.append(written.at)
            last = key
    return [Gap(a, b) for a, b in itertools.pairwise(fresh)]


def break_windows(soak: Soak, t_end: float) -> list[tuple[float, float]]:
    """Where the picture may go (break-before-make): disruptive faults, and whenever the
    daemon was not live (a reconnect, a fallback renewal), each padded by :data:`PAD_S`."""
    found = [(w.start - PAD_S, w.end + PAD_S) for w in soak.windows if w.breaks]
    for (t, state), (t_next, _) in itertools.pairwise([*soak.states, (t_end, "")]):
        if state != "live":
            found.append((t - PAD_S, t_next + PAD_S))
    return found


def renewal_windows(soak: Soak) -> list[tuple[float, float]]:
    """From each ``session.renewing`` to its ``session.renewed`` (+ :data:`PAD_S`)."""
    found: list[tuple[float, float]] = []
    begun: float | None = None
    for t, event in soak.events:
        if event["topic"] == "session.renewing":
            begun = t
        elif event["topic"] == "session.renewed" and begun is not None:
            found.append((begun, t + PAD_S))
            begun = None
    return found


@dataclass
class CameraFigures:
    report: CameraReport  # the whole run, writer gap less the host's steal
    raw_writer_gap_s: float
    outside: Gap | None
    renewals: Gap | None
    overall: Gap | None
    baseline: Gap | None  # the calm first slot
    cadence_s: float  # the avatar's median fresh-frame interval in the calm slot


def longest(gaps: Iterable[Gap]) -> Gap | None:
    return max(gaps, key=lambda g: g.length, default=None)


def camera_figures(
    soak: Soak, frames: list[Written], t0: float, t_end: float, steal: StealWatch
) -> CameraFigures:
    run = [f for f in frames if t0 <= f.at <= t_end]
    gaps = fresh_gaps(run)
    breaks, renewals = break_windows(soak, t_end), renewal_windows(soak)
    calm_end = min(t_end, t0 + SLOT_S)
    calm = [g for g in gaps if g.end <= calm_end and not g.overlaps(renewals)]
    lengths = sorted(g.length for g in calm)
    return CameraFigures(
        report=camera_report(run, steal),
        raw_writer_gap_s=camera_report(run).writer_gap_s,
        outside=longest(g for g in gaps if not g.overlaps(breaks)),
        renewals=longest(g for g in gaps if g.overlaps(renewals) and not g.overlaps(breaks)),
        overall=longest(gaps),
        baseline=longest(calm),
        cadence_s=lengths[len(lengths) // 2] if lengths else float("nan"),
    )


def per_fault(soak: Soak, frames: list[Written], t_end: float) -> list[str]:
    """One line per fault kind: how often, recovery, longest picture gap, slate frames."""
    rows: dict[str, list[tuple[float, float, int]]] = {}
    bounds = [*(w.start for w in soak.windows[1:]), t_end]
    for window, until in zip(soak.windows, bounds, strict=True):
        slot = [f for f in frames if window.start <= f.at < until]
        gap = longest(fresh_gaps(slot))
        slate = sum(1 for f in slot if f.stamp is None)
        rows.setdefault(window.kind, []).append(
            (window.end - window.start, gap.length if gap else float("nan"), slate)
        )
    lines = []
    for kind, seen in rows.items():
        recover = max(r for r, _, _ in seen)
        worst = max(g for _, g, _ in seen)
        slate = max(s for _, _, s in seen)
        lines.append(
            f"    {kind:<38} x{len(seen):<3} recovery max {recover:5.1f} s, "
            f"longest gap {worst * 1000:7.0f} ms, slate frames max {slate}"
        )
    lines.extend(f"    {w.kind}: {w.note}" for w in soak.windows if w.note)
    return lines


def ms(gap: Gap | None) -> str:
    return "n/a" if gap is None else f"{gap.length * 1000:.0f} ms"


# ------------------------------------------------------------------------------- report


async def ledger_counts(sim: SimProcess, service: str) -> tuple[int, int, int, list[str]]:
    """Sessions created, stopped (by the client), expired (ended by the service), still open:
    the open ones a few seconds after the daemon's stop (the last stop may be in flight)."""
    for _ in range(30):
        events = [e for e in (await sim.ledger())["sessions"] if e["service"] == service]
        ids = {kind: {e["session_id"] for e in events if e["kind"] == kind} for kind in
               ("created", "stopped", "expired")}  # fmt: skip
        open_ = sorted(ids["created"] - ids["stopped"] - ids["expired"])
        if not open_:
            break
        await asyncio.sleep(0.5)
    closed_by_service = ids["expired"] - ids["stopped"]
    return len(ids["created"]), len(ids["stopped"]), len(closed_by_service), open_


def session_story(soak: Soak) -> str:
    topics = Counter(event["topic"] for _, event in soak.events)
    fallbacks = sum(
        1
        for _, e in soak.events
        if e["topic"] == "session.renewal" and "make-before-break" not in str(e.get("mode", ""))
    )
    ended = sum(
        1
        for _, e in soak.events
        if e["topic"] == "session.ended" and not str(e.get("reason", "")).startswith("renewed")
    )
    return (
        f"renewals {topics['session.renewed']} make-before-break (of "
        f"{topics['session.renewing']} begun), {fallbacks} fallback(s) to break-before-make; "
        f"sessions lost (ended other than by renewal) {ended}, retries {topics['session.retry']}"
    )


def speech_lines(soak: Soak, unsettled: list[str]) -> tuple[list[str], bool]:
    found = finals(soak)
    states = Counter(found[i][0] for i in soak.accepted if i in found)
    reasons = Counter(found[i][1] for i in soak.accepted if i in found and found[i][0] != "done")
    silent = [i for i in soak.accepted if i in found and found[i][0] != "done" and not found[i][1]]
    total = states["done"] + states["dropped"] + states["failed"]
    ok = total == len(soak.accepted) and not unsettled and not silent
    lines = [
        f"  speech: accepted {len(soak.accepted)} / spoken {states['done']} + dropped "
        f"{states['dropped']} + failed {states['failed']} = {total}   "
        f"{'OK' if ok else 'BROKEN'}",
        f"    refused at the door: {dict(soak.refused) or 'none'}; why dropped/failed: "
        f"{dict(reasons) or 'none'}",
    ]
    if unsettled:
        lines.append(f"    never final within {SETTLE_WITHIN_S:g} s: {unsettled}")
    if silent:
        lines.append(f"    dropped without a reason: {silent}")
    return lines, ok


def rss_lines(soak: Soak) -> list[str]:
    first, last = soak.rss[0], soak.rss[-1]
    after_1min = next((r for r in soak.rss if r[0] - first[0] >= 60), last)
    peak = max(r[1] for r in soak.rss)
    growth = (last[1] - first[1]) / 1024
    since_1min = (last[1] - after_1min[1]) / 1024
    verdict = "MEETS" if growth <= GOAL_RSS_MB else "MISSES"
    return [
        f"  RSS bridge: start {first[1] / 1024:.1f} MB, after 1 min {after_1min[1] / 1024:.1f} MB,"
        f" end {last[1] / 1024:.1f} MB, max {peak / 1024:.1f} MB; growth {growth:+.1f} MB "
        f"(goal <= {GOAL_RSS_MB:g} MB: {verdict}; since 1 min {since_1min:+.1f} MB)",
        f"  RSS simulator (beside): start {first[2] / 1024:.1f} MB, end {last[2] / 1024:.1f} MB, "
        f"growth {(last[2] - first[2]) / 1024:+.1f} MB",
    ]


def camera_lines(cam: CameraFigures, steal: StealWatch) -> list[str]:
    out = cam.outside
    verdict = "MEETS" if out is not None and out.length <= GOAL_GAP_S else "MISSES"
    stolen = (
        ""
        if out is None
        else f", host steal during it {steal.during(out.start, out.end) * 1000:.0f} ms"
    )
    r = cam.report
    return [
        f"  camera: {r.frames} frames written, {r.slate_frames} slate frames; the avatar's own "
        f"cadence (median, calm slot) {cam.cadence_s * 1000:.1f} ms",
        f"    longest avatar gap outside break-before-make  {ms(out):>9}   baseline (calm "
        f"first slot) {ms(cam.baseline)}{stolen}",
        f"    longest avatar gap across renewals (in it)    {ms(cam.renewals):>9}",
        f"    longest avatar gap overall (with breaks)      {ms(cam.overall):>9}",
        f"    longest writer gap                            {r.writer_gap_s * 1000:>6.0f} ms "
        f"less steal ({cam.raw_writer_gap_s * 1000:.0f} ms raw)",
        f"    goal: <= 2 frame intervals ({GOAL_GAP_S * 1000:.1f} ms) outside break-before-make:"
        f" {verdict}",
    ]


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def steal_pct(before: tuple[int, ...], after: tuple[int, ...], seconds: float) -> str:
    """The host's steal over the run, % of one CPU (the mean of the CPUs)."""
    if not before or not after or seconds <= 0:
        return "n/a"
    stolen = sum(b - a for a, b in zip(before, after, strict=True)) / len(after) * TICK_S
    return f"{stolen / seconds * 100:.1f} %"


# ------------------------------------------------------------------------------- main


@dataclass
class Outcome:
    soak: Soak
    t0: float
    t_end: float
    unsettled: list[str]
    frames: list[Written]
    ledger: tuple[int, int, int, list[str]]
    status: dict[str, Any]
    stop_problem: str = ""


def bridge_raw(
    sim: SimProcess, livekit: LiveKitServer, provider: str
) -> tuple[dict[str, Any], dict[str, str]]:
    raw, env = bridge_config(
        sim.url, livekit, provider=provider, quality="low",
        camera={"device": DEVICE, "width": 640, "height": 360},
    )  # fmt: skip
    raw["avatar"]["renew_margin_s"] = RENEW_MARGIN_S
    # Not kept across the stop: an item still queued then is reported dropped, not kept.
    raw["control"] = {"persist_queue": False}
    return raw, env


async def run(args: argparse.Namespace, livekit: LiveKitServer, root: Path) -> Outcome:
    limits = (
        "--session-limit",
        str(args.session_limit),
        "--max-session-duration",
        str(args.session_limit),
    )
    rooms = api.LiveKitAPI(
        livekit.url.replace("ws://", "http://"), livekit.api_key, livekit.api_secret
    )
    try:
        async with sim_process(livekit, root / "sim.log", *limits) as sim:
            raw, env = bridge_raw(sim, livekit, args.provider)
            stop_problem, finished = "", False
            try:
                async with bridge_process(raw, env, root) as bridge:
                    soak = Soak(args.provider, sim, bridge, rooms)
                    t0, t_end, unsettled = await soak_with(
                        soak, args.minutes, [calm] if args.calm else ROTATION
                    )
                    status = await bridge.status()
                    finished = True
            except AssertionError as exc:  # the daemon's stop failed (exit code, time)
                if not finished:
                    raise
                stop_problem = str(exc).splitlines()[0]
            frames = bridge.recording(DEVICE).frames
            ledger = await ledger_counts(sim, args.provider)
    finally:
        await rooms.aclose()
    return Outcome(soak, t0, t_end, unsettled, frames, ledger, status, stop_problem)


def report(out: Outcome, args: argparse.Namespace, steal: StealWatch, load0: str) -> bool:
    """Prints the figures; True when every invariant held."""
    soak = out.soak
    created, stopped, by_service, open_ = out.ledger
    sessions_ok = created == stopped + by_service and not open_
    speech, speech_ok = speech_lines(soak, out.unsettled)
    cam = camera_figures(soak, out.frames, out.t0, out.t_end, steal)
    session = out.status["session"]
    print()
    faults = sum(1 for w in soak.windows if not w.kind.startswith("calm"))
    print(f"== Soak: provider {args.provider}, {(out.t_end - out.t0) / 60:.1f} min, "
          f"{faults} faults, speech every {SPEAK_EVERY_S:g} s")  # fmt: skip
    print(f"  load avg at start {load0}, at end {loadavg()}; host steal over the run "
          f"{steal_pct(steal.samples[0], read_steal(), out.t_end - out.t0)}")  # fmt: skip
    print(f"  sessions: created {created} / closed {stopped + by_service} (stopped by the "
          f"bridge {stopped}, ended by the service {by_service}), open after the stop "
          f"{len(open_)}   {'OK' if sessions_ok else 'BROKEN'}")  # fmt: skip
    print(f"    daemon: sessions_opened {session['sessions_opened']}, reconnects "
          f"{session['reconnects']}, last reason {session['last_reason']!r}")  # fmt: skip
    print(f"    {session_story(soak)}")
    for line in [*speech, *camera_lines(cam, steal), *rss_lines(soak)]:
        print(line)
    print("  per fault (from its start to the next fault):")
    for line in per_fault(soak, out.frames, out.t_end):
        print(line)
    if out.stop_problem:
        print(f"  the daemon's stop: BROKEN: {out.stop_problem}")
    return sessions_ok and speech_ok and not out.stop_problem


async def main_async(args: argparse.Namespace) -> int:
    binary = find_binary()
    if binary is None:
        print("cannot run: livekit-server not installed (./scripts/test builds it)")
        return 1
    root = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    print("heygen-bridge chaos soak (bench/soak.py)")
    print(f"  {time.strftime('%Y-%m-%dT%H:%M:%S%z')}, {os.cpu_count()} cores, logs in {root}")
    load0 = loadavg()
    livekit = await LiveKitServer(binary, log_path=root / "livekit.log").start()
    steal = StealWatch(every=0.02).start()
    try:
        outcome = await run(args, livekit, root)
    finally:
        steal.stop()
        livekit.stop()
    ok = report(outcome, args, steal, load0)
    print(f"  invariants: {'all held' if ok else 'BROKEN'}")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    parser.add_argument(
        "--session-limit",
        type=int,
        default=SESSION_LIMIT_S,
        help=f"the simulator's session duration limit, s (default {SESSION_LIMIT_S}: a renewal "
        f"every {SESSION_LIMIT_S - RENEW_MARGIN_S:g} s; renewal needs > {2 * RENEW_MARGIN_S:g})",
    )
    parser.add_argument(
        "--calm", action="store_true", help="no faults (renewals and speech only): a reference"
    )
    parser.add_argument(
        "--provider",
        choices=["liveavatar", "heygen"],
        default="liveavatar",
        help="the avatar service",
    )
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
