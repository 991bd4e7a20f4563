"""The speech queue across a restart, on the real file system: what was queued comes back, what
was being said does not, and a bad file never stops the queue (or the daemon) from starting.

A "restart" is a queue whose ``run`` is cancelled (the daemon's shutdown) and a new queue
built over the same file (the next start).
"""

from __future__ import annotations

import asyncio
import json
import logging
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from bridge.control import persist
from bridge.control.queue import SpeechItem, SpeechQueue
from bridge.eventbus import EventBus
from bridge.providers.base import SpeakMode
from tests.kit.eventually import eventually


class Avatar:
    """A session manager stand-in: ``live`` only when a test says so; speaking never ends."""

    def __init__(self, *, live: bool) -> None:
        self.live = asyncio.Event()
        if live:
            self.live.set()
        self.spoken: asyncio.Queue[str] = asyncio.Queue()

    async def speak(self, text: str, mode: SpeakMode) -> str:
        self.spoken.put_nowait(text)
        return f"task-{self.spoken.qsize()}"

    async def interrupt(self) -> None:
        pass


class Daemon:
    """One run of the queue over ``path``, stopped like the daemon stops it."""

    def __init__(self, path: Path, *, live: bool = False, **options: Any) -> None:
        self.bus = EventBus(keep=1000)
        self.queue = SpeechQueue(bus=self.bus, max_item=40, store_path=path, **options)
        self.avatar = Avatar(live=live)
        self._runner: asyncio.Task[None] | None = None

    async def start(self) -> Daemon:
        self._runner = asyncio.create_task(self.queue.run(self.avatar), name="speech-queue")
        await asyncio.sleep(0)  # it runs (a task cancelled before its first step never does)
        return self

    async def stop(self) -> None:
        assert self._runner is not None
        self._runner.cancel()
        await asyncio.gather(self._runner, return_exceptions=True)

    def say(self, text: str, priority: str = "normal") -> list[SpeechItem]:
        return self.queue.submit(text, priority=priority, source="http:127.0.0.1")


