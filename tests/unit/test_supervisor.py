"""The supervisor's decisions, time moved by hand: what a stop signal means (one request
delivered twice is one request), and when the systemd watchdog is pinged (only while healthy:
a hung camera writer stops the pings)."""

from __future__ import annotations

import asyncio
import signal

import pytest

from bridge import supervisor
from bridge.supervisor import StopSignals
from bridge.watchdog import Progress, Watchdog


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_same_signal_again_within_a_second_is_the_same_request() -> None:
    clock = Clock()
    signals = StopSignals(clock=clock)
    assert signals.meaning(signal.SIGTERM) == "stop"
    clock.now += 0.01  # timeout(1): one kill reaches the process and then its group
    assert signals.meaning(signal.SIGTERM) == "repeat"
    clock.now += 0.5
    assert signals.meaning(signal.SIGTERM) == "repeat"
    clock.now += 0.6  # 1.11 s after the first: someone asks again
    assert signals.meaning(signal.SIGTERM) == "force"


def test_another_signal_forces_at_once() -> None:
    clock = Clock()
    signals = StopSignals(clock=clock)
    assert not signals.stopping
    assert signals.meaning(signal.SIGTERM) == "stop"
    assert signals.stopping
    assert signals.meaning(signal.SIGINT) == "force"


class Sent:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def __call__(self, state: str) -> bool:
        self.messages.append(state)
        return True

    @property
    def pings(self) -> int:
        return self.messages.count("WATCHDOG=1")


def test_a_hung_camera_writer_stops_the_pings_and_a_writing_one_resumes_them() -> None:
    clock = Clock()
    frames_out = [0]
    camera = Progress("camera writer", lambda: frames_out[0], stale_after=5.0, clock=clock)
    sent = Sent()
    watchdog = Watchdog(interval=1.0, checks=[camera], send=sent)
    for _ in range(10):  # writing: 30 frames a second
        frames_out[0] += 30
        clock.now += 1.0
        assert watchdog.beat()
    assert sent.pings == 10
    for _ in range(5):  # the writer hangs: within its grace, still pinged
        clock.now += 1.0
        watchdog.beat()
    assert sent.pings == 15
    clock.now += 1.0  # 6 s without a write
    assert not watchdog.beat()
    clock.now += 30.0
    assert not watchdog.beat()
    assert sent.pings == 15, "no ping while the writer hangs: systemd restarts the daemon"
    assert watchdog.problem == "camera writer has not written for 36.0 s"
    assert sent.messages.count("STATUS=unhealthy: camera writer has not written for 6.0 s") == 1
    frames_out[0] += 1
    clock.now += 1.0
    assert watchdog.beat()
    assert sent.pings == 16 and watchdog.problem is None
    assert "STATUS=healthy" in sent.messages


def test_without_checks_the_loop_alone_decides() -> None:
    sent = Sent()
    watchdog = Watchdog(interval=1.0, send=sent)
    assert watchdog.beat() and watchdog.beat()
    assert sent.messages == ["WATCHDOG=1", "WATCHDOG=1"]


def test_a_part_still_starting_has_the_grace_to_write_its_first() -> None:
    clock = Clock()
    camera = Progress("camera writer", lambda: 0, stale_after=5.0, clock=clock)
    clock.now += 5.0
    assert camera() is None
    clock.now += 0.5
    assert camera() == "camera writer has not written for 5.5 s"


async def test_a_reload_that_fails_with_a_bug_ends_the_daemon_with_it() -> None:
    main_ended = asyncio.Event()

    async def main() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            main_ended.set()

    async def broken_helper() -> None:
        raise RuntimeError("a bug in reload")

    task = asyncio.create_task(main())
    helper = asyncio.create_task(broken_helper())
    with pytest.raises(RuntimeError, match="a bug in reload"):
        await supervisor._until_done(task, [helper])
    assert main_ended.is_set() and task.cancelled()


async def test_the_daemon_ending_on_its_own_is_awaited_as_is() -> None:
    async def main() -> None:
        await asyncio.sleep(0)

    async def idle_helper() -> None:
        await asyncio.Event().wait()

    helper = asyncio.create_task(idle_helper())
    await supervisor._until_done(asyncio.create_task(main()), [helper])
    assert not helper.done()
    helper.cancel()
    await asyncio.gather(helper, return_exceptions=True)
