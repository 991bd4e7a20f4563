"""Renewal before the duration limit, make-before-break, with the scripted provider.

The next session opens at the limit minus the margin; the camera stays on the old session
until the new one's first frame, then only the new one's frames reach it; an utterance in
progress finishes on the old session and the next goes to the new one; a provider that
refuses a second session gets break-before-make, said in status and as an event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from bridge.media.frames import AudioChunk, VideoFrame
from bridge.providers.events import AvatarEvent
from bridge.session.manager import SessionState
from bridge.session.renewal import MAKE_BEFORE_BREAK, ONE_AT_A_TIME
from bridge.source.base import MediaHandlers
from bridge.source.open import MediaAddress, SessionMedia
from tests.kit.eventually import eventually
from tests.unit.test_manager import Harness, ScriptedProvider, heygen_refusal, manager_task

LIMIT_REACHED = heygen_refusal(400, 10007)  # HeyGen: the account's concurrent-session limit


class FeedSource:
    """A source whose avatar is in the room at once and whose frames the test sends: each
    frame is as wide as its session's number, so the camera can tell whose frame it got."""

    def __init__(self, number: int, handlers: MediaHandlers) -> None:
        self.number = number
        self.handlers = handlers
        self.cancelled = False

    async def run(self) -> None:
        self.handlers.presence(True)
        try:
            await asyncio.Event().wait()
        finally:
            self.cancelled = True

    def frame(self) -> None:
        self.handlers.video(VideoFrame(self.number, 1, np.zeros(2, np.uint8), arrived=0.0))
        self.handlers.audio(AudioChunk(np.full(4, self.number, np.int16), 48000, arrived=0.0))

    def snapshot(self) -> dict[str, Any]:
        return {}


class RenewalHarness(Harness):
    def __init__(self, provider: ScriptedProvider) -> None:
        super().__init__(provider)
        self.sources: list[FeedSource] = []
        self.camera: list[int] = []  # whose frames reached the camera, in order
        self.mic: list[int] = []
        self.manager.handlers = MediaHandlers(
            video=lambda frame: self.camera.append(frame.width),
            audio=lambda chunk: self.mic.append(int(chunk.samples[0])),
            data=self.manager.on_data,
            presence=self.manager.on_presence,
        )

    def open_media(self, address: MediaAddress, handlers: MediaHandlers) -> SessionMedia:
        source = FeedSource(len(self.sources) + 1, handlers)
        self.sources.append(source)
        return SessionMedia(source, self.room)

    async def renewal_opens(self) -> None:
        """Move to the renewal time (limit 600 s − margin 30 s) and wait for the next open."""
        before = len(self.provider.sessions)
        await self.clock.advance(569)
        await asyncio.sleep(0.05)
        assert len(self.provider.sessions) == before  # not before its time
        await self.clock.advance(1)
        await eventually(lambda: len(self.sources) == before + 1, what="the next media")