def on_file(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(path.read_text())["items"]
    return rows


def brief(items: list[SpeechItem]) -> list[tuple[str, str, int, int, str, str]]:
    return [(i.id, i.request_id, i.part, i.parts, i.text, i.state) for i in items]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "heygen-bridge" / "queue.json"


async def test_queued_items_survive_a_restart_in_order(path: Path) -> None:
    first = await Daemon(path).start()  # the avatar never comes: everything stays queued
    first.say("One.")
    first.say("A long request, in parts. They stay together.")
    first.say("Before everything!", priority="now")
    before = brief(first.queue.items())
    await first.stop()
    mode = stat.S_IMODE((await asyncio.to_thread(path.stat)).st_mode)
    assert mode == 0o600  # what people asked to say is theirs

    second = Daemon(path)
    assert brief(second.queue.items()) == before
    assert [t for *_, t, _ in before] == [
        "Before everything!",
        "One.",
        "A long request, in parts.",
        "They stay together.",
    ]
    first_one = second.queue.items()[0]
    assert (first_one.source, first_one.priority) == ("http:127.0.0.1", "now")
    # Ids go on after the highest restored, so no client confuses a new item with an old one.
    [new] = second.say("After the restart.")
    assert (new.id, new.request_id) == ("s5", "r4")


async def test_restored_items_are_spoken_after_the_restart(path: Path) -> None:
    first = await Daemon(path).start()
    first.say("Said after the restart.")
    await first.stop()
    second = await Daemon(path, live=True).start()
    try:
        async with asyncio.timeout(5):
            assert await second.avatar.spoken.get() == "Said after the restart."
    finally:
        await second.stop()
    assert on_file(path) == []  # the file follows: it was taken off the queue to be said


async def test_the_item_being_said_at_the_stop_is_not_said_again(path: Path) -> None:
    first = await Daemon(path, live=True).start()
    [being_said] = first.say("Being said when the daemon stops.")
    [waiting] = first.say("Still waiting.")
    async with asyncio.timeout(5):
        assert await first.avatar.spoken.get() == being_said.text
    await first.stop()
    assert (being_said.state, being_said.detail) == ("dropped", "the daemon stopped")
    second = Daemon(path)
    assert brief(second.queue.items()) == brief([waiting])


async def test_a_burst_of_changes_is_one_write_off_the_event_loop(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writers: list[str] = []
    write = persist._replace

    def counted(where: Path, document: dict[str, Any]) -> None:
        writers.append(threading.current_thread().name)
        write(where, document)

    monkeypatch.setattr(persist, "_replace", counted)
    daemon = await Daemon(path, limit=500).start()
    try:
        for n in range(200):
            daemon.say(f"Line {n}.")
        await eventually(lambda: path.exists() and len(on_file(path)) == 200)
        assert len(writers) == 1
        assert threading.main_thread().name not in writers
        daemon.queue.clear()
        await eventually(lambda: on_file(path) == [])
    finally:
        await daemon.stop()


async def test_a_change_made_while_the_last_write_was_on_its_way_is_written_at_the_stop(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writing, release = threading.Event(), threading.Event()
    write = persist._replace

    def slow(where: Path, document: dict[str, Any]) -> None:
        writing.set()
        release.wait(timeout=30)
        write(where, document)

    monkeypatch.setattr(persist, "_replace", slow)
    daemon = await Daemon(path).start()
    daemon.say("One.")
    assert await asyncio.to_thread(writing.wait, 30)  # "One." is on its way to the file
    daemon.say("Two.")  # changed again, and then the daemon stops at once
    stopping = asyncio.create_task(daemon.stop())
    await asyncio.sleep(0)
    release.set()
    await stopping
    assert [row["text"] for row in on_file(path)] == ["One.", "Two."]


async def test_a_queue_that_never_changed_leaves_the_file_alone(path: Path) -> None:
    daemon = await Daemon(path).start()
    await daemon.stop()
    assert not await asyncio.to_thread(path.exists)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"{not json", "Expecting property name"),
        (b"\x80 not text", "codec can't decode"),
        (b"[]", "not a speech queue file of version 1"),
        (b'{"version": 2, "items": []}', "not a speech queue file of version 1"),
        (b'{"version": 1, "items": {}}', '"items" is not a list'),
        (b'{"version": 1, "items": [42]}', "an item must be an object"),
        (b'{"version": 1, "items": [{"id": "s1"}]}', "is not an id like"),
    ],
)
async def test_a_corrupt_file_is_one_warning_and_an_empty_queue(
    path: Path, content: bytes, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    await asyncio.to_thread(path.parent.mkdir, parents=True)
    await asyncio.to_thread(path.write_bytes, content)
    with caplog.at_level(logging.WARNING):
        daemon = Daemon(path)
    [warning] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert str(path) in warning.getMessage() and why in warning.getMessage()
    assert "starts empty" in warning.getMessage()
    assert daemon.queue.items() == []
    await daemon.start()
    daemon.say("A fresh start.")
    await daemon.stop()
    assert [row["text"] for row in on_file(path)] == ["A fresh start."]  # replaced


def valid_row(**change: Any) -> dict[str, Any]:
    row = {
        "id": "s7",
        "request_id": "r3",
        "part": 1,
        "parts": 1,
        "text": "Hello.",
        "mode": "repeat",
        "priority": "normal",
        "source": "cli",
        "state": "queued",
        "detail": None,
        "task_id": None,
        "created": 1.0e12,  # far in the future: never expired
    }
    return {**row, **change}


@pytest.mark.parametrize(
    "row",
    [
        valid_row(part=2),
        valid_row(part=True),
        valid_row(text="\ud800"),
        valid_row(text=""),
        valid_row(mode="sing"),
        valid_row(priority=None),
        valid_row(request_id="s3"),
        valid_row(created="yesterday"),
        valid_row(source=None),
    ],
)
def test_an_item_that_is_not_one_makes_the_file_unusable(
    path: Path, row: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"version": 1, "items": [valid_row(id="s1"), row]}))
    with caplog.at_level(logging.WARNING):
        assert Daemon(path).queue.items() == []
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1


def test_an_unreadable_file_is_one_warning_and_an_empty_queue(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path.mkdir(parents=True)  # a directory where the file should be
    with caplog.at_level(logging.WARNING):
        assert Daemon(path).queue.items() == []
    [warning] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "cannot be read" in warning.getMessage()


def test_items_that_waited_too_long_or_no_longer_fit_are_dropped_on_restore(path: Path) -> None:
    path.parent.mkdir(parents=True)
    rows = [
        valid_row(id="s1", request_id="r1", created=1.0),
        valid_row(id="s2", request_id="r2", text="x" * 41),
        valid_row(id="s3", request_id="r3", text="Fine."),
    ]
    path.write_text(json.dumps({"version": 1, "items": rows}))
    daemon = Daemon(path)
    assert [i.id for i in daemon.queue.items()] == ["s3"]
    dropped = [(e.data["id"], e.data["item"]["detail"]) for e in daemon.bus.recent]
    assert dropped == [("s1", "expired"), ("s2", "longer than 40 characters")]
    assert daemon.queue.finished == {"dropped": 2}
    assert [i.id for i in daemon.say("New.")] == ["s4"]


async def test_a_file_that_cannot_be_written_costs_persistence_not_the_queue(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    await asyncio.to_thread(blocker.write_text, "")
    path = blocker / "queue.json"  # its parent is a file: every read and write fails
    daemon = await Daemon(path).start()
    caplog.clear()  # (reading it at the start was one warning: tested above)
    store = daemon.queue.store
    assert store is not None
    try:
        with caplog.at_level(logging.WARNING):
            daemon.say("One.")
            await eventually(lambda: store.write_failures == 1)
            daemon.say("Two.")
            await eventually(lambda: store.write_failures == 2)
        assert [i.text for i in daemon.queue.items()] == ["One.", "Two."]
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and "cannot save the speech queue" in warnings[0].getMessage()
    finally:
        await daemon.stop()
