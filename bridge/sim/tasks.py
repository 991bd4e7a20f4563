"""Ending the simulators' own tasks without losing what went wrong in them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel ``tasks`` (``None`` and the calling task are skipped) and wait until they end.

    A cancellation of the *caller* while it waits propagates: it is not the tasks' own, so it
    must not be swallowed.  A task that had failed re-raises its exception here (several: an
    exception group), so a bug in a simulator's coroutine surfaces at its owner instead of
    vanishing into a cancelled task.
    """
    current = asyncio.current_task()
    owned = [t for t in tasks if t is not None and t is not current]
    for task in owned:
        task.cancel()
    if owned:
        await asyncio.wait(owned)
    reraise([e for t in owned if not t.cancelled() and (e := t.exception()) is not None])


async def for_each(items: Iterable[T], act: Callable[[T], Awaitable[None]]) -> None:
    """``await act(item)`` for every item, even after one fails; then raise what failed.

    For closing many things: one that fails must not leave the others open.
    """
    errors: list[BaseException] = []
    for item in items:
        try:
            await act(item)
        except Exception as exc:  # raised below, once every item had its turn
            errors.append(exc)
    reraise(errors)


def reraise(errors: list[BaseException]) -> None:
    """Raise the one error, or all of them as a group; nothing when the list is empty."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise BaseExceptionGroup("simulator tasks failed", errors)
