"""The session manager's state machine and the speech queue, with a scripted provider.

The provider here is a script (the real ones are tested against the simulators); what is under
test is the bridge's own logic: renewal, retries, stop on every exit, and that every accepted
speech request ends as spoken or reported dropped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bridge.control.queue import SpeechQueue
from bridge.errors import ApiError, ApiFault, RemoteError, SessionGone
from bridge.eventbus import EventBus
from bridge.media.frames import AudioChunk, VideoFrame
from bridge.providers.base import (
    NO_RECORD,
    AvatarInfo,
    SessionInfo,
    SessionRecorder,
    SpeakMode,
)
from bridge.providers.events import AvatarEvent
from bridge.providers.heygen.errors import ERRORS as HEYGEN_ERRORS
from bridge.providers.rest.client import Reply
from bridge.session.manager import IllegalTransition, SessionManager, SessionState
from bridge.session.orphans import OpenedSessions
from bridge.sim.clock import ManualClock
from bridge.source.base import DataChannel, MediaHandlers, SourceFailed
from bridge.source.open import MediaAddress, SessionMedia
from bridge.source.room import RoomAddress
from tests.kit.eventually import eventually

MAX_TEXT = 1000


class ScriptedSession:
    provider = "script"

    def __init__(self, number: int, provider: ScriptedProvider) -> None:
        self.session_id = f"s{number}"
        self.media = RoomAddress(url="ws://unused", token="t")
        self.keep_alive_every = provider.keep_alive_every
        self.duration_limit: float | None = 600.0
        self._provider = provider
        self.spoken: list[tuple[str, SpeakMode]] = []
        self.rooms: list[DataChannel | None] = []
        self.stopped = False
        self.gone = False
        self.interrupts = 0
        self.seen_at_stop: Any = None
        self.keep_alives: list[float] = []  # the manager's clock at each keep-alive

    async def speak(self, text: str, mode: SpeakMode, room: DataChannel | None) -> str:
        self.spoken.append((text, mode))
        self.rooms.append(room)
        task_id = f"{self.session_id}-task{len(self.spoken)}"
        if self._provider.before_reply is not None:
            self._provider.before_reply(task_id)
        return task_id

    async def interrupt(self, room: DataChannel | None) -> None:
        self.interrupts += 1

    async def keep_alive(self) -> None:
        self.keep_alives.append(self._provider.clock.now())
        if self.gone:
            raise SessionGone(ApiFault(400, 10005, "closed"), provider="script", endpoint="ka")

    async def stop(self) -> None:
        if self._provider.at_stop is not None:
            self.seen_at_stop = await self._provider.at_stop()
        self.stopped = True

    def decode(self, payload: bytes, topic: str | None) -> list[AvatarEvent]:
        return [AvatarEvent("speak_text", text=payload.decode())] if topic == "script" else []


class ScriptedProvider:
    name = "script"
    account: str | None = "script"
    max_text = MAX_TEXT

    def __init__(
        self,
        *,
        failures: int = 0,
        keep_alive_every: float | None = None,
        errors: list[RemoteError] | None = None,
        refuse_with: RemoteError | None = None,
    ) -> None:
        self.failures = failures
        self.keep_alive_every = keep_alive_every
        self.errors = list(errors or [])  # raised by the next opens, in order
        self.refuse_with = refuse_with  # raised by every open
        self.attempts = 0  # open_session calls
        self.clock = ManualClock(start=1000.0)  # the time the manager goes by
        self.sessions: list[ScriptedSession] = []
        self.calls: list[str] = []  # "open s1", "stop <id>", in order
        # Called with a task id before speak() returns it (events that overtake the reply).
        self.before_reply: Callable[[str], None] | None = None
        # Awaited by a session's stop(); what it returns is kept as the session's seen_at_stop.
        self.at_stop: Callable[[], Any] | None = None

    async def open_session(self, recorder: SessionRecorder = NO_RECORD) -> ScriptedSession:
        self.attempts += 1
        if self.refuse_with is not None:
            raise self.refuse_with
        if self.errors:
            raise self.errors.pop(0)
        if self.failures:
            self.failures -= 1
            raise ApiError(
                ApiFault(503, None, "busy"), provider="script", endpoint="new", retryable=True
            )
        session = ScriptedSession(len(self.sessions) + 1, self)
        self.sessions.append(session)
        self.calls.append(f"open {session.session_id}")
        await recorder.created(session.session_id)
        return session

    async def list_avatars(self) -> list[AvatarInfo]:
        return []

    async def list_sessions(self) -> list[SessionInfo]:
        return []

    async def stop_session(self, session_id: str) -> None:
        self.calls.append(f"stop {session_id}")

    async def aclose(self) -> None:
        pass


class ScriptedSource:
    """A media source whose avatar is in the room at once; ``fail`` makes the next run die."""

    def __init__(self, handlers: MediaHandlers, fail: asyncio.Event) -> None:
        self._handlers = handlers
        self._fail = fail

    async def run(self) -> None:
        self._handlers.presence(True)
        await self._fail.wait()
        self._fail.clear()
        raise SourceFailed("the avatar's video track TR_1 stopped: ValueError('boom')")

    def snapshot(self) -> dict[str, Any]:
        return {}


class Room:
    """The room link the sessions' commands go through."""

    async def publish(self, payload: bytes, topic: str) -> None:
        pass