@pytest.fixture
async def renewal() -> AsyncIterator[RenewalHarness]:
    harness = RenewalHarness(ScriptedProvider())
    tasks = [
        asyncio.create_task(harness.manager.run(), name="manager"),
        asyncio.create_task(harness.queue.run(harness.manager), name="queue"),
    ]
    await eventually(lambda: harness.manager.state == SessionState.LIVE)
    yield harness
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_the_camera_moves_to_the_next_session_at_its_first_frame(
    renewal: RenewalHarness,
) -> None:
    old_source = renewal.sources[0]
    old_source.frame()
    await renewal.renewal_opens()
    first, second = renewal.provider.sessions
    new_source = renewal.sources[1]
    assert renewal.events("session.renewing") == [{"session_id": "s1"}]
    old_source.frame()
    new_source.frame()  # its first frame: it is ready, and switching now
    old_source.frame()  # the old session still feeds the camera until the switch is made
    assert renewal.camera == [1, 1, 1] and renewal.mic == [1, 1, 1]
    await eventually(lambda: renewal.events("session.renewed"))
    old_source.frame()  # no longer reaches the camera
    new_source.frame()
    assert renewal.camera == [1, 1, 1, 2] and renewal.mic == [1, 1, 1, 2]
    [renewed] = renewal.events("session.renewed")
    assert (renewed["previous"], renewed["session_id"], renewed["gap_free"]) == ("s1", "s2", True)
    await eventually(lambda: first.stopped)
    assert old_source.cancelled and not second.stopped and not new_source.cancelled
    assert renewal.provider.calls == ["open s1", "open s2"]
    # The state never left live: no slate, no ended/starting in between.
    assert renewal.states() == ["connecting", "live"]
    status = renewal.manager.snapshot()
    assert (status["session_id"], status["state"], status["renewal"]) == (
        "s2",
        "live",
        MAKE_BEFORE_BREAK,
    )
    assert status["reconnects"] == 0 and status["sessions_opened"] == 2
    assert status["renewal_in_s"] == 570  # the new session's own limit, from its start
    [ended] = renewal.events("session.ended")
    assert ended["session_id"] == "s1" and "renewed" in ended["reason"]
    # Its data is decoded by the session now active, and the next renewal comes in its time.
    renewal.manager.handlers.data(b"hello", "script")
    assert [e.data["text"] for e in renewal.bus.recent if e.topic == "avatar.speak_text"] == [
        "hello"
    ]
    await renewal.renewal_opens()
    renewal.sources[2].frame()
    await eventually(lambda: len(renewal.events("session.renewed")) == 2)
    await eventually(lambda: second.stopped)


