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
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.control.queue import SpeechQueue
from bridge.errors import ApiError, ApiFault, SessionGone
from bridge.eventbus import EventBus
from bridge.providers.base import (
    NO_RECORD,
    AvatarInfo,
    LiveKitMedia,
    PublishData,
    SessionInfo,
    SessionRecorder,
    SpeakMode,
)
from bridge.providers.events import AvatarEvent
from bridge.session.manager import SessionManager, SessionState
from bridge.session.orphans import OpenedSessions
from tests.kit.eventually import eventually


class ScriptedSession:
    provider = "script"
    max_text = 1000

    def __init__(self, number: int, keep_alive_every: float | None) -> None:
        self.session_id = f"s{number}"
        self.media = LiveKitMedia(url="ws://unused", token="t")
        self.keep_alive_every = keep_alive_every
        self.spoken: list[tuple[str, SpeakMode]] = []
        self.stopped = False
        self.gone = False
        self.interrupts = 0

    async def speak(self, text: str, mode: SpeakMode) -> str:
        self.spoken.append((text, mode))
        return f"{self.session_id}-task{len(self.spoken)}"

    async def interrupt(self) -> None:
        self.interrupts += 1

    async def keep_alive(self) -> None:
        if self.gone:
            raise SessionGone(ApiFault(400, 10005, "closed"), provider="script", endpoint="ka")

    async def stop(self) -> None:
        self.stopped = True

    def decode(self, payload: bytes, topic: str | None) -> list[AvatarEvent]:
        return []

    def attach(self, publish: PublishData) -> None:
        pass


class ScriptedProvider:
    name = "script"
    account: str | None = "script"

    def __init__(self, *, failures: int = 0, keep_alive_every: float | None = None) -> None:
        self.failures = failures
        self.keep_alive_every = keep_alive_every
        self.sessions: list[ScriptedSession] = []
        self.calls: list[str] = []  # "open s1", "stop <id>", in order

    async def open_session(self, recorder: SessionRecorder = NO_RECORD) -> ScriptedSession:
        if self.failures:
            self.failures -= 1
            raise ApiError(
                ApiFault(503, None, "busy"), provider="script", endpoint="new", retryable=True
            )
        session = ScriptedSession(len(self.sessions) + 1, self.keep_alive_every)
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


class PresentSource:
    """A media source whose avatar is in the room at once."""

    def __init__(self, manager: SessionManager) -> None:
        self._manager = manager

    async def run(self) -> None:
        self._manager.on_avatar(True)
        await asyncio.Event().wait()

    async def publish(self, payload: bytes, topic: str) -> None:
        pass

    def snapshot(self) -> dict[str, Any]:
        return {}


class Harness:
    def __init__(self, provider: ScriptedProvider, opened: OpenedSessions | None = None) -> None:
        self.bus = EventBus()
        self.provider = provider
        self.queue = SpeechQueue(bus=self.bus)
        self.manager = SessionManager(
            provider=provider,
            make_source=lambda session, manager: PresentSource(manager),
            bus=self.bus,
            on_event=self.queue.on_event,
            on_session_end=self.queue.drop_unfinished,
            opened=opened,
        )

    def states(self) -> list[str]:
        return [e.data["state"] for e in self.bus.recent if e.topic == "session.state"]


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


async def test_live_then_stopped_on_shutdown(harness: Harness) -> None:
    await eventually(lambda: harness.manager.state == SessionState.LIVE)
    session = harness.provider.sessions[0]
    task = next(t for t in asyncio.all_tasks() if t.get_name() == "manager")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert session.stopped
    assert harness.manager.state == SessionState.STOPPED
    assert harness.states()[-2:] == ["stopping", "stopped"]


@pytest.mark.parametrize("harness", [{"failures": 2}], indirect=True)
async def test_retries_a_failing_start(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bridge.session.manager.RETRY_FIRST_S", 0.01)
    await eventually(lambda: harness.manager.state == SessionState.LIVE, within=10)
    assert harness.states()[:4] == ["failed", "starting", "failed", "starting"]
    assert "busy" in str(harness.manager.last_error)


async def test_provider_ending_the_session_renews_it(harness: Harness) -> None:
    await eventually(lambda: harness.manager.state == SessionState.LIVE)
    first = harness.provider.sessions[0]
    cut_off = harness.queue.submit("this will be cut off")
    waiting = harness.queue.submit("this waits for the next session")
    await eventually(lambda: cut_off.state == "sending")
    harness.manager.on_event(AvatarEvent("session_stopped", text="MAX_DURATION_REACHED"))
    await eventually(lambda: len(harness.provider.sessions) == 2)
    await eventually(lambda: harness.manager.state == SessionState.LIVE)
    assert first.stopped  # stopped even though the provider ended it: nothing leaks
    assert "ended" in harness.states()
    assert cut_off.state == "dropped" and "ended" in str(cut_off.detail)
    await eventually(lambda: waiting.state == "sending")
    assert harness.provider.sessions[1].spoken == [("this waits for the next session", "repeat")]


@pytest.mark.parametrize("harness", [{"keep_alive_every": 0.05}], indirect=True)
async def test_a_gone_session_found_by_keep_alive_is_renewed(harness: Harness) -> None:
    await eventually(lambda: harness.manager.state == SessionState.LIVE)
    harness.provider.sessions[0].gone = True
    await eventually(lambda: len(harness.provider.sessions) == 2)
    assert harness.provider.sessions[0].stopped


async def test_speech_is_sent_in_order_one_at_a_time(harness: Harness) -> None:
    first = harness.queue.submit("one", "repeat")
    second = harness.queue.submit("two", "chat")
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
    requests = [harness.queue.submit(f"line {n}") for n in range(3)]
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
