"""One session's lifetime in the session manager: its tasks, its end, and its stop.

Per session the manager opens the session's media and runs, in one task group: the media
source, keep-alives, the renewal's wait, and a watch for the session's end.  Whichever ends
the session, it is stopped (and its media) before :func:`live_through` returns.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from bridge.cleanup import finish_despite_cancel
from bridge.errors import RemoteError
from bridge.providers.base import AvatarSession
from bridge.session.policy import after_fatal_end
from bridge.session.renewal import Lane, Renewed
from bridge.session.state import CONNECTING, ENDED, FAILED, STOPPING
from bridge.source.base import RoomClosed, SourceFailed

if TYPE_CHECKING:
    from bridge.session.manager import SessionManager

log = logging.getLogger("bridge.session.manager")  # the manager's story, one logger


class SessionEnded(Exception):
    """The provider ended the session (stopped, expired, gone)."""


async def live_through(
    m: SessionManager, session: AvatarSession, lane: Lane | None = None
) -> float:
    """Run one session until it ends (then return how long it was live: ended or failed)
    or we are cancelled (then ``stopping``); either way it is stopped before this ends.

    ``lane``: a session the renewal opened ahead, its media running: renewed, it is on the
    camera already (the state stays as it is); when its predecessor ended before the switch,
    it takes over here as a connecting session.  Otherwise the session's media opens here.
    When this session is renewed (or ends before its renewed successor's switch), the
    successor is left in the renewal's ``next`` for the loop to run next."""
    now = m._clock()
    switched = lane is not None and lane.active
    if lane is None:
        lane = m._new_lane(session, now)
    lane.active = True
    m._lane, m.session = lane, session
    m._session_started = lane.opened_at
    m._liveness.reset(now)
    m._went_live_at = now if switched else None
    m._ended.clear()
    m._end_code = None
    if not switched:
        m._enter(CONNECTING, f"session {session.session_id}")
        if lane.present:  # a successor whose avatar came before it took over
            m.on_presence(True)
    reason = "shutdown"
    try:
        if lane.task is None:
            media = m._open_media(session.media, lane.handlers)
            lane.start(media.source, media.room)
        m.source, m._room = lane.source, lane.room
        reason = await _serve(m, session, lane)
    except asyncio.CancelledError:
        m._enter(STOPPING, "shutdown")  # status says so while the session is stopped
        raise
    finally:
        lived = await _after(m, session, lane, reason, shutdown=reason == "shutdown")
    return lived


async def _after(
    m: SessionManager, session: AvatarSession, lane: Lane, reason: str, *, shutdown: bool
) -> float:
    """A session is over (``reason``): say so, and stop it and its media (and, at shutdown,
    a successor that never took over: otherwise the loop runs that one next); how long it
    was live."""
    successor = m._renewal.next
    renewed = successor is not None and successor.active
    if not renewed:
        m.source = m._room = None
        m._lane = None
        m._speech.forget()
    live_since = m._went_live_at
    lived = 0.0 if live_since is None else m._clock() - live_since
    m.last_reason = reason
    m._bus.emit(
        "session.ended",
        session_id=session.session_id,
        reason=reason,
        live_s=round(lived, 1),
    )
    if m._on_session_end is not None and not renewed:
        m._on_session_end(f"the session {session.session_id} ended")
    if successor is not None and not renewed and shutdown:  # it never took over: it goes too
        m._renewal.next = None
        await finish_despite_cancel(
            m._end_lane(successor), name=f"stop-{successor.session.session_id}"
        )
    await finish_despite_cancel(m._end_lane(lane), name=f"stop-{session.session_id}")
    return lived


async def _serve(m: SessionManager, session: AvatarSession, lane: Lane) -> str:
    """The session's tasks, until one of them ends it; leaves the state ended or failed
    (or live, renewed) and returns why."""
    failed, renewed, why = False, False, "the session's tasks ended"
    try:
        async with asyncio.TaskGroup() as group:
            # The renewal's wait first: a keep-alive's sleep is then the latest one taken.
            group.create_task(m._renewal.when_due(lane), name="renewal")
            group.create_task(_follow(lane), name="media-source-follow")
            if session.keep_alive_every:
                group.create_task(
                    m._liveness.keep_alive(session, session.keep_alive_every),
                    name="keep-alive",
                )
            group.create_task(_watch_end(m), name="session-end-watch")
    except* Renewed as group:
        renewed, why = True, str(group.exceptions[0])
    except* SessionEnded:
        why = m._end_reason
        if (fatal := after_fatal_end(m._end_code)) is not None:  # no credits: no retry
            failed = True
            # The fix with the failed state: status never shows one without the other.
            m.last_error, m.fix = why, fatal.fix
    except* SourceFailed as group:
        why = _media_failed(m, group.exceptions[0])
    except* RemoteError as group:
        failed, why = True, str(group.exceptions[0])
        m.last_error = why
    # (Python 3.11's task group puts a child's error before a cancellation that came at
    # the same moment: such a shutdown opens one more session, and the supervisor's
    # forced stop ends it.  Its cancelling() count cannot tell: the group leaves it raised.)
    if not renewed:  # renewed: the state goes on with the next session
        m._enter(FAILED if failed else ENDED, why)
    return why


def _media_failed(m: SessionManager, cause: BaseException) -> str:
    m.last_error = str(cause)
    if isinstance(cause, RoomClosed):  # the provider's doing, not a fault of the bridge
        log.warning("%s: the session is over, opening a new one", cause)
    else:
        log.error("the avatar's media failed, opening a new session: %s", cause, exc_info=cause)
    return m.last_error


async def _watch_end(m: SessionManager) -> None:
    await m._ended.wait()
    raise SessionEnded(m._end_reason)


async def _follow(lane: Lane) -> None:
    """Await the lane's source (its failure is the session's end); cancelled, cancel it."""
    assert lane.task is not None
    await lane.task
