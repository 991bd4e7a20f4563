"""Clean-up that a cancel must not cut in half: stopping a remote session, leaving a LiveKit
room, writing the speech queue's file.

Unlike an ``asyncio.shield`` in a ``finally``, which a second cancel leaves running with
nobody awaiting it, the clean-up keeps its owner: every cancel of the caller is held until the
clean-up is done, then the cancellation goes on (raised, never swallowed).  So a clean-up must
bound its own time (a timeout); a forced stop (supervisor.py) is the way out of one that hangs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def outlast(job: Coroutine[Any, Any, T], *, name: str) -> tuple[asyncio.Task[T], bool]:
    """Run ``job`` in its own task until it ends, holding every cancel of the caller; the
    ended task, and whether the caller was cancelled meanwhile (the caller must then raise
    ``CancelledError``: see :func:`finish_despite_cancel`)."""
    task = asyncio.get_running_loop().create_task(job, name=name)
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait([task])  # unlike awaiting the task, never cancels it
        except asyncio.CancelledError:
            cancelled = True
    return task, cancelled


async def finish_despite_cancel(cleanup: Coroutine[Any, Any, T], *, name: str) -> T:
    """Run ``cleanup`` to its end even if the caller is cancelled meanwhile; its result, or
    (cancelled meanwhile) ``CancelledError`` chained to the clean-up's own error, if any."""
    task, cancelled = await outlast(cleanup, name=name)
    if cancelled:
        failed = None if task.cancelled() else task.exception()
        raise asyncio.CancelledError from failed
    return task.result()
