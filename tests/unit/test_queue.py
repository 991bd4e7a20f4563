"""The speech queue's semantics, against a fake avatar the test drives by hand: order, splitting,
``now``, interrupts, the bound and rate limits, and that every accepted item ends reported.

The avatar says nothing by itself: a test sees each command it gets (``next_call``) and
answers with the provider's events (``said``), so nothing here waits on a timer.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.config import RateLimitConfig
from bridge.control import queue as queue_module
from bridge.control.queue import SpeechItem, SpeechQueue
from bridge.errors import ApiFault, BadInput, Busy, InvalidRequest, NotFound, NotLive
from bridge.eventbus import Event, EventBus
from bridge.providers.base import SpeakMode
from bridge.providers.events import AvatarEvent, EventKind
from bridge.synthetic.voice import estimate_duration
from tests.kit.eventually import eventually

CALL_WITHIN_S = 5.0


class Avatar:
    """A fake session manager: live unless told otherwise; records every command."""

    def __init__(self) -> None:
        self.live = asyncio.Event()
        self.live.set()
        self.calls: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.spoken: list[str] = []
        self.interrupts = 0
        self.hold_reply: asyncio.Event | None = None  # speak() answers once it is set
        self.refusal: Exception | None = None  # speak() raises it
        self.interrupt_refusal: Exception | None = None

    async def speak(self, text: str, mode: SpeakMode) -> str:
        self.spoken.append(text)
        task_id = f"t{len(self.spoken)}"
        self.calls.put_nowait(("speak", text))
        if self.hold_reply is not None:
            await self.hold_reply.wait()
        if self.refusal is not None:
            raise self.refusal
        return task_id

    async def interrupt(self) -> None:
        if self.interrupt_refusal is not None:
            raise self.interrupt_refusal
        self.interrupts += 1
        self.calls.put_nowait(("interrupt", ""))

    async def next_call(self) -> tuple[str, str]:
        async with asyncio.timeout(CALL_WITHIN_S):
            return await self.calls.get()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Setup:
    def __init__(self, **options: Any) -> None:
        self.bus = EventBus(keep=1000)
        self.events: list[Event] = []
        self.bus.subscribe(self.events.append)
        self.clock = Clock()
        options.setdefault("max_item", 1000)
        self.queue = SpeechQueue(bus=self.bus, clock=self.clock, **options)
        self.avatar = Avatar()

    def said(self, kind: EventKind, item: SpeechItem, interrupted: bool = False) -> None:
        """The avatar's event about ``item`` (as the manager passes them on), by the task id
        its text was sent with (known to the avatar before the queue hears the reply)."""
        task_id = f"t{self.avatar.spoken.index(item.text) + 1}"
        self.queue.on_event(AvatarEvent(kind, task_id, interrupted=interrupted))

    async def spoken(self, item: SpeechItem) -> None:
        """``item`` is sent, started and ended; the avatar then gets the next one."""
        assert await self.avatar.next_call() == ("speak", item.text)
        self.said("speak_started", item)
        self.said("speak_ended", item)
        await item.ended.wait()

    def topics(self, item: SpeechItem) -> list[str]:
        return [e.topic for e in self.events if e.data.get("id") == item.id]


@pytest.fixture
async def setup(request: pytest.FixtureRequest) -> AsyncIterator[Setup]:
    setup = Setup(**getattr(request, "param", {}))
    runner = asyncio.create_task(setup.queue.run(setup.avatar), name="speech-queue")
    yield setup
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)


def one(items: list[SpeechItem]) -> SpeechItem:
    [item] = items
    return item


# --- order ------------------------------------------------------------------------------------


async def test_requests_are_spoken_first_in_first_out_one_at_a_time(setup: Setup) -> None:
    a = one(setup.queue.submit("Alpha.", source="http:127.0.0.1"))
    b = one(setup.queue.submit("Bravo.", "chat", source="ws:1"))
    c = one(setup.queue.submit("Charlie.", source="chat:alice"))
    assert [(i.id, i.request_id) for i in (a, b, c)] == [("s1", "r1"), ("s2", "r2"), ("s3", "r3")]
    assert await setup.avatar.next_call() == ("speak", "Alpha.")
    assert setup.avatar.calls.empty()  # Bravo waits until Alpha has been said
    assert [i.id for i in setup.queue.items()] == ["s1", "s2", "s3"]
    setup.said("speak_started", a)
    setup.said("speak_ended", a)
    await setup.spoken(b)
    await setup.spoken(c)
    assert [i.state for i in (a, b, c)] == ["done"] * 3
    assert setup.avatar.spoken == ["Alpha.", "Bravo.", "Charlie."]


@pytest.mark.parametrize("setup", [{"max_item": 30}], indirect=True)
async def test_a_long_text_is_split_into_parts_that_stay_together(setup: Setup) -> None:
    text = "This is the first sentence. Here comes the second one. And a third."
    parts = setup.queue.submit(text, source="cli")
    after = one(setup.queue.submit("Next request.", source="cli"))
    assert [(p.text, p.part, p.parts, p.request_id) for p in parts] == [
        ("This is the first sentence.", 1, 3, "r1"),
        ("Here comes the second one.", 2, 3, "r1"),
        ("And a third.", 3, 3, "r1"),
    ]
    assert after.request_id == "r2"
    for item in [*parts, after]:
        await setup.spoken(item)
    assert setup.avatar.spoken == [p.text for p in parts] + ["Next request."]


async def test_now_interrupts_the_current_speech_and_goes_first(setup: Setup) -> None:
    current = one(setup.queue.submit("Speaking now.", source="cli"))
    waiting = one(setup.queue.submit("Waiting.", source="cli"))
    assert await setup.avatar.next_call() == ("speak", "Speaking now.")
    setup.said("speak_started", current)
    urgent = one(setup.queue.submit("Urgent!", priority="now", source="preset:alarm"))
    assert await setup.avatar.next_call() == ("interrupt", "")
    assert (current.state, current.detail) == ("dropped", "interrupted")
    await setup.spoken(urgent)
    await setup.spoken(waiting)
    assert setup.avatar.spoken == ["Speaking now.", "Urgent!", "Waiting."]


@pytest.mark.parametrize("setup", [{"max_item": 12}], indirect=True)
async def test_now_goes_before_everything_queued_and_drops_the_cut_off_request(
    setup: Setup,
) -> None:
    long = setup.queue.submit("First part. Second part.", source="cli")
    waiting = one(setup.queue.submit("Waiting.", source="cli"))
    assert await setup.avatar.next_call() == ("speak", "First part.")
    urgent = setup.queue.submit("Urgent one. Urgent two.", priority="now", source="cli")
    assert await setup.avatar.next_call() == ("interrupt", "")
    # The rest of the interrupted request is not said later, out of context.
    assert [(i.state, i.detail) for i in long] == [("dropped", "interrupted")] * 2
    for item in [*urgent, waiting]:
        await setup.spoken(item)
    assert setup.avatar.spoken == ["First part.", "Urgent one.", "Urgent two.", "Waiting."]


async def test_now_with_nothing_being_spoken_interrupts_nothing(setup: Setup) -> None:
    setup.avatar.live.clear()
    waiting = one(setup.queue.submit("Waiting.", source="cli"))
    urgent = one(setup.queue.submit("Urgent!", priority="now", source="cli"))
    assert [i.id for i in setup.queue.items()] == [urgent.id, waiting.id]
    setup.avatar.live.set()
    await setup.spoken(urgent)
    await setup.spoken(waiting)
    assert setup.avatar.interrupts == 0


# --- interrupt, clear, remove -----------------------------------------------------------------


async def test_interrupt_drops_the_current_item_and_the_queue_goes_on(setup: Setup) -> None:
    current = one(setup.queue.submit("Cut me off.", source="cli"))
    waiting = one(setup.queue.submit("Then me.", source="cli"))
    assert await setup.avatar.next_call() == ("speak", "Cut me off.")
    setup.said("speak_started", current)
    assert await setup.queue.interrupt() is current
    assert (current.state, current.detail) == ("dropped", "interrupted")
    assert await setup.avatar.next_call() == ("interrupt", "")
    await setup.spoken(waiting)
    # The provider's own report of the interruption changes nothing more.
    setup.said("speak_ended", current, interrupted=True)
    assert setup.topics(current).count("speech.dropped") == 1


async def test_an_interrupt_before_the_provider_answered_still_silences_it(setup: Setup) -> None:
    setup.avatar.hold_reply = asyncio.Event()
    current = one(setup.queue.submit("Not yet sent.", source="cli"))
    assert await setup.avatar.next_call() == ("speak", "Not yet sent.")
    assert current.state == "sending"
    assert await setup.queue.interrupt() is current
    assert await setup.avatar.next_call() == ("interrupt", "")
    assert current.as_json()["state"] == "dropped"  # (as_json: mypy narrowed state above)
    setup.avatar.hold_reply.set()  # the provider had the text after all: stop it again
    assert await setup.avatar.next_call() == ("interrupt", "")
    assert setup.avatar.interrupts == 2


async def test_interrupt_without_a_session_says_so_and_changes_nothing(setup: Setup) -> None:
    current = one(setup.queue.submit("Still speaking.", source="cli"))
    assert await setup.avatar.next_call() == ("speak", "Still speaking.")
    setup.avatar.interrupt_refusal = NotLive("the avatar is not live (state: connecting)")
    with pytest.raises(NotLive):
        await setup.queue.interrupt()
    assert current.state == "sending"


async def test_interrupt_before_the_queue_runs_is_not_live() -> None:
    queue = SpeechQueue(bus=EventBus(), max_item=100)
    with pytest.raises(NotLive, match="not running"):
        await queue.interrupt()


async def test_clear_drops_every_queued_item_but_not_the_current_one(setup: Setup) -> None:
    current = one(setup.queue.submit("Current.", source="cli"))
    assert await setup.avatar.next_call() == ("speak", "Current.")
    queued = [one(setup.queue.submit(f"Queued {n}.", source="cli")) for n in range(3)]
    assert setup.queue.clear() == queued
    assert [(i.state, i.detail) for i in queued] == [("dropped", "cleared")] * 3
    assert setup.queue.depth == 0 and current.state == "sending"
    assert setup.queue.clear() == []


async def test_remove_drops_one_queued_item(setup: Setup) -> None:
    setup.avatar.live.clear()
    first, second = (one(setup.queue.submit(t, source="cli")) for t in ("One.", "Two."))
    assert setup.queue.remove(first.id) is first
    assert (first.state, first.detail) == ("dropped", "removed")
    assert setup.queue.items() == [second]
    for unknown in (first.id, "s99", "", "r1"):
        with pytest.raises(NotFound, match="queue item"):
            setup.queue.remove(unknown)
    setup.avatar.live.set()
    assert await setup.avatar.next_call() == ("speak", "Two.")
    with pytest.raises(NotFound):  # being spoken: interrupt it instead
        setup.queue.remove(second.id)


# --- bad input, the bound and rate limits -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mode", "priority", "field"),
    [
        ("", "repeat", "normal", "text"),
        (" \t\n ", "repeat", "normal", "text"),
        ("\x00\x07", "repeat", "normal", "text"),
        ("bad \ud800 half", "repeat", "normal", "text"),
        ("x" * 51, "repeat", "normal", "text"),
        (7, "repeat", "normal", "text"),
        ("Hi.", "sing", "normal", "mode"),
        ("Hi.", None, "normal", "mode"),
        ("Hi.", "repeat", "later", "priority"),
        ("Hi.", "repeat", 1, "priority"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_changes_nothing(
    text: object, mode: object, priority: object, field: str
) -> None:
    setup = Setup(max_text=50)
    with pytest.raises(BadInput) as refused:
        setup.queue.submit(text, mode, priority, source="cli")
    assert refused.value.field == field
    assert setup.queue.snapshot() == {"pending": 0, "current": None, "queue": [], "recent": []}
    assert setup.events == []
    assert one(setup.queue.submit("Fine.", source="cli")).id == "s1"  # no id was used up


def test_text_is_normalised_before_it_is_queued() -> None:
    item = one(Setup().queue.submit("  Cafe\u0301\x00 au\r\nlait \x1f ", source="cli"))
    assert item.text == "Café au\nlait"


def test_a_full_queue_is_busy_and_keeps_what_it_has() -> None:
    setup = Setup(limit=2, max_item=20)
    kept = [one(setup.queue.submit(t, source="cli")) for t in ("One.", "Two.")]
    with pytest.raises(Busy) as busy:
        setup.queue.submit("Three.", source="cli")
    assert busy.value.retry_after >= 1
    assert str(busy.value).startswith("queue: is full (2 items waiting, at most 2)")
    assert setup.queue.items() == kept
    setup.queue.remove(kept[0].id)
    with pytest.raises(Busy):  # a request is taken whole or not at all
        setup.queue.submit("Three words here. And two more words.", source="cli")
    assert setup.queue.items() == kept[1:]
    with pytest.raises(BadInput, match="makes 3 items of at most 20 characters; the queue holds 2"):
        setup.queue.submit("Never fits in two. Not in two items. No.", source="cli")


async def test_busy_says_when_the_current_speech_should_be_over(setup: Setup) -> None:
    text = "This sentence takes the avatar a few seconds to say out loud."
    setup.queue.limit = 1
    current = one(setup.queue.submit(text, source="cli"))
    assert await setup.avatar.next_call() == ("speak", text)
    one(setup.queue.submit("Waiting.", source="cli"))
    setup.clock.now += 1.5
    with pytest.raises(Busy) as busy:
        setup.queue.submit("No room.", source="cli")
    assert busy.value.retry_after == math.ceil(estimate_duration(current.text) - 1.5)


def test_a_source_over_its_rate_is_busy_and_others_are_not() -> None:
    setup = Setup(rate=RateLimitConfig(per_minute=6, burst=2))
    for n in range(2):
        setup.queue.submit(f"Burst {n}.", source="ws:1")
    with pytest.raises(Busy) as busy:
        setup.queue.submit("One too many.", source="ws:1")
    assert busy.value.retry_after == 10  # 6 a minute: the next token in 10 s
    assert "ws:1: over the rate limit" in str(busy.value)
    setup.queue.submit("Someone else.", source="ws:2")
    setup.clock.now += 10
    setup.queue.submit("Allowed again.", source="ws:1")
    assert [i.source for i in setup.queue.items()] == ["ws:1", "ws:1", "ws:2", "ws:1"]


def test_refused_requests_do_not_count_against_the_rate() -> None:
    setup = Setup(rate=RateLimitConfig(per_minute=1, burst=1))
    with pytest.raises(BadInput):
        setup.queue.submit("", source="ws:1")
    setup.queue.submit("Still allowed.", source="ws:1")


def test_without_a_rate_config_there_is_no_limit() -> None:
    setup = Setup(limit=500)
    for n in range(200):
        setup.queue.submit(f"Line {n}.", source="http:127.0.0.1")
    assert setup.queue.depth == 200


# --- every item ends reported -----------------------------------------------------------------


async def test_each_state_change_is_one_event_with_the_item(setup: Setup) -> None:
    setup.clock.now = 0
    item = one(setup.queue.submit("Hello.", source="cli"))
    await setup.spoken(item)
    events = [e for e in setup.events if e.data.get("id") == item.id]
    assert [e.topic for e in events] == [
        "speech.queued",
        "speech.sending",
        "speech.speaking",
        "speech.done",
    ]
    assert [e.data["item"]["state"] for e in events] == ["queued", "sending", "speaking", "done"]
    assert all(e.data["request_id"] == "r1" for e in events)
    speaking = events[2].data
    assert 0 <= speaking["latency_s"] < 60
    assert "latency_s" not in events[3].data
    assert events[3].data["item"]["task_id"] == "t1"
    assert setup.queue.finished == {"done": 1}


async def test_the_provider_refusing_an_item_fails_it_and_the_next_goes_on(setup: Setup) -> None:
    setup.avatar.refusal = InvalidRequest(
        ApiFault(400, 400, "text too long"), provider="fake", endpoint="task"
    )
    refused = one(setup.queue.submit("Refused.", source="cli"))
    await refused.ended.wait()
    assert refused.state == "failed" and "text too long" in str(refused.detail)
    setup.avatar.refusal = None
    assert await setup.avatar.next_call() == ("speak", "Refused.")
    nxt = one(setup.queue.submit("Next.", source="cli"))
    await setup.spoken(nxt)
    assert setup.queue.finished == {"failed": 1, "done": 1}


async def test_an_item_the_session_lost_before_sending_waits_for_the_next(setup: Setup) -> None:
    setup.avatar.hold_reply = asyncio.Event()
    item = one(setup.queue.submit("Lost on the way.", source="cli"))
    assert await setup.avatar.next_call() == ("speak", "Lost on the way.")
    setup.avatar.live.clear()
    setup.avatar.refusal = NotLive("the avatar is not live (state: reconnecting)")
    setup.avatar.hold_reply.set()
    await eventually(lambda: item.state == "queued")
    assert setup.queue.items() == [item]
    setup.avatar.hold_reply = None
    setup.avatar.refusal = None
    setup.avatar.live.set()
    assert await setup.avatar.next_call() == ("speak", "Lost on the way.")
    assert setup.topics(item) == [
        "speech.queued",
        "speech.sending",
        "speech.queued",
        "speech.sending",
    ]


async def test_the_session_ending_drops_what_was_being_said(setup: Setup) -> None:
    item = one(setup.queue.submit("Cut by the session.", source="cli"))
    waiting = one(setup.queue.submit("Next session.", source="cli"))
    assert await setup.avatar.next_call() == ("speak", "Cut by the session.")
    setup.queue.drop_unfinished("the session s1 ended")
    assert (item.state, item.detail) == ("dropped", "the session s1 ended")
    await setup.spoken(waiting)


async def test_an_item_that_waited_too_long_expires(setup: Setup) -> None:
    setup.avatar.live.clear()
    stale = one(setup.queue.submit("Old news.", source="cli"))
    fresh = one(setup.queue.submit("Fresh.", source="cli"))
    stale.created -= queue_module.MAX_WAIT_S + 1
    setup.avatar.live.set()
    await setup.spoken(fresh)
    assert (stale.state, stale.detail) == ("dropped", "expired")
    assert setup.avatar.spoken == ["Fresh."]


async def test_a_stop_without_persistence_reports_every_item_dropped() -> None:
    setup = Setup()
    runner = asyncio.create_task(setup.queue.run(setup.avatar))
    current = one(setup.queue.submit("Being said.", source="cli"))
    queued = one(setup.queue.submit("Never said.", source="cli"))
    assert await setup.avatar.next_call() == ("speak", "Being said.")
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    assert [(i.state, i.detail) for i in (current, queued)] == [
        ("dropped", "the daemon stopped")
    ] * 2
    assert setup.queue.finished == {"dropped": 2}


async def test_status_shows_current_queued_and_recent_items(setup: Setup) -> None:
    done = one(setup.queue.submit("Done.", source="cli"))
    await setup.spoken(done)
    current = one(setup.queue.submit("Current.", source="cli"))
    assert await setup.avatar.next_call() == ("speak", "Current.")
    queued = one(setup.queue.submit("Queued.", source="cli"))
    snapshot = setup.queue.snapshot()
    assert snapshot["pending"] == 1 == setup.queue.depth
    assert snapshot["current"]["id"] == current.id and setup.queue.speaking
    assert [i["id"] for i in snapshot["queue"]] == [queued.id]
    assert [(i["id"], i["state"]) for i in snapshot["recent"]] == [
        (done.id, "done"),
        (current.id, "sending"),
        (queued.id, "queued"),
    ]
    assert setup.queue.items() == [current, queued]
    assert [setup.queue.get(i) for i in ("s1", "s2", "s3", "s4")] == [done, current, queued, None]
    assert set(done.as_json()) == {
        "id", "request_id", "part", "parts", "text", "mode", "priority", "source",
        "state", "detail", "task_id", "created",
    }  # fmt: skip
