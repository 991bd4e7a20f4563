"""Keep-alives while the avatar is not in the room (bridge/session/liveness.py): a session that
ended before its room was joined is found by a keep-alive within seconds, not at the next
regular one a minute later; a session whose avatar stays away is ended."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from bridge.errors import ApiFault, SessionGone
from bridge.session.liveness import AVATAR_AWAY_LIMIT_S, CONNECTING_PROBE_S, Liveness
from bridge.sim.clock import ManualClock
from tests.kit.eventually import eventually

EVERY_S = 60.0


class ScriptedSession:
    """A session whose keep-alives are counted; ``gone``: the provider has ended it, and
    every keep-alive says so."""

    def __init__(self, gone: bool) -> None:
        self.gone = gone
        self.keep_alives = 0

    async def keep_alive(self) -> None:
        self.keep_alives += 1
        if self.gone:
            fault = ApiFault(404, None, "ended")
            raise SessionGone(fault, provider="script", endpoint="keep-alive")


async def run_for(
    seconds: float, missing_since: Callable[[], float | None], *, gone: bool = True
) -> tuple[ScriptedSession, list[str]]:
    """The keep-alive loop for a session, ``seconds`` of manual time in steps of 1 s (or until
    the loop ends); the session (its keep-alives counted) and the ends reported."""
    clock = ManualClock()
    ends: list[str] = []
    liveness = Liveness(
        clock.now, lambda s: clock.sleep_until(clock.now() + s), ends.append, missing_since
    )
    liveness.reset(clock.now())
    session = ScriptedSession(gone)
    session_any: Any = session
    task = asyncio.create_task(liveness.keep_alive(session_any, EVERY_S), name="keep-alive")
    try:
        for _ in range(int(seconds)):
            await eventually(lambda: clock._sleepers or task.done(), what="the loop asleep")
            if task.done():
                break
            await clock.advance(1.0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return session, ends


@pytest.mark.parametrize("connecting", [True, False])
async def test_a_session_gone_while_connecting_is_found_within_the_probe_interval(
    connecting: bool,
) -> None:
    session, ends = await run_for(CONNECTING_PROBE_S + 1, lambda: 0.0 if connecting else None)
    if connecting:
        assert session.keep_alives >= 1
        assert ends and "the provider closed the session" in ends[0]
    else:  # live: the regular interval, a minute
        assert (session.keep_alives, ends) == (0, [])


async def test_a_session_whose_avatar_stays_away_is_ended_though_the_provider_calls_it_alive() -> (
    None
):
    session, ends = await run_for(AVATAR_AWAY_LIMIT_S + 5, lambda: 0.0, gone=False)
    assert ends == [f"the avatar stayed out of the room for {AVATAR_AWAY_LIMIT_S:.0f} s"]
    # probed every few seconds meanwhile, not once a minute
    assert session.keep_alives >= AVATAR_AWAY_LIMIT_S // CONNECTING_PROBE_S - 1
