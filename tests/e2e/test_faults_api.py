"""Fault injection at the providers' APIs (issue 11): the simulator process, the real LiveKit
server, the bridge process with the recording camera.

* **an outage of 10 s** while live, as 5xx answers (a status fault on every path) or as
  refused connections (tests/kit/tcp_gate.py between the bridge and the simulator), with the
  service ending the session meanwhile: the bridge must try again with backoff (failed, the
  reason and the next try in status), keep the camera going on the slate, open a new session
  once the API answers again, and then say what it was asked while the API was down;
* **a bad key at start**: a clean failure that names the key, no retry storm, a daemon that
  stays up, answers, and stops cleanly, and never logs the key.

Every case ends with the three checks of tests/kit/faults.py: the camera writer steady, every
session in the simulator's ledger closed, every accepted speech request accounted for.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.sim.livekit_server import LiveKitServer
from tests.kit.bridge_process import (
    PROVIDERS,
    BridgeProcess,
    bridge_config,
    bridge_process,
    bridge_started,
)
from tests.kit.faults import (
    CAMERA,
    assert_all_sessions_closed,
    assert_speech_accounted,
    assert_writer_steady,
    camera_report,
    item,
    speak,
)
from tests.kit.simproc import SimProcess, StartSim
from tests.kit.steal import StealWatch
from tests.kit.tcp_gate import TcpGate, tcp_gate

# The outage lasts this long, or until the bridge was seen waiting to try again if that
# takes longer (each try's REST retries may outlast it on a loaded machine).
OUTAGE_S = 10.0
# The request that opens a session (the first of its calls): what a retry storm would flood.
OPENING_PATH = {"heygen": "/v1/streaming.new", "liveavatar": "/v1/sessions/token"}
# The manager's tries to open a session in a 10 s outage (status ``reconnects``), at most: it
# waits 1, 2, 4 ... s (jittered) between them, after each try's REST call has retried within
# its deadline (5 s in bridge_config); 1 or 2 in the runs here.
MAX_OPENING_TRIES = 4
# The HTTP requests of those tries, at most: each call retries after 0.2, 0.4, 0.8 ... s drawn
# with full jitter (capped at 4 s) until its 5 s deadline, about 6 requests per try (7 to 12
# in all in the runs here); a loop without backoff would send hundreds.
MAX_OPENING_REQUESTS = 24
# A refused key in ~8 s: the opening request, refused (401) and never retried; the bound
# leaves room for one more call of the same open (LiveAvatar's token, then its start) and one
# listing, and none for a retry loop, whose first round alone (0.2 s later) would pass it.
MAX_REQUESTS_BAD_KEY = 3
BAD_KEY_WATCH_S = 8.0
BAD_KEY = "sk-bad-key-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
SAID_DURING_OUTAGE = "This was asked while the service was down."


def config(
    api_url: str, livekit: LiveKitServer, provider: str, device: str
) -> tuple[dict[str, Any], dict[str, str]]:
    return bridge_config(
        api_url, livekit, provider=provider, camera={**CAMERA, "device": device}, quality="low"
    )


# --- the outage: 5xx answers or refused connections ---------------------------------------


async def outage_of_5xx(sim: SimProcess, gate: TcpGate) -> Callable[[], Awaitable[None]]:
    await sim.add_fault(kind="status", status=503, path=None, times=None)
    return sim.clear_faults


async def outage_of_refusals(sim: SimProcess, gate: TcpGate) -> Callable[[], Awaitable[None]]:
    await gate.refuse()
    return gate.accept


OUTAGES = {"5xx": outage_of_5xx, "refused": outage_of_refusals}


def retrying(status: dict[str, Any]) -> bool:
    """Failed (or reconnecting), waiting to try again, and saying why."""
    session = status["session"]
    return (
        session["state"] in ("failed", "reconnecting")
        and session["next_try_in_s"] is not None
        and bool(session["last_error"])
        and bool(session["last_reason"])
    )


def opening_requests_refused(ledger: dict[str, Any], provider: str) -> int:
    """Requests to open a session answered by the injected fault (so: during the outage)."""
    return sum(
        1 for r in ledger["requests"] if r["path"] == OPENING_PATH[provider] and r["status"] == 503
    )


@pytest.mark.parametrize("outage", list(OUTAGES))
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_reconnects_through_an_api_outage(
    start_sim: StartSim,
    livekit_server: LiveKitServer,
    steal_watch: StealWatch,
    tmp_path: Path,
    provider: str,
    outage: str,
) -> None:
    sim = await start_sim()
    device = f"faults-api-{provider}-{outage}"
    async with tcp_gate(sim.url) as gate:
        raw, env = config(gate.url, livekit_server, provider, device)
        async with bridge_process(raw, env, tmp_path) as bridge:
            before = (await bridge.status())["session"]
            began = time.perf_counter()
            end_outage = await OUTAGES[outage](sim, gate)
            await sim.end(before["session_id"], "SERVER_ERROR")
            during = await bridge.wait(retrying, within=OUTAGE_S + 10, what="retrying")
            said = await speak(bridge, SAID_DURING_OUTAGE)
            assert (await item(bridge, said))["state"] == "queued"
            await asyncio.sleep(max(0.0, OUTAGE_S - (time.perf_counter() - began)))
            tries = (await bridge.status())["session"]["reconnects"] - before["reconnects"]
            await end_outage()
            ended = time.perf_counter()
            after = await bridge.wait(
                lambda s: (
                    s["session"]["state"] == "live"
                    and s["session"]["session_id"] != before["session_id"]
                ),
                within=60,
                what="a new session live after the outage",
            )
            live_again = time.perf_counter()
            await assert_speech_accounted(bridge, [said])
            spoken_by = await sim.session(provider, after["session"]["session_id"])
            ledger = await sim.ledger()

    frames = [f for f in bridge.recording(device).frames if f.at >= began]
    report = camera_report(frames, steal_watch)
    outage_report = camera_report([f for f in frames if f.at <= live_again])
    print(
        f"{provider}/{outage}: outage {ended - began:.1f} s, {tries} tries, "
        f"{opening_requests_refused(ledger, provider)} opening requests refused; live "
        f"{live_again - ended:.1f} s after it; status meanwhile {during['session']}; "
        f"camera {report.describe()}"
    )
    assert_writer_steady(report)
    assert outage_report.slate_frames > 0, f"no slate meanwhile: {outage_report.describe()}"
    assert any(f.stamp is not None for f in frames if f.at > live_again), "no avatar after"
    assert 1 <= tries <= MAX_OPENING_TRIES, during
    if outage == "5xx":
        assert 1 <= opening_requests_refused(ledger, provider) <= MAX_OPENING_REQUESTS
    assert SAID_DURING_OUTAGE in spoken_by["history"]
    await assert_all_sessions_closed(sim)


# --- a bad key at start ---------------------------------------------------------------------


async def clear_queue(bridge: BridgeProcess) -> list[dict[str, Any]]:
    """``POST /v1/queue/clear``: the items it dropped."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{bridge.url}/v1/queue/clear") as resp,
    ):
        body: dict[str, Any] = await resp.json()
        assert resp.status == 200, body
        cleared: list[dict[str, Any]] = body["cleared"]
        return cleared


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_bad_key_fails_cleanly_without_a_retry_storm(
    start_sim: StartSim,
    livekit_server: LiveKitServer,
    steal_watch: StealWatch,
    tmp_path: Path,
    provider: str,
) -> None:
    sim = await start_sim()
    device = f"faults-bad-key-{provider}"
    raw, env = config(sim.url, livekit_server, provider, device)
    key_var = f"{provider.upper()}_API_KEY"
    env[key_var] = BAD_KEY  # the simulator accepts only its own key
    launched_at = time.perf_counter()
    async with bridge_started(raw, env, tmp_path) as bridge:
        failed = await bridge.wait(
            lambda s: s["session"]["state"] == "failed" and s["session"]["fix"] is not None,
            within=30,
            what="failed with a fix",
        )
        # Asked while failed: accepted and kept (not lost, not failed) until cleared.
        said = await speak(bridge, "Is anyone there?")
        await asyncio.sleep(max(0.0, BAD_KEY_WATCH_S - (time.perf_counter() - launched_at)))
        still = await bridge.status()
        assert (await item(bridge, said))["state"] == "queued"
        assert [cleared["id"] for cleared in await clear_queue(bridge)] == [said]
        await assert_speech_accounted(bridge, [said], spoken=False)
        requests = (await sim.ledger())["requests"]
        watched_until = time.perf_counter()

    log = bridge.log_path.read_text(errors="replace")
    report = camera_report(
        [f for f in bridge.recording(device).frames if f.at <= watched_until],
        steal_watch,
    )
    session = failed["session"]
    print(f"{provider}: {len(requests)} requests {[r['path'] for r in requests]}; {session}")
    assert key_var in session["fix"], session
    assert session["next_try_in_s"] is None, session  # not trying again
    assert still["session"]["state"] == "failed", still["session"]
    assert still["session"]["reconnects"] == 0, still["session"]
    assert 1 <= len(requests) <= MAX_REQUESTS_BAD_KEY, [r["path"] for r in requests]
    assert all(r["status"] == 401 for r in requests), requests
    assert BAD_KEY not in log
    assert BAD_KEY not in json.dumps(still)
    assert_writer_steady(report)
    assert report.slate_frames == report.frames  # the slate throughout: no avatar
    await assert_all_sessions_closed(sim)