async def test_an_utterance_in_progress_ends_on_the_old_session_and_the_next_goes_to_the_new(
    renewal: RenewalHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bridge.control.queue.END_GRACE_S", 3600.0)  # no timeout ends it
    first_session = renewal.provider.sessions[0]
    [saying] = renewal.queue.submit("being said across the renewal", source="test")
    [waiting] = renewal.queue.submit("said by the next session", source="test")
    await eventually(lambda: first_session.spoken)
    await renewal.renewal_opens()
    renewal.sources[1].frame()  # the new session is ready; the switch waits for the speech
    await asyncio.sleep(0.05)
    assert renewal.events("session.renewed") == [] and not first_session.stopped
    renewal.sources[0].frame()
    assert renewal.camera[-1] == 1  # the old session still on the camera, still speaking
    renewal.manager.on_event(AvatarEvent("speak_ended", "s1-task1"))
    await eventually(lambda: renewal.events("session.renewed"))
    second_session = renewal.provider.sessions[1]
    await eventually(lambda: second_session.spoken)
    assert [text for text, _ in first_session.spoken] == ["being said across the renewal"]
    assert [text for text, _ in second_session.spoken] == ["said by the next session"]
    assert saying.state == "done" and waiting.state in ("sending", "speaking")
    await eventually(lambda: first_session.stopped)


async def test_a_refused_second_session_falls_back_to_break_before_make(
    renewal: RenewalHarness,
) -> None:
    renewal.provider.refuse_with = LIMIT_REACHED  # one session at a time on this account
    await renewal.clock.advance(570)
    await eventually(lambda: renewal.events("session.renewal"))
    [fallback] = renewal.events("session.renewal")
    assert fallback["mode"] == ONE_AT_A_TIME and "limit" in fallback["reason"].lower()
    status = renewal.manager.snapshot()
    assert (status["renewal"], status["state"], status["session_id"]) == (
        ONE_AT_A_TIME,
        "live",
        "s1",
    )
    await asyncio.sleep(0.05)
    first = renewal.provider.sessions[0]
    assert not first.stopped and renewal.provider.attempts == 2  # one try, no retry storm
    renewal.sources[0].frame()
    assert renewal.camera == [1]  # the old session runs on to its end
    renewal.provider.refuse_with = None
    await renewal.clock.advance(30)
    renewal.manager.on_event(AvatarEvent("session_stopped", text="MAX_DURATION_REACHED"))
    await eventually(lambda: len(renewal.provider.sessions) == 2)  # the next opens after
    await eventually(lambda: renewal.manager.state == SessionState.LIVE)
    assert first.stopped
    assert renewal.provider.calls == ["open s1", "open s2"]
    assert renewal.states()[-4:] == ["ended", "starting", "connecting", "live"]


async def test_a_shutdown_during_the_renewal_stops_both_sessions(renewal: RenewalHarness) -> None:
    await renewal.renewal_opens()  # the next session is open, its first frame not yet here
    old, new = renewal.provider.sessions
    task = manager_task()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert old.stopped and new.stopped
    assert all(source.cancelled for source in renewal.sources)
    assert renewal.manager.state == SessionState.STOPPED


async def test_a_next_session_that_fails_to_open_is_tried_again_before_the_limit(
    renewal: RenewalHarness,
) -> None:
    renewal.provider.failures = 1  # the first open at renewal answers 503
    await renewal.clock.advance(570)
    await eventually(lambda: renewal.provider.attempts == 2)
    await asyncio.sleep(0.05)
    assert len(renewal.provider.sessions) == 1  # waiting out the retry's delay
    await renewal.clock.advance(2)  # the first retry waits about a second
    await eventually(lambda: len(renewal.sources) == 2)
    renewal.sources[1].frame()
    await eventually(lambda: renewal.events("session.renewed"))
    assert renewal.events("session.renewal") == []  # no fallback: make-before-break held
    await eventually(lambda: renewal.provider.sessions[0].stopped)


async def test_a_next_session_without_a_picture_by_the_limit_is_stopped(
    renewal: RenewalHarness,
) -> None:
    await renewal.renewal_opens()
    old, new = renewal.provider.sessions
    await renewal.clock.advance(30)  # the old session's limit: the new one sent no frame
    await eventually(lambda: new.stopped)
    [fallback] = renewal.events("session.renewal")
    assert fallback["mode"].startswith("break-before-make") and "no picture" in fallback["mode"]
    assert not old.stopped and renewal.manager.snapshot()["session_id"] == "s1"
    assert renewal.sources[1].cancelled and renewal.events("session.renewed") == []


async def test_the_old_session_ending_before_the_next_ones_first_frame_hands_over_to_it(
    renewal: RenewalHarness,
) -> None:
    await renewal.renewal_opens()  # the next session is open, its first frame not yet here
    old, new = renewal.provider.sessions
    renewal.manager.on_event(AvatarEvent("session_stopped", text="MAX_DURATION_REACHED"))
    await eventually(lambda: old.stopped)
    assert renewal.manager.snapshot()["session_id"] == "s2"  # no third session: it goes on
    assert not new.stopped and len(renewal.provider.sessions) == 2
    renewal.sources[1].frame()
    assert renewal.camera[-1] == 2  # the next session's picture reaches the camera
    await eventually(lambda: renewal.manager.state == SessionState.LIVE)
    assert renewal.states()[-3:] == ["ended", "connecting", "live"]


async def test_an_utterance_longer_than_the_wait_does_not_hold_the_switch_forever(
    renewal: RenewalHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bridge.control.queue.END_GRACE_S", 3600.0)  # no timeout ends it
    first_session = renewal.provider.sessions[0]
    renewal.queue.submit("a very long speech that never ends", source="test")
    await eventually(lambda: first_session.spoken)
    await renewal.renewal_opens()
    renewal.sources[1].frame()
    await asyncio.sleep(0.05)
    assert renewal.events("session.renewed") == []  # the utterance holds the switch...
    await renewal.clock.advance(20)  # ...at most UTTERANCE_WAIT_S
    await eventually(lambda: renewal.events("session.renewed"))
    renewal.sources[1].frame()
    assert renewal.camera[-1] == 2
    await eventually(lambda: first_session.stopped)


async def test_an_utterance_on_an_old_session_whose_avatar_left_does_not_hold_the_switch(
    renewal: RenewalHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bridge.control.queue.END_GRACE_S", 3600.0)  # no timeout ends it
    first_session = renewal.provider.sessions[0]
    renewal.queue.submit("said while the avatar leaves", source="test")
    await eventually(lambda: first_session.spoken)
    await renewal.renewal_opens()
    renewal.sources[0].handlers.presence(False)  # the old avatar left its room
    renewal.sources[1].frame()
    await eventually(lambda: renewal.events("session.renewed"))  # no 20 s wait
    renewal.sources[1].frame()
    assert renewal.camera[-1] == 2
