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
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bridge.errors import NotLive, RemoteError, SessionGone
from bridge.eventbus import EventBus
from bridge.providers.base import (
    NO_RECORD,
    AvatarSession,
    Provider,
    SessionRecorder,
    SpeakMode,
    finish_despite_cancel,
)
from bridge.providers.events import AvatarEvent
from bridge.session.orphans import OpenedSessions
from bridge.session.policy import Decision, Kind, after_early_end, decide
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
# Renew this long before the session's duration limit (the make-before-break renewal of issue
# 11 item 1 will act on it; today status shows when that would be).
RENEW_MARGIN_S = 30.0

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
        (``renew_margin_s`` before that limit); ``reconnects``: tries after the first;
        ``last_reason``: why the last session ended; ``next_try_in_s``: while waiting to try
        again; ``last_error`` and ``fix``: the failure and what to do about it."""
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
            while True:
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
                    decision = decide(exc, failures, holds_own_session=self.session is not None)
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
                lived = await self._live_through(session)
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

    async def _live_through(self, session: AvatarSession) -> float:
        """Run one session until it ends (then return how long it was live: ended or failed)
        or we are cancelled (then ``stopping``); either way it is stopped before this ends."""
        self.session = session
        self._session_started = self._last_activity = self._last_probe = self._clock()
        self._went_live_at = None
        self._ended.clear()
        self._probe_soon.clear()
        self._enter(CONNECTING, f"session {session.session_id}")
        reason = "shutdown"
        try:
            media = self._open_media(session.media, self.handlers)
            self.source, self._room = media.source, media.room
            reason = await self._serve(session, media.source)
        except asyncio.CancelledError:
            self._enter(STOPPING, "shutdown")  # status says so while the session is stopped
            raise
        finally:
            self.source = self._room = None
            live_since = self._went_live_at
            lived = 0.0 if live_since is None else self._clock() - live_since
            self.last_reason = reason
            self._bus.emit(
                "session.ended",
                session_id=session.session_id,
                reason=reason,
                live_s=round(lived, 1),
            )
            if self._on_session_end is not None:
                self._on_session_end(f"the session {session.session_id} ended")
            await finish_despite_cancel(self._stop(session), name=f"stop-{session.session_id}")
        return lived

    async def _serve(self, session: AvatarSession, source: Source) -> str:
        """The session's tasks, until one of them ends it; leaves the state ended or failed
        and returns why."""
        failed, why = False, "the session's tasks ended"
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(source.run(), name="media-source")
                if session.keep_alive_every:
                    group.create_task(
                        self._keep_alive(session, session.keep_alive_every), name="keep-alive"
                    )
                group.create_task(self._watch_end(), name="session-end-watch")
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
        self._enter(FAILED if failed else ENDED, why)
        return why

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

    def on_event(self, event: AvatarEvent) -> None:
        if event.kind == "session_stopped":
            self.end(f"the provider stopped the session ({event.text or 'no reason given'})")
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
        """Have the live avatar speak; the provider's task id.  :class:`NotLive` otherwise."""
        session = self.session
        if session is None or self.state != LIVE:
            raise NotLive(f"the avatar is not live (state: {self.state})")
        task_id = await session.speak(text, mode, self._room)
        self._last_activity = self._clock()  # the provider's idle timer starts again
        return task_id

    async def interrupt(self) -> None:
        session = self.session
        if session is None:
            raise NotLive(f"the avatar is not live (state: {self.state})")
        await session.interrupt(self._room)
        self._last_activity = self._clock()


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _why(exc: BaseException) -> str:
    """A reason a person can read (a bare timeout's ``str()`` is empty)."""
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"no answer within {STOP_TIMEOUT_S:g} s"
    return str(exc)
