"""Joining a LiveKit room is never cut in half by a cancel (bridge/source/livekit_join.py).

A fake room stands in for ``rtc.Room``: its connect ends when the test says so, which is
what lets a test hold a cancel in the middle of it.  The real SDK is in
tests/component/test_connect_cancel.py.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from livekit import rtc

from bridge.source import livekit_join


class FakeRoom:
    """Connects when ``answer`` is set (failing with ``error``, if any); records the rest."""

    def __init__(self, error: Exception | None = None) -> None:
        self.answer = asyncio.Event()
        self.asked = asyncio.Event()  # connect() was called
        self.error = error
        self.calls: list[str] = []
        self.connected = False

    async def connect(self, url: str, token: str, options: Any) -> None:
        self.calls.append("connect")
        self.asked.set()
        try:
            await self.answer.wait()
        except asyncio.CancelledError:
            self.calls.append("connect cancelled")  # what the SDK must never see
            raise
        if self.error is not None:
            raise self.error
        self.connected = True

    async def disconnect(self) -> None:
        if self.connected:
            self.calls.append("disconnect")
            self.connected = False


async def _cancelled_twice_while_connecting(room: FakeRoom) -> asyncio.Task[None]:
    joining = asyncio.create_task(
        livekit_join.connect(cast(rtc.Room, room), "ws://x", "t", name="test-join")
    )
    await room.asked.wait()
    joining.cancel()
    await asyncio.sleep(0)
    joining.cancel()  # shutdown's second try: held as well
    await asyncio.sleep(0)
    assert not joining.done()  # waiting for the connect to end
    room.answer.set()
    return joining


async def test_a_cancel_lets_the_connect_end_then_leaves_and_goes_on() -> None:
    room = FakeRoom()
    joining = await _cancelled_twice_while_connecting(room)
    with pytest.raises(asyncio.CancelledError):
        await joining
    assert room.calls == ["connect", "disconnect"]
    assert not room.connected


async def test_a_cancel_during_a_failing_connect_is_still_a_cancel() -> None:
    room = FakeRoom(error=rtc.ConnectError("refused"))
    joining = await _cancelled_twice_while_connecting(room)
    with pytest.raises(asyncio.CancelledError) as raised:
        await joining
    assert isinstance(raised.value.__cause__, rtc.ConnectError)
    assert room.calls == ["connect"]


async def test_without_a_cancel_it_is_the_sdks_connect() -> None:
    room = FakeRoom(error=rtc.ConnectError("refused"))
    room.answer.set()
    with pytest.raises(rtc.ConnectError, match="refused"):
        await livekit_join.connect(cast(rtc.Room, room), "ws://x", "t", name="test-join")
    ok = FakeRoom()
    ok.answer.set()
    await livekit_join.connect(cast(rtc.Room, ok), "ws://x", "t", name="test-join")
    assert ok.connected and ok.calls == ["connect"]