def ignore_video(frame: VideoFrame) -> None:
    pass


def ignore_audio(chunk: AudioChunk) -> None:
    pass


class Harness:
    def __init__(self, provider: ScriptedProvider, opened: OpenedSessions | None = None) -> None:
        self.bus = EventBus()
        self.provider = provider
        self.queue = SpeechQueue(bus=self.bus, max_item=provider.max_text)
        self.room = Room()
        self.source_fails = asyncio.Event()
        self.addresses: list[MediaAddress] = []
        self.wake_at = 0.0  # when the manager's latest sleep ends
        self.manager = SessionManager(
            provider=provider,
            bus=self.bus,
            video=ignore_video,
            audio=ignore_audio,
            on_event=self.queue.on_event,
            on_session_end=self.queue.drop_unfinished,
            opened=opened,
            open_session_media=self.open_media,
            clock=provider.clock.now,
            sleep=self.sleep,
        )

    @property
    def clock(self) -> ManualClock:
        return self.provider.clock

    def sleep(self, seconds: float) -> Coroutine[Any, Any, None]:
        """The manager's sleep: the deadline is taken when it is called (not when the task
        awaiting it first runs), as with a real clock."""
        self.wake_at = self.clock.now() + seconds
        return self.clock.sleep_until(self.wake_at)

    async def advance(self, seconds: float) -> None:
        """Move the manager's time on, and wait until it sleeps again (it has acted on the
        new time).  For a test where the manager always has a wait ahead (a keep-alive)."""
        await self.clock.advance(seconds)
        await eventually(lambda: self.wake_at > self.clock.now(), what="the manager asleep")

    def open_media(self, address: MediaAddress, handlers: MediaHandlers) -> SessionMedia:
        self.addresses.append(address)
        return SessionMedia(ScriptedSource(handlers, self.source_fails), self.room)

    def states(self) -> list[str]:
        return [e.data["state"] for e in self.bus.recent if e.topic == "session.state"]

    def events(self, topic: str) -> list[dict[str, Any]]:
        return [e.data for e in self.bus.recent if e.topic == topic]


@pytest.fixture
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    options = getattr(request, "param", {})
    harness = Harness(ScriptedProvider(**options))
    tasks = [
        asyncio.create_task(harness.manager.run(), name="manager"),
        asyncio.create_task(harness.queue.run(harness.manager), name="queue"),
    ]
    yield harness
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def manager_task() -> asyncio.Task[Any]:
    return next(t for t in asyncio.all_tasks() if t.get_name() == "manager")


@pytest.mark.parametrize("harness", [{"keep_alive_every": 60.0}], indirect=True)
async def test_live_then_stopped_on_shutdown(harness: Harness) -> None:
    async def seen() -> tuple[str, list[str]]:
        running = [t.get_name() for t in asyncio.all_tasks() if not t.done()]
        return str(harness.manager.state), running

    harness.provider.at_stop = seen
    await eventually(lambda: harness.manager.state == SessionState.LIVE)
    session = harness.provider.sessions[0]
    task = manager_task()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert session.stopped
    state_at_stop, tasks_at_stop = session.seen_at_stop
    assert state_at_stop == "stopping"  # what status showed while the session was stopped
    assert not {"keep-alive", "media-source"} & set(tasks_at_stop)  # they stopped first
    assert harness.manager.state == SessionState.STOPPED
    assert harness.states()[-2:] == ["stopping", "stopped"]
    assert harness.addresses == [session.media]  # the source opened for the session's room


