"""Stopping remote sessions: each with a bound on the wait, and a reason a person can read.

A session always gets ``stop()`` (on shutdown, on renewal and on failure); one that does not
answer within the timeout is logged and left to the provider's own expiry.  The sessions a
crashed earlier run left on record (:mod:`bridge.session.orphans`) are stopped the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bridge.errors import RemoteError, SessionGone
from bridge.providers.base import AvatarSession, Provider, SessionRecorder
from bridge.session.orphans import OpenedSessions
from bridge.session.renewal import Lane

log = logging.getLogger("bridge.session.manager")  # the manager's story, one logger


async def stop_session(session: AvatarSession, recorder: SessionRecorder, within_s: float) -> None:
    """Stop ``session`` and take it off the record, within ``within_s`` seconds."""
    try:
        async with asyncio.timeout(within_s):
            await session.stop()
            await recorder.stopped(session.session_id)
        log.info("stopped session %s", session.session_id)
    except (RemoteError, TimeoutError) as exc:
        log.warning("could not stop session %s: %s", session.session_id, why(exc, within_s))


async def end_media(lane: Lane) -> None:
    """Stop a lane's media (its session is the caller's to stop)."""
    task = lane.task
    if task is not None and not task.done():
        task.cancel()
    if task is not None:
        await asyncio.wait([task])
        # (the active lane's failure was the session's end, and said so by the manager)
        if not lane.active and not task.cancelled() and task.exception() is not None:
            log.warning(
                "the media of session %s failed: %s",
                lane.session.session_id,
                task.exception(),
            )


async def stop_orphans(
    provider: Provider,
    opened: OpenedSessions,
    account: str,
    recorder: SessionRecorder,
    within_s: float,
    stopped: Callable[[], None],
) -> None:
    """Stop the sessions an earlier run created and never stopped (it crashed); ``stopped``
    is told of each one stopped."""
    for session_id in await asyncio.to_thread(opened.orphans, account):
        try:
            async with asyncio.timeout(within_s):
                await provider.stop_session(session_id)
        except SessionGone:
            pass  # it ended by itself
        except (RemoteError, TimeoutError) as exc:
            log.warning(
                "could not stop session %s, left running by an earlier run: %s "
                "(tried again at the next start)",
                session_id,
                why(exc, within_s),
            )
            continue
        else:
            stopped()
            log.info("stopped session %s, left running by an earlier run", session_id)
        await recorder.stopped(session_id)


def why(exc: BaseException, within_s: float) -> str:
    """A reason a person can read (a bare timeout's ``str()`` is empty)."""
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"no answer within {within_s:g} s"
    return str(exc)
