"""The one way tests wait for an outcome they cannot be told about: poll it, with a deadline.

Prefer an event where the code under test offers one; poll only what a test can observe from
outside (a process's status page, a sound server answering, a state field).  Both forms share
the contract: ``read`` is called every ``every`` seconds until ``until(value)`` holds (by
default: until the value is truthy), and that value is returned; an exception from ``read``
ends the wait at once (so a check can fail fast, e.g. when the process it watches has died);
after ``within`` seconds the wait fails with an ``AssertionError`` naming ``what`` and the
last value read.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

EVERY_S = 0.01


@overload
async def eventually(
    read: Callable[[], Awaitable[T]],
    *,
    until: Callable[[T], object] = bool,
    within: float = 5.0,
    what: str = "",
    every: float = EVERY_S,
) -> T: ...


@overload
async def eventually(
    read: Callable[[], T],
    *,
    until: Callable[[T], object] = bool,
    within: float = 5.0,
    what: str = "",
    every: float = EVERY_S,
) -> T: ...


async def eventually(
    read: Callable[[], Any],
    *,
    until: Callable[[Any], object] = bool,
    within: float = 5.0,
    what: str = "",
    every: float = EVERY_S,
) -> Any:
    """Wait (on the event loop) until ``until(read())`` holds; ``read`` may be a plain
    function or a coroutine function.  Returns the value that passed."""
    last: Any = None
    try:
        async with asyncio.timeout(within):
            while True:
                last = read()
                if inspect.isawaitable(last):
                    last = await last
                if until(last):
                    return last
                await asyncio.sleep(every)
    except TimeoutError:
        raise _not_within(within, what or read, last) from None


def eventually_blocking(
    read: Callable[[], T],
    *,
    until: Callable[[T], object] = bool,
    within: float = 5.0,
    what: str = "",
    every: float = EVERY_S,
) -> T:
    """:func:`eventually` for code that runs outside an event loop (a sync fixture, a
    benchmark's set-up): the same contract, blocking the calling thread."""
    deadline = time.monotonic() + within
    while True:
        last = read()
        if until(last):
            return last
        if time.monotonic() >= deadline:
            raise _not_within(within, what or read, last)
        time.sleep(every)


def _not_within(within: float, what: object, last: object) -> AssertionError:
    seen = "" if isinstance(last, bool) else f"; last seen: {last!r}"
    return AssertionError(f"not within {within:g} s: {what}{seen}")