async def test_status_counts_down_to_the_session_duration_limit(harness: Harness) -> None:
    await eventually(lambda: harness.manager.state == SessionState.LIVE)
    left = harness.manager.snapshot()["seconds_left"]
    assert 590 <= left <= 600  # the scripted session's limit is 600 s, and it just started
    harness.provider.sessions[0].duration_limit = None
    assert harness.manager.snapshot()["seconds_left"] is None


async def test_a_second_cancel_waits_for_the_stop_it_interrupts(harness: Harness) -> None:
    stopping, release = asyncio.Event(), asyncio.Event()

    async def slow_stop() -> None:
        stopping.set()
        await release.wait()

    harness.provider.at_stop = slow_stop
    await eventually(lambda: harness.manager.state == SessionState.LIVE)
    session = harness.provider.sessions[0]
    task = manager_task()
    task.cancel()
    await stopping.wait()
    task.cancel()  # the supervisor's graceful stop is not cut in half by a second cancel
    await asyncio.sleep(0)
    assert not task.done() and not session.stopped
    release.set()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled() and session.stopped
    assert harness.manager.state == SessionState.STOPPED


async def test_a_stop_that_never_answers_is_logged_with_why(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("bridge.session.manager.STOP_TIMEOUT_S", 0.05)
    never = asyncio.Event()
    harness.provider.at_stop = never.wait
    await eventually(lambda: harness.manager.state == SessionState.LIVE)
    task = manager_task()
    with caplog.at_level(logging.WARNING, logger="bridge.session.manager"):
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert "could not stop session s1: no answer within 0.05 s" in caplog.text


@pytest.mark.parametrize("harness", [{"failures": 8}], indirect=True)
async def test_a_failing_start_is_retried_after_growing_delays_up_to_a_cap(
    harness: Harness,
) -> None:
    delays = []
    for attempt in range(1, 9):
        await eventually(lambda n=attempt: len(harness.events("session.retry")) == n)  # type: ignore[misc]
        retry = harness.events("session.retry")[-1]
        assert "busy" in retry["reason"] and retry["attempt"] == attempt
        status = harness.manager.snapshot()
        assert status["state"] == "failed" and "busy" in str(status["last_error"])
        assert status["next_try_in_s"] == pytest.approx(retry["delay_s"], abs=0.1)
        assert harness.provider.attempts == attempt  # nothing is tried before the delay is over
        delays.append(retry["delay_s"])
        await harness.clock.advance(retry["delay_s"] + 0.1)  # it is rounded
    await eventually(lambda: harness.manager.state == SessionState.LIVE)
    assert 0.8 <= delays[0] <= 1.2
    assert delays[:7] == sorted(delays[:7]) and len(set(delays[:7])) == 7  # growing
    assert all(48 <= d <= 72 for d in delays[6:])  # capped at a minute (with its jitter)
    status = harness.manager.snapshot()
    assert (status["reconnects"], status["next_try_in_s"], status["fix"]) == (8, None, None)
    assert harness.states()[:4] == ["failed", "starting", "failed", "starting"]


async def test_a_failed_source_ends_the_session_and_a_new_one_opens(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await eventually(lambda: harness.manager.state == SessionState.LIVE)
    with caplog.at_level(logging.ERROR, logger="bridge.session.manager"):
        harness.source_fails.set()
        await eventually(lambda: len(harness.provider.sessions) == 2)
        await eventually(lambda: harness.manager.state == SessionState.LIVE)
    assert harness.provider.sessions[0].stopped
    assert harness.states()[-4:] == ["ended", "starting", "connecting", "live"]
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "ValueError('boom')" in record.getMessage()
    assert "ValueError('boom')" in str(harness.manager.snapshot()["last_error"])


async def test_a_presence_report_outside_a_session_is_a_bug() -> None:
    harness = Harness(ScriptedProvider())
    with pytest.raises(IllegalTransition, match="starting -> live"):
        harness.manager.on_presence(True)  # no session, so no source, should report it
    assert harness.manager.state == SessionState.STARTING


async def test_data_from_the_room_is_decoded_by_the_session(harness: Harness) -> None:
    await eventually(lambda: harness.manager.state == SessionState.LIVE)
    harness.manager.handlers.data(b"hello", "script")
    harness.manager.handlers.data(b"not for us", "other")
    spoken = [e for e in harness.bus.recent if e.topic == "avatar.speak_text"]
    assert [e.data["text"] for e in spoken] == ["hello"]


async def test_provider_ending_the_session_renews_it(harness: Harness) -> None:
    await eventually(lambda: harness.manager.state == SessionState.LIVE)
    first = harness.provider.sessions[0]
    [cut_off] = harness.queue.submit("this will be cut off", source="test")
    [waiting] = harness.queue.submit("this waits for the next session", source="test")
    await eventually(lambda: cut_off.state == "sending")
    harness.manager.on_event(AvatarEvent("session_stopped", text="MAX_DURATION_REACHED"))
    await eventually(lambda: len(harness.provider.sessions) == 2)
    await eventually(lambda: harness.manager.state == SessionState.LIVE)
    assert first.stopped  # stopped even though the provider ended it: nothing leaks
    assert "ended" in harness.states()
    assert cut_off.state == "dropped" and "ended" in str(cut_off.detail)
    await eventually(lambda: waiting.state == "sending")
    assert harness.provider.sessions[1].spoken == [("this waits for the next session", "repeat")]


@pytest.mark.parametrize("harness", [{"keep_alive_every": 60.0}], indirect=True)
@pytest.mark.parametrize(("code", "fix"), [("NO_CREDITS", "credits"), ("AVATAR_DELETED", "avatar")])
async def test_a_session_ended_for_no_credits_is_not_replaced_until_fixed(
    harness: Harness, code: str, fix: str
) -> None:
    await eventually(lambda: harness.manager.state == SessionState.LIVE)
    harness.manager.on_event(AvatarEvent("session_stopped", text=code))
    await eventually(lambda: harness.events("session.failed"))
    await harness.clock.advance(3600)  # an hour later: still no second session
    await asyncio.sleep(0.05)
    assert len(harness.provider.sessions) == 1 and harness.provider.sessions[0].stopped
    status = harness.manager.snapshot()
    assert status["state"] == "failed" and status["next_try_in_s"] is None
    assert fix in status["fix"] and code in status["last_error"]
    assert harness.events("session.retry") == []
    harness.manager.try_again()  # credits added, the config reloaded
    await eventually(lambda: harness.manager.state == SessionState.LIVE)
    assert len(harness.provider.sessions) == 2 and harness.manager.snapshot()["fix"] is None


@pytest.mark.parametrize("harness", [{"keep_alive_every": 60.0}], indirect=True)
async def test_a_gone_session_found_by_keep_alive_is_renewed(harness: Harness) -> None:
    await eventually(lambda: harness.manager.state == SessionState.LIVE)
    harness.provider.sessions[0].gone = True
    await harness.clock.advance(60)
    await eventually(lambda: len(harness.provider.sessions) == 2)
    assert harness.provider.sessions[0].stopped
    [ended] = harness.events("session.ended")
    assert ended["session_id"] == "s1" and "closed" in ended["reason"]


async def test_speech_is_sent_in_order_one_at_a_time(harness: Harness) -> None:
    [first] = harness.queue.submit("one", "repeat", source="test")
    [second] = harness.queue.submit("two", "chat", source="test")
    await eventually(lambda: first.state == "sending")
    session = harness.provider.sessions[0]
    await asyncio.sleep(0.05)
    assert session.spoken == [("one", "repeat")]  # two waits until one has been spoken
    harness.manager.on_event(AvatarEvent("speak_started", first.task_id))
    assert first.state == "speaking"
    harness.manager.on_event(AvatarEvent("speak_ended", first.task_id))
    await eventually(lambda: second.state == "sending")
    assert session.spoken == [("one", "repeat"), ("two", "chat")]
    harness.manager.on_event(AvatarEvent("speak_ended", second.task_id, interrupted=True))
    await eventually(lambda: second.state == "dropped")
    assert (first.state, second.state, second.detail) == ("done", "dropped", "interrupted")
    topics = [e.topic for e in harness.bus.recent if e.topic.startswith("speech.")]
    assert topics.count("speech.done") == 1 and topics.count("speech.dropped") == 1


async def test_requests_wait_for_the_avatar_and_are_not_lost() -> None:
    harness = Harness(ScriptedProvider())
    # Submitted before the manager has even started a session.
    requests = [harness.queue.submit(f"line {n}", source="test")[0] for n in range(3)]
    tasks = [
        asyncio.create_task(harness.manager.run(), name="manager"),
        asyncio.create_task(harness.queue.run(harness.manager), name="queue"),
    ]
    try:
        for request in requests:
            await eventually(lambda r=request: r.state == "sending")  # type: ignore[misc]
            harness.manager.on_event(AvatarEvent("speak_ended", request.task_id))
        assert [r.state for r in requests] == ["done"] * 3
        assert [text for text, _ in harness.provider.sessions[0].spoken] == [
            "line 0",
            "line 1",
            "line 2",
        ]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_events_that_overtake_the_reply_still_end_the_request(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HeyGen's start/end events come over the room; the task id in the REST reply."""
    monkeypatch.setattr("bridge.control.queue.END_GRACE_S", 3600.0)  # no timeout ends it

    def talk_before_replying(task_id: str) -> None:
        harness.manager.on_event(AvatarEvent("speak_started", task_id))
        harness.manager.on_event(AvatarEvent("speak_ended", task_id))

    harness.provider.before_reply = talk_before_replying
    [first] = harness.queue.submit("short", source="test")
    [second] = harness.queue.submit("next", source="test")
    async with asyncio.timeout(10):  # the queue would otherwise wait for the hour
        await first.ended.wait()
        assert (first.state, first.detail) == ("done", None)
        await second.ended.wait()
    assert [text for text, _ in harness.provider.sessions[0].spoken] == ["short", "next"]
    topics = [e.topic for e in harness.bus.recent if e.topic.startswith("speech.")]
    assert topics.count("speech.done") == 2


async def test_commands_go_through_the_sessions_room(harness: Harness) -> None:
    [request] = harness.queue.submit("hello", source="test")
    await eventually(lambda: request.state == "sending")
    await harness.manager.interrupt()
    session = harness.provider.sessions[0]
    assert session.rooms == [harness.room] and session.interrupts == 1


def test_the_queue_splits_at_the_providers_text_limit() -> None:
    queue = SpeechQueue(bus=EventBus(), max_item=5)
    assert [item.text for item in queue.submit("12345", source="test")] == ["12345"]
    assert [item.text for item in queue.submit("123456", source="test")] == ["12345", "6"]


# --- failures: retry, back off, or give up with the fix --------------------------------------


def heygen_refusal(status: int, code: int) -> RemoteError:
    """The error the HeyGen client raises for this answer (the real error map)."""
    reply = Reply(
        status=status,
        body={"code": code, "message": "refused"},
        text="",
        headers={},
        endpoint="streaming.new",
    )
    return HEYGEN_ERRORS.error_for(reply)


FATAL_REFUSALS = {
    "bad key": (heygen_refusal(401, 400112), "HEYGEN_API_KEY"),
    "avatar not found": (heygen_refusal(400, 10012), "heygen-bridge avatars"),
    "no credits": (heygen_refusal(400, 10015), "Upgrade the HeyGen plan"),
}


@pytest.mark.parametrize(
    ("harness", "fix"),
    [({"refuse_with": error}, fix) for error, fix in FATAL_REFUSALS.values()],
    ids=list(FATAL_REFUSALS),
    indirect=["harness"],
)
async def test_a_refusal_retrying_cannot_mend_stops_after_one_try_with_the_fix(
    harness: Harness, fix: str
) -> None:
    await eventually(lambda: harness.events("session.failed"))
    await harness.clock.advance(3600)  # an hour later: still no second request
    await asyncio.sleep(0.05)
    assert harness.provider.attempts == 1
    status = harness.manager.snapshot()
    assert status["state"] == "failed" and status["next_try_in_s"] is None
    assert fix in status["fix"] and "restart heygen-bridge" in status["fix"]
    assert "HeyGen refused streaming.new" in status["last_error"]
    [failed] = harness.events("session.failed")
    assert failed["fix"] == status["fix"] and failed["reason"] == status["last_error"]
    assert harness.events("session.retry") == []
    harness.provider.refuse_with = None  # the config was fixed and reloaded
    harness.manager.try_again()
    await eventually(lambda: harness.manager.state == SessionState.LIVE)
    status = harness.manager.snapshot()
    assert (harness.provider.attempts, status["reconnects"], status["fix"]) == (2, 1, None)


@pytest.mark.parametrize("harness", [{"refuse_with": heygen_refusal(400, 10007)}], indirect=True)
async def test_the_session_limit_backs_off_longer_and_names_the_stop_command(
    harness: Harness,
) -> None:
    delays = []
    for attempt in (1, 2, 3):
        await eventually(lambda n=attempt: len(harness.events("session.retry")) == n)  # type: ignore[misc]
        retry = harness.events("session.retry")[-1]
        assert retry["kind"] == "limit"
        assert "heygen-bridge sessions stop --all" in retry["fix"]
        assert "heygen-bridge sessions stop --all" in harness.manager.snapshot()["fix"]
        delays.append(retry["delay_s"])
        await harness.clock.advance(retry["delay_s"] + 0.1)
    assert delays[0] >= 24  # a transient failure waits about a second; this one half a minute
    assert delays[0] < delays[1] < delays[2] <= 360
    assert harness.events("session.failed") == []  # it keeps trying: the limit frees in time
    await eventually(lambda: harness.provider.attempts == 4)


async def test_sessions_that_end_young_are_replaced_after_a_growing_delay(
    harness: Harness,
) -> None:
    await eventually(lambda: harness.manager.state == SessionState.LIVE)
    harness.source_fails.set()  # the room is lost a moment after the session opened
    await eventually(lambda: len(harness.provider.sessions) == 2)  # one is replaced at once
    await eventually(lambda: harness.manager.state == SessionState.LIVE)
    harness.source_fails.set()  # and again: now it waits
    await eventually(lambda: harness.events("session.retry"))
    [retry] = harness.events("session.retry")
    assert "ValueError('boom')" in retry["reason"] and 0.8 <= retry["delay_s"] <= 1.2
    assert harness.manager.snapshot()["next_try_in_s"] == pytest.approx(retry["delay_s"], abs=0.1)
    await asyncio.sleep(0.05)
    assert len(harness.provider.sessions) == 2  # not before the delay is over
    await harness.clock.advance(retry["delay_s"] + 0.1)
    await eventually(lambda: len(harness.provider.sessions) == 3)
    assert all(session.stopped for session in harness.provider.sessions[:2])


async def test_a_session_that_was_live_a_while_is_replaced_at_once(harness: Harness) -> None:
    for number in (1, 2, 3):
        await eventually(lambda: harness.manager.state == SessionState.LIVE)
        # A healthy session (renewal ahead of its limit would come at 570 s), ended by the
        # provider.
        await harness.clock.advance(500)
        harness.manager.on_event(AvatarEvent("session_stopped", text="MAX_DURATION_REACHED"))
        await eventually(lambda n=number: len(harness.provider.sessions) == n + 1)  # type: ignore[misc]
    assert harness.events("session.retry") == []


# --- keep-alive --------------------------------------------------------------------------------


@pytest.mark.parametrize("harness", [{"keep_alive_every": 60.0}], indirect=True)
async def test_keep_alive_is_skipped_after_activity_and_sent_after_silence(
    harness: Harness,
) -> None:
    await eventually(lambda: harness.manager.state == SessionState.LIVE)
    session = harness.provider.sessions[0]
    await harness.advance(50)
    await harness.manager.speak("hello", "repeat")  # t+50: the idle timer starts again
    await harness.advance(20)  # t+70: an every-60-s timer would have sent one at t+60
    await harness.advance(40)  # t+110: 60 s of silence since the speak
    await eventually(lambda: session.keep_alives)
    await harness.advance(60)  # t+170: 60 s of silence since that keep-alive
    await eventually(lambda: len(session.keep_alives) == 2)
    assert session.keep_alives == [1110.0, 1170.0]
    await harness.advance(30)
    await harness.manager.interrupt()  # t+200: an interrupt is activity too
    await harness.advance(59)
    await harness.advance(1)  # t+260: 60 s after the interrupt
    await eventually(lambda: len(session.keep_alives) == 3)
    assert session.keep_alives[2] == 1260.0


# --- status ------------------------------------------------------------------------------------


async def test_status_tells_when_the_session_ends_is_renewed_and_why_the_last_one_ended(
    harness: Harness,
) -> None:
    await eventually(lambda: harness.manager.state == SessionState.LIVE)
    status = harness.manager.snapshot()
    assert status["seconds_left"] == 600  # the scripted session's limit; no time has passed
    assert status["renewal_in_s"] == 600 - status["renew_margin_s"] == 570
    renewal_at = datetime.fromisoformat(status["next_renewal_at"])
    assert abs(renewal_at.timestamp() - (time.time() + 570)) < 5
    assert (status["reconnects"], status["last_reason"], status["next_try_in_s"]) == (0, None, None)
    await harness.clock.advance(100)
    assert harness.manager.snapshot()["seconds_left"] == 500
    assert harness.manager.snapshot()["renewal_in_s"] == 470
    harness.manager.on_event(AvatarEvent("session_stopped", text="MAX_DURATION_REACHED"))
    await eventually(lambda: len(harness.provider.sessions) == 2)
    await eventually(lambda: harness.manager.state == SessionState.LIVE)
    status = harness.manager.snapshot()
    assert status["reconnects"] == 1 and status["session_id"] == "s2"
    assert "MAX_DURATION_REACHED" in status["last_reason"]
    [ended] = harness.events("session.ended")
    assert ended["session_id"] == "s1" and ended["reason"] == status["last_reason"]
    assert ended["live_s"] == 100.0
    harness.provider.sessions[1].duration_limit = None
    status = harness.manager.snapshot()
    assert (status["seconds_left"], status["renewal_in_s"], status["next_renewal_at"]) == (
        None,
        None,
        None,
    )


# --- sessions left by a crash -----------------------------------------------------------------


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def on_record(path: Path) -> list[str]:
    return [row["session_id"] for row in json.loads(path.read_text())]


async def test_sessions_left_by_a_crashed_run_are_stopped_before_the_first_opens(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sessions.json"
    crashed, now = dead_pid(), time.time()

    def row(session_id: str, pid: int, account: str = "script", age: float = 60) -> dict[str, Any]:
        return {
            "account": account,
            "session_id": session_id,
            "pid": pid,
            "run": "an earlier run",
            "opened": now - age,
        }

    path.write_text(
        json.dumps(
            [
                row("left-by-a-crash", crashed),
                row("left-under-our-pid", os.getpid()),  # a container's daemon: same pid
                row("another-daemons", os.getppid()),  # its daemon still runs
                row("other-account", crashed, account="LiveAvatar http://elsewhere"),
                row("days-old", crashed, age=3 * 86400),  # long expired at the provider
                {**row("garbled", crashed), "opened": "yesterday", "pid": "1"},  # dropped
            ]
        )
    )
    harness = Harness(ScriptedProvider(), OpenedSessions(path))
    task = asyncio.create_task(harness.manager.run(), name="manager")
    try:
        await eventually(lambda: harness.manager.state == SessionState.LIVE)
        assert harness.provider.calls == [
            "stop left-by-a-crash",
            "stop left-under-our-pid",
            "open s1",
        ]
        assert harness.manager.snapshot()["orphans_stopped"] == 2
        assert on_record(path) == ["another-daemons", "other-account", "s1"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert on_record(path) == ["another-daemons", "other-account"]  # s1 stopped: off the record


def test_a_broken_record_costs_the_protection_not_the_daemon(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    garbled = tmp_path / "sessions.json"
    garbled.write_text("{not json")
    opened = OpenedSessions(garbled)
    with caplog.at_level(logging.WARNING):
        assert opened.orphans("script") == []
    assert on_record(garbled) == []  # replaced by a sound, empty record
    assert "not a valid record of sessions" in caplog.text
    opened.created("script", "s1")
    assert on_record(garbled) == ["s1"]
    caplog.clear()
    blocked = tmp_path / "a-file" / "sessions.json"
    blocked.parent.write_text("")  # the state directory cannot be made
    unusable = OpenedSessions(blocked)
    with caplog.at_level(logging.WARNING):
        unusable.created("script", "s2")
        unusable.stopped("s2")
        assert unusable.orphans("script") == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "will not be stopped at the next start" in warnings[0]
