"""The session manager: keeps one avatar session alive and its media flowing.

An explicit state machine; every transition goes through :meth:`SessionManager._enter`, which
checks it against :data:`ALLOWED` (a transition outside the table is a bug, and raises), and
emits ``session.state`` once per change::

    starting ──► connecting ──► live ◄──► reconnecting
       ▲  │                       │            │
       │  └──► failed (backoff) ──┘            │      (or failed for good: see below)
       └──── ended (the provider closed the session, or its media failed: renew) ◄─┘
    any ──► stopping (the session is being stopped) ──► stopped        (shutdown)

After a failure (:mod:`bridge.session.policy` decides): a transient one (5xx, timeouts,
connection refused, the room lost, the session closed by the server) is tried again after a
growing, jittered, capped delay; the account's session limit after a longer one; a fatal one
(the key refused, the avatar unknown, no credits) is not tried again: the state stays
``failed`` with the reason and the fix in status until :meth:`SessionManager.try_again` (a
config reload) or a restart.  A session that ends after it has been live for a while
(:data:`STABLE_S`; e.g. at its duration limit) is replaced at once; one that ends sooner
counts as a failure in a row, so sessions dying young never open in a tight loop.  Status
(:meth:`SessionManager.snapshot`) and the event bus tell the story: ``session.ended`` with the
reason, ``session.retry`` with the reason and the delay, ``session.failed`` with the fix.

Keep-alives go out every ``keep_alive_every`` seconds of *silence*: a speak or an interrupt
sent is activity for the provider's idle timer (HeyGen's ``activity_idle_timeout``,
LiveAvatar's idle timeout), so a keep-alive is skipped while activity keeps the session alive.

Renewal, make-before-break (:mod:`bridge.session.renewal`): :data:`RENEW_MARGIN_S` before the
session's duration limit the next session opens beside it, its media too, while the camera and
mic stay on the old one; at the new one's first video frame, and once the utterance in progress
has ended (at most :data:`UTTERANCE_WAIT_S`; ``speak`` holds new items meanwhile, for the new
session), the sinks switch to it between two frames, the old session is stopped and the new
one goes on as the current session, the state live throughout (``session.renewing``,
``session.renewed``).  A provider that refuses the second session (its concurrency limit) gets
break-before-make: the old session runs to its end and the next opens after it, the slate in
between; status (``renewal``) and a ``session.renewal`` event say so.

Per session it opens the session's media (:func:`bridge.source.open.open_media`: the source,
and for a LiveKit room the room link that both the source and the session's commands use) and
runs, in one task group: the media source, keep-alives, and a watch for the session's end.  A
source that fails ends the session (logged at ERROR) and a new one opens.  A session always
gets ``stop()``: on shutdown, on renewal and on failure.  Each remote session is also on
record (:mod:`bridge.session.orphans`) from its creation to its stop, and the sessions a
crashed earlier run left on record are stopped before the first one opens.

The wiring runs one way: the manager hands the source one :class:`MediaHandlers` bundle (the
app's video and audio sinks, and its own ``on_data`` and ``on_presence``), hands the session
its room link with each command, and passes decoded events on to ``on_event`` (the speech
queue) and the event bus.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bridge.cleanup import finish_despite_cancel
from bridge.errors import NotLive, RemoteError, SessionGone
from bridge.eventbus import EventBus
from bridge.providers.base import (
    NO_RECORD,
    AvatarSession,
    Provider,
    SessionRecorder,
    SpeakMode,
)
from bridge.providers.events import AvatarEvent
from bridge.session.orphans import OpenedSessions
from bridge.session.policy import Decision, Kind, after_early_end, decide
from bridge.session.renewal import MAKE_BEFORE_BREAK, ONE_AT_A_TIME, Lane
from bridge.source.base import (
    AudioHandler,
    DataChannel,
    MediaHandlers,
    Source,
    SourceFailed,
    VideoHandler,
)
from bridge.source.open import MediaOpener, open_media

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 8.0
# A session live at least this long was healthy: when it ends, the next opens at once and the
# failures in a row start again from zero.
STABLE_S = 30.0
# Renew this long before the session's duration limit: time for the next session to open and
# send its first frame, and for an utterance in progress to finish on the old one.
RENEW_MARGIN_S = 30.0
# At most this long an utterance in progress holds the switch to the renewed session.
UTTERANCE_WAIT_S = 20.0
# A retry of the next session's open is not started with less than this left to the limit.
RENEW_LAST_TRY_S = 5.0

Clock = Callable[[], float]
Sleep = Callable[[float], Coroutine[Any, Any, None]]


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


class SessionState(StrEnum):
    STARTING = "starting"
    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    FAILED = "failed"
    STOPPING = "stopping"
    STOPPED = "stopped"


STARTING, CONNECTING, LIVE, RECONNECTING = (
    SessionState.STARTING,
    SessionState.CONNECTING,
    SessionState.LIVE,
    SessionState.RECONNECTING,
)
ENDED, FAILED, STOPPING, STOPPED = (
    SessionState.ENDED,
    SessionState.FAILED,
    SessionState.STOPPING,
    SessionState.STOPPED,
)
ALLOWED: dict[SessionState, set[SessionState]] = {
    STARTING: {CONNECTING, FAILED, STOPPING},
    CONNECTING: {LIVE, ENDED, FAILED, STOPPING},
    LIVE: {RECONNECTING, ENDED, FAILED, STOPPING},
    RECONNECTING: {LIVE, ENDED, FAILED, STOPPING},
    ENDED: {STARTING, STOPPING},
    FAILED: {STARTING, STOPPING},
    STOPPING: {STOPPED},
    STOPPED: set(),
}

EventListener = Callable[[AvatarEvent], None]


class IllegalTransition(RuntimeError):
    """A bug: the manager tried a state change its table (:data:`ALLOWED`) forbids."""


class SessionEnded(Exception):
    """The provider ended the session (stopped, expired, gone)."""


class Renewed(Exception):
    """The next session took over the camera and mic: the old one's tasks end."""


