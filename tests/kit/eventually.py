"""Small helpers shared by tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(condition: Callable[[], bool], *, within: float = 5.0, what: str = "") -> None:
    """Wait until ``condition()`` holds (checked every 10 ms), or fail after ``within`` s."""
    try:
        async with asyncio.timeout(within):
            while not condition():  # noqa: ASYNC110 - polling an outcome a test can observe
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"not within {within:g} s: {what or condition}") from None
