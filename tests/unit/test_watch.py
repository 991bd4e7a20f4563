"""StatusWatch (bridge/control/watch.py): the camera's and the mic's state become events when
they change, with the detail that explains them, and only then."""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.control.watch import StatusWatch
from bridge.eventbus import Event, EventBus


def watching(status: dict[str, Any]) -> tuple[StatusWatch, list[Event]]:
    """A watch over ``status`` (a dict the test changes in place), and what it emitted."""
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)
    return StatusWatch(bus, lambda: status), events


def test_the_first_reading_and_each_change_are_emitted_with_their_detail() -> None:
    status: dict[str, Any] = {
        "camera": {"state": "writing", "device": "/dev/video10", "frames_out": 1},
        "microphone": {"state": "disabled"},
    }
    watch, events = watching(status)
    watch.check()
    assert [(e.topic, e.data) for e in events] == [
        ("camera.state", {"state": "writing", "device": "/dev/video10", "previous": None}),
        ("microphone.state", {"state": "disabled", "previous": None}),
    ]
    events.clear()
    status["camera"]["frames_out"] = 500  # counters move all the time: not a change of state
    watch.check()
    assert events == []
    status["camera"] = {
        "state": "unavailable",
        "device": None,
        "last_error": "no v4l2 loopback device",
        "fix": "sudo modprobe v4l2loopback",
    }
    watch.check()
    watch.check()
    assert [(e.topic, e.data) for e in events] == [
        (
            "camera.state",
            {
                "state": "unavailable",
                "device": None,
                "last_error": "no v4l2 loopback device",
                "fix": "sudo modprobe v4l2loopback",
                "previous": "writing",
            },
        )
    ]


def test_a_new_reason_for_the_same_state_is_a_change() -> None:
    status: dict[str, Any] = {"microphone": {"state": "unavailable", "last_error": "no server"}}
    watch, events = watching(status)
    watch.check()
    status["microphone"]["last_error"] = "module-null-sink failed to load"
    watch.check()
    assert [e.data["last_error"] for e in events] == [
        "no server",
        "module-null-sink failed to load",
    ]
    assert events[1].data["previous"] == "unavailable"


def test_a_status_without_the_parts_emits_nothing() -> None:
    watch, events = watching({"camera": None, "session": {"state": "live"}})
    watch.check()
    assert events == []


async def test_run_keeps_reading_until_cancelled() -> None:
    status: dict[str, Any] = {"camera": {"state": "starting"}}
    bus = EventBus()
    seen: asyncio.Queue[Event] = asyncio.Queue()
    bus.subscribe(seen.put_nowait)
    task = asyncio.create_task(StatusWatch(bus, lambda: status, every=0.01).run())
    try:
        assert (await asyncio.wait_for(seen.get(), 5)).data["state"] == "starting"
        status["camera"] = {"state": "writing"}
        assert (await asyncio.wait_for(seen.get(), 5)).data["state"] == "writing"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