class SessionManager:
    def __init__(
        self,
        *,
        provider: Provider,
        bus: EventBus,
        video: VideoHandler,
        audio: AudioHandler,
        on_event: EventListener | None = None,
        on_session_end: Callable[[str], None] | None = None,
        opened: OpenedSessions | None = None,
        open_session_media: MediaOpener = open_media,
        renew_margin_s: float = RENEW_MARGIN_S,
        clock: Clock = time.monotonic,
        sleep: Sleep = _sleep,
    ) -> None:
        """``video`` and ``audio`` receive the avatar's media (the sinks); ``on_event`` its
        decoded events; ``on_session_end`` the reason whenever a session ends.  ``clock`` and
        ``sleep`` are the time every wait and deadline of the manager goes by (tests move it)."""
        self.provider = provider
        self._bus = bus
        # What every session's source hands its media to (taken at each session's start).
        self.handlers = MediaHandlers(
            video=video, audio=audio, data=self.on_data, presence=self.on_presence
        )
        self._open_media = open_session_media
        self._on_event = on_event
        self._on_session_end = on_session_end
        self.state = SessionState.STARTING
        self.session: AvatarSession | None = None
        self.source: Source | None = None
        self._room: DataChannel | None = None
        self.last_error: str | None = None
        self.sessions_opened = 0
        self.orphans_stopped = 0
        self._opened = opened
        self._recorder: SessionRecorder = NO_RECORD
        self.live = asyncio.Event()
        self._ended = asyncio.Event()
        self._end_reason = ""
        self._probe_soon = asyncio.Event()
        self._session_started: float | None = None
        self._renew_margin = renew_margin_s
        self._clock = clock
        self._sleep = sleep
        # The story status tells (snapshot()).
        self.reconnects = 0  # tries after the first: a session ended or an open failed
        self.last_reason: str | None = None  # why the last session ended
        self.fix: str | None = None  # what the user can do about the failure that stopped us
        self._next_try_at: float | None = None
        self._went_live_at: float | None = None
        self._last_activity = 0.0  # a command sent to the session (speak, interrupt)
        self._last_probe = 0.0  # a keep-alive sent
        self._try_now = asyncio.Event()
        # Renewal (make-before-break): the mode status shows, the next session while it is
        # being readied, and what holds the switch (speech sent to the old session).
        self.renewal = MAKE_BEFORE_BREAK
        self._lane: Lane | None = None  # the active session's lane
        self._next: Lane | None = None
        self._switched: asyncio.Event | None = None  # set: a switch is pending, speak() waits
        self._sending = 0  # speak() calls awaiting the provider's reply
        self._in_flight: set[str] = set()  # task ids sent and not yet ended
        self._ended_tasks: deque[str] = deque(maxlen=64)  # ends seen (they overtake replies)
        self._speech_idle = asyncio.Event()
        self._speech_idle.set()

    # --- state ---------------------------------------------------------------------------

    def _enter(self, new: SessionState, why: str = "") -> None:
        if new == self.state:
            return
        if new not in ALLOWED[self.state]:
            raise IllegalTransition(f"session state {self.state} -> {new} ({why})")
        old, self.state = self.state, new
        if new == LIVE:
            self.live.set()
        else:
            self.live.clear()
        session_id = self.session.session_id if self.session else None
        self._bus.emit(
            "session.state", state=str(new), previous=str(old), session_id=session_id, why=why
        )

    def snapshot(self) -> dict[str, Any]:
        """Status: the session, when it ends and would be renewed, and the story of failures.

        ``seconds_left``: until the provider ends the session by its duration limit;
        ``renewal_in_s`` / ``next_renewal_at`` (UTC, ISO 8601): when the manager renews it
        (``renew_margin_s`` before that limit); ``renewal``: how (``make-before-break``, or
        ``break-before-make (why)`` after the provider refused a second session);
        ``reconnects``: tries after the first; ``last_reason``: why the last session ended;
        ``next_try_in_s``: while waiting to try again; ``last_error`` and ``fix``: the failure
        and what to do about it."""
        renewal = self._renewal_in()
        next_try = self._next_try_at
        return {
            "provider": self.provider.name,
            "state": str(self.state),
            "session_id": self.session.session_id if self.session else None,
            "seconds_left": self._seconds_left(),
            "renewal_in_s": None if renewal is None else round(renewal),
            "next_renewal_at": None if renewal is None else _utc(time.time() + renewal),
            "renew_margin_s": self._renew_margin,
            "renewal": self.renewal,
            "sessions_opened": self.sessions_opened,
            "reconnects": self.reconnects,
            "last_reason": self.last_reason,
            "next_try_in_s": (
                None if next_try is None else round(max(0.0, next_try - self._clock()), 1)
            ),
            "orphans_stopped": self.orphans_stopped,
            "last_error": self.last_error,
            "fix": self.fix,
        }

    def _until_limit(self) -> float | None:
        session, started = self.session, self._session_started
        if session is None or started is None or session.duration_limit is None:
            return None
        return started + session.duration_limit - self._clock()

    def _seconds_left(self) -> int | None:
        """Until the provider ends the current session by its duration limit (None: no limit
        or no session)."""
        left = self._until_limit()
        return None if left is None else max(0, round(left))

    def _renewal_in(self) -> float | None:
        left = self._until_limit()
        return None if left is None else max(0.0, left - self._renew_margin)

    # --- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep a session alive until cancelled; then stop it (graceful shutdown)."""
        try:
            account = self.provider.account
            if self._opened is not None and account is not None:
                self._recorder = self._opened.recorder(account)
                await self._stop_orphans(self._opened, account)
            failures = 0  # in a row: failed opens, and sessions that ended young
            first = True
            handoff: Lane | None = None  # a renewed session, live already
            while True:
                if handoff is not None:
                    session, lane, handoff = handoff.session, handoff, None
                else:
                    if not first:
                        self.reconnects += 1
                    first = False
                    self._try_now.clear()
                    self._enter(STARTING)
                    try:
                        session = await self.provider.open_session(self._recorder)
                    except RemoteError as exc:
                        failures += 1
                        self.last_error = str(exc)
                        own = self.session is not None
                        decision = decide(exc, failures, holds_own_session=own)
                        self._enter(FAILED, decision.reason)
                        if decision.retry:
                            self.fix = decision.fix
                            await self._wait_to_retry(decision, failures)
                        else:
                            await self._give_up(decision)
                            failures = 0
                        continue
                    self.sessions_opened += 1
                    self.fix = None
                    lane = None
                lived = await self._live_through(session, lane)
                if self._next is not None:  # renewed: its successor has the camera already
                    handoff, self._next = self._next, None
                    failures = 0
                    continue
                if lived >= STABLE_S:
                    failures = 0  # a healthy session ended (its limit, say): the next at once
                    continue
                failures += 1
                if failures > 1:  # one quick end is replaced at once, a second waits
                    reason = self.last_reason or "the session ended"
                    await self._wait_to_retry(after_early_end(reason, failures - 1), failures)
        finally:
            self._next_try_at = None
            self._enter(STOPPING, "shutdown")
            if self._next is not None:  # shut down between a switch and the handoff
                lane, self._next = self._next, None
                await finish_despite_cancel(self._end_lane(lane), name="stop-renewed")
            self._enter(STOPPED)

    async def _wait_to_retry(self, decision: Decision, failures: int) -> None:
        """Wait ``decision.delay`` (or until :meth:`try_again`), saying so in status and on
        the bus."""
        delay = decision.delay or 0.0
        self._bus.emit(
            "session.retry",
            reason=decision.reason,
            kind=str(decision.kind),
            delay_s=round(delay, 1),
            attempt=failures,
            fix=decision.fix,
        )
        if decision.kind is Kind.LIMIT:
            log.warning("%s; trying again in %.0f s. %s", decision.reason, delay, decision.fix)
        self._next_try_at = self._clock() + delay
        try:
            await self._sleep_unless(delay, self._try_now)
        finally:
            self._next_try_at = None

    async def _give_up(self, decision: Decision) -> None:
        """A failure trying again will not mend: say why and what to do, then wait for
        :meth:`try_again` (a config reload) or the shutdown."""
        self.fix = decision.fix
        self._bus.emit("session.failed", reason=decision.reason, fix=decision.fix)
        log.error("%s; not trying again. Fix: %s", decision.reason, decision.fix)
        await self._try_now.wait()

    def try_again(self) -> None:
        """Try to open a session now: after a fatal failure (the config was reloaded, say) or
        instead of waiting out a retry's delay."""
        self._try_now.set()

    async def _sleep_unless(self, seconds: float, wake: asyncio.Event) -> bool:
        """Sleep ``seconds`` on the manager's clock unless ``wake`` is set first (True then)."""
        if wake.is_set():
            return True
        if seconds <= 0:
            return False
        waiters = [
            asyncio.create_task(self._sleep(seconds), name="session-wait"),
            asyncio.create_task(wake.wait(), name="session-wake"),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        return wake.is_set()

    async def _live_through(self, session: AvatarSession, lane: Lane | None = None) -> float:
        """Run one session until it ends (then return how long it was live: ended or failed)
        or we are cancelled (then ``stopping``); either way it is stopped before this ends.

        ``lane``: a renewed session, its media running and on the camera already (the state
        stays as it is); otherwise its media opens here.  When this session is renewed, its
        successor is left in ``self._next`` for the loop to run next."""
        now = self._clock()
        adopted = lane is not None
        if lane is None:
            lane = self._new_lane(session, now)
            lane.active = True
        self._lane, self.session = lane, session
        self._session_started = lane.opened_at
        self._last_activity = self._last_probe = now
        self._went_live_at = now if adopted else None
        self._ended.clear()
        self._probe_soon.clear()
        if not adopted:
            self._enter(CONNECTING, f"session {session.session_id}")
        reason = "shutdown"
        try:
            if lane.task is None:
                media = self._open_media(session.media, lane.handlers)
                lane.start(media.source, media.room)
            self.source, self._room = lane.source, lane.room
            reason = await self._serve(session, lane)
        except asyncio.CancelledError:
            self._enter(STOPPING, "shutdown")  # status says so while the session is stopped
            raise
        finally:
            successor = self._next
            renewed = successor is not None and successor.active
            if not renewed:
                self.source = self._room = None
                self._lane = None
                self._forget_speech()
            live_since = self._went_live_at
            lived = 0.0 if live_since is None else self._clock() - live_since
            self.last_reason = reason
            self._bus.emit(
                "session.ended",
                session_id=session.session_id,
                reason=reason,
                live_s=round(lived, 1),
            )
            if self._on_session_end is not None and not renewed:
                self._on_session_end(f"the session {session.session_id} ended")
            if successor is not None and not renewed:  # it never took over: it goes too
                self._next = None
                await finish_despite_cancel(
                    self._end_lane(successor), name=f"stop-{successor.session.session_id}"
                )
            await finish_despite_cancel(self._end_lane(lane), name=f"stop-{session.session_id}")
        return lived

    async def _serve(self, session: AvatarSession, lane: Lane) -> str:
        """The session's tasks, until one of them ends it; leaves the state ended or failed
        (or live, renewed) and returns why."""
        failed, renewed, why = False, False, "the session's tasks ended"
        try:
            async with asyncio.TaskGroup() as group:
                # The renewal's wait first: a keep-alive's sleep is then the latest one taken.
                group.create_task(self._renew_when_due(lane), name="renewal")
                group.create_task(_follow(lane), name="media-source-follow")
                if session.keep_alive_every:
                    group.create_task(
                        self._keep_alive(session, session.keep_alive_every), name="keep-alive"
                    )
                group.create_task(self._watch_end(), name="session-end-watch")
        except* Renewed as group:
            renewed, why = True, str(group.exceptions[0])
        except* SessionEnded:
            why = self._end_reason
        except* SourceFailed as group:
            why = self._media_failed(group.exceptions[0])
        except* RemoteError as group:
            failed, why = True, str(group.exceptions[0])
            self.last_error = why
        # (Python 3.11's task group puts a child's error before a cancellation that came at
        # the same moment: such a shutdown opens one more session, and the supervisor's
        # forced stop ends it.  Its cancelling() count cannot tell: the group leaves it raised.)
        if not renewed:  # renewed: the state goes on with the next session
            self._enter(FAILED if failed else ENDED, why)
        return why

    # --- renewal (make-before-break) ----------------------------------------------------------

    def _new_lane(self, session: AvatarSession, opened_at: float) -> Lane:
        return Lane(
            session,
            self.handlers,
            on_data=self._lane_data,
            on_presence=self._lane_presence,
            opened_at=opened_at,
        )

    async def _renew_when_due(self, old: Lane) -> None:
        """At the renewal time, open the next session and its media; once its first frame
        has arrived and the utterance in progress has ended, switch the camera and mic to it
        (raises :class:`Renewed`).  Returns (the old session runs to its end: break before
        make) when the next session cannot be opened or never sends a picture."""
        limit = old.session.duration_limit
        if limit is None or limit <= 2 * self._renew_margin:
            return  # no limit, or too short to renew ahead of it
        await self._sleep(old.opened_at + limit - self._renew_margin - self._clock())
        old_id = old.session.session_id
        self._bus.emit("session.renewing", session_id=old_id)
        log.info("renewing session %s before its duration limit", old_id)
        session = await self._open_next()
        if session is None:
            return
        lane = self._next = self._new_lane(session, self._clock())
        self.sessions_opened += 1
        media = self._open_media(session.media, lane.handlers)
        lane.start(media.source, media.room)
        if not await self._first_frame(lane):
            self._next = None  # stopped here, even if the shutdown comes meanwhile
            await finish_despite_cancel(self._end_lane(lane), name=f"stop-{session.session_id}")
            self._fall_back(f"the next session {session.session_id} sent no picture")
            return
        switched = self._switched = asyncio.Event()  # speak() holds new items from here
        try:
            if not await self._sleep_unless(UTTERANCE_WAIT_S, self._speech_idle):
                log.warning(
                    "an utterance on session %s still runs after %.0f s: switching anyway",
                    old_id,
                    UTTERANCE_WAIT_S,
                )
            # The switch, at a frame boundary: nothing else runs between these lines.
            old.active, lane.active = False, True
            self._lane, self.session = lane, session
            self.source, self._room = lane.source, lane.room
            self._forget_speech()
            if self.state != LIVE:
                self._enter(LIVE, f"renewed to session {session.session_id}")
        finally:
            self._switched = None
            switched.set()
        if self.renewal != MAKE_BEFORE_BREAK:
            self._set_renewal(MAKE_BEFORE_BREAK, "the provider allowed a second session")
        self._bus.emit(
            "session.renewed", previous=old_id, session_id=session.session_id, gap_free=True
        )
        log.info("renewed session %s to %s", old_id, session.session_id)
        raise Renewed(f"renewed to session {session.session_id} before its duration limit")

    async def _open_next(self) -> AvatarSession | None:
        """The next session, or None (and the fallback said) when the provider will not give
        one in time."""
        attempt = 0
        while True:
            try:
                return await self.provider.open_session(self._recorder)
            except RemoteError as exc:
                attempt += 1
                decision = decide(exc, attempt, holds_own_session=True)
                if decision.kind is Kind.LIMIT:
                    self._fall_back(ONE_AT_A_TIME, decision.reason)
                    return None
                left = self._until_limit()
                delay = decision.delay
                if delay is None or left is None or delay > left - RENEW_LAST_TRY_S:
                    self._fall_back(
                        f"break-before-make (the next session did not open: {decision.reason})",
                        decision.reason,
                    )
                    return None
                log.warning("the next session did not open (%s): again in %.0f s", exc, delay)
                await self._sleep(delay)

    def _fall_back(self, mode: str, reason: str | None = None) -> None:
        """The old session runs to its end and the next opens after it (the slate between)."""
        if not mode.startswith("break-before-make"):
            mode = f"break-before-make ({mode})"
        log.warning("renewal: %s", mode)
        self._set_renewal(mode, reason or mode)

    def _set_renewal(self, mode: str, reason: str) -> None:
        self.renewal = mode
        self._bus.emit("session.renewal", mode=mode, reason=reason)

    async def _first_frame(self, lane: Lane) -> bool:
        """Until the lane's first video frame (True), or its source ended or the old
        session's limit passed (False)."""
        assert lane.task is not None
        left = self._until_limit()
        waiters: list[asyncio.Future[Any]] = [
            asyncio.create_task(lane.first_frame.wait(), name="renewal-first-frame"),
            asyncio.create_task(self._sleep(max(0.0, left or 0.0)), name="renewal-deadline"),
        ]
        try:
            await asyncio.wait([*waiters, lane.task], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        return lane.first_frame.is_set() and not lane.task.done()

    async def _end_lane(self, lane: Lane) -> None:
        """Stop a lane's media, then its session."""
        task = lane.task
        if task is not None and not task.done():
            task.cancel()
        if task is not None:
            await asyncio.wait([task])
            # (the active lane's failure was the session's end, and said so by _serve)
            if not lane.active and not task.cancelled() and task.exception() is not None:
                log.warning(
                    "the media of session %s failed: %s",
                    lane.session.session_id,
                    task.exception(),
                )
        await self._stop(lane.session)

    def _forget_speech(self) -> None:
        """The speech sent to a session that is no longer the active one holds nothing."""
        self._in_flight.clear()
        self._speech_changed()

    def _speech_changed(self) -> None:
        if self._sending or self._in_flight:
            self._speech_idle.clear()
        else:
            self._speech_idle.set()

    def _media_failed(self, cause: BaseException) -> str:
        self.last_error = str(cause)
        log.error("the avatar's media failed, opening a new session: %s", cause, exc_info=cause)
        return self.last_error

    async def _stop(self, session: AvatarSession) -> None:
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await session.stop()
                await self._recorder.stopped(session.session_id)
            log.info("stopped session %s", session.session_id)
        except (RemoteError, TimeoutError) as exc:
            log.warning("could not stop session %s: %s", session.session_id, _why(exc))
        if self.session is session:
            self.session = None

    async def _stop_orphans(self, opened: OpenedSessions, account: str) -> None:
        """Stop the sessions an earlier run created and never stopped (it crashed)."""
        for session_id in await asyncio.to_thread(opened.orphans, account):
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await self.provider.stop_session(session_id)
            except SessionGone:
                pass  # it ended by itself
            except (RemoteError, TimeoutError) as exc:
                log.warning(
                    "could not stop session %s, left running by an earlier run: %s "
                    "(tried again at the next start)",
                    session_id,
                    _why(exc),
                )
                continue
            else:
                self.orphans_stopped += 1
                log.info("stopped session %s, left running by an earlier run", session_id)
            await self._recorder.stopped(session_id)

    async def _keep_alive(self, session: AvatarSession, every: float) -> None:
        """A keep-alive after ``every`` seconds without activity or keep-alive (a command sent
        resets the provider's idle timer, so none is needed then), and one at once when the
        avatar leaves the room: did it leave because the session ended?"""
        while True:
            due = max(self._last_activity, self._last_probe) + every
            wait = due - self._clock()
            if wait > 0 and not await self._sleep_unless(wait, self._probe_soon):
                continue  # the interval passed: was there activity meanwhile?
            self._probe_soon.clear()
            await self._probe(session)

    async def _probe(self, session: AvatarSession) -> None:
        """Keep-alive doubling as a liveness check: a gone session ends the loop."""
        self._last_probe = self._clock()  # tried: a failed one is not retried in a loop
        try:
            await session.keep_alive()
        except SessionGone as exc:
            self.end(f"the provider closed the session ({exc.remote_message or exc})")
        except RemoteError as exc:
            log.warning("keep-alive failed: %s", exc)

    async def _watch_end(self) -> None:
        await self._ended.wait()
        raise SessionEnded(self._end_reason)

    def end(self, reason: str) -> None:
        """The current session is over; the loop renews it."""
        if not self._ended.is_set():
            self._end_reason = reason
            self._ended.set()

    # --- from the source (the handlers it was given) --------------------------------------

    def on_presence(self, present: bool) -> None:
        """The avatar's picture arrived (live) or went (reconnecting: and is it still there?)."""
        if present:
            self._enter(LIVE, "avatar in the room")
            if self._went_live_at is None:
                self._went_live_at = self._clock()
        elif self.state == LIVE:  # still connecting: it was never here
            self._enter(RECONNECTING, "avatar not in the room")
            self._probe_soon.set()

    def on_data(self, payload: bytes, topic: str | None) -> None:
        """A data packet from the avatar: the session decodes it into the bridge's events."""
        session = self.session
        if session is None:
            return
        for event in session.decode(payload, topic):
            self.on_event(event)

    def _lane_data(self, lane: Lane, payload: bytes, topic: str | None) -> None:
        """A data packet from one session's room, decoded by that session (during a renewal
        both send: the old one the end of its utterance, the new one its greeting)."""
        for event in lane.session.decode(payload, topic):
            self._event(event, current=lane is self._lane)

    def _lane_presence(self, lane: Lane, present: bool) -> None:
        """Only the active session's avatar coming or going is the state's business: the
        next one's first frame is watched by the renewal, the old one leaves as it stops."""
        if lane is self._lane:
            self.on_presence(present)

    def on_event(self, event: AvatarEvent) -> None:
        """An event of the current session."""
        self._event(event, current=True)

    def _event(self, event: AvatarEvent, *, current: bool) -> None:
        if event.kind == "session_stopped":
            if current:
                self.end(f"the provider stopped the session ({event.text or 'no reason given'})")
        elif event.kind == "speak_ended":
            if event.task_id is not None:
                self._ended_tasks.append(event.task_id)
                self._in_flight.discard(event.task_id)
            elif current:  # an end the provider did not name: the avatar is quiet
                self._in_flight.clear()
            self._speech_changed()
        self._bus.emit(
            f"avatar.{event.kind}",
            quiet=event.kind == "speak_text",
            task_id=event.task_id,
            **({"text": event.text} if event.text else {}),
            **({"duration_ms": event.duration_ms} if event.duration_ms is not None else {}),
            **({"interrupted": True} if event.interrupted else {}),
        )
        if self._on_event is not None:
            self._on_event(event)

    # --- speaking ---------------------------------------------------------------------------

    async def speak(self, text: str, mode: SpeakMode) -> str:
        """Have the live avatar speak; the provider's task id.  :class:`NotLive` otherwise.

        While a renewal's switch is pending, waits for it: what is asked now is said by the
        new session."""
        while (switched := self._switched) is not None:
            await switched.wait()
        session = self.session
        if session is None or self.state != LIVE:
            raise NotLive(f"the avatar is not live (state: {self.state})")
        self._sending += 1
        self._speech_changed()
        try:
            task_id = await session.speak(text, mode, self._room)
            self._last_activity = self._clock()  # the provider's idle timer starts again
            if session is self.session and task_id not in self._ended_tasks:
                self._in_flight.add(task_id)  # a renewal waits for its end
        finally:
            self._sending -= 1
            self._speech_changed()
        return task_id

    async def interrupt(self) -> None:
        session = self.session
        if session is None:
            raise NotLive(f"the avatar is not live (state: {self.state})")
        await session.interrupt(self._room)
        self._last_activity = self._clock()


async def _follow(lane: Lane) -> None:
    """Await the lane's source (its failure is the session's end); cancelled, cancel it."""
    assert lane.task is not None
    await lane.task


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _why(exc: BaseException) -> str:
    """A reason a person can read (a bare timeout's ``str()`` is empty)."""
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"no answer within {STOP_TIMEOUT_S:g} s"
    return str(exc)
