"""The session manager: keeps one avatar session alive and its media flowing.

An explicit state machine; every transition goes through :meth:`SessionManager._enter`, which
checks it against :data:`ALLOWED` (a transition outside the table is a bug, and raises), and
emits ``session.state`` once per change::

    starting ──► connecting ──► live ◄──► reconnecting
       ▲  │                       │            │
       │  └──► failed (backoff) ──┘            │
       └──── ended (the provider closed the session, or its media failed: renew) ◄─┘
    any ──► stopping (the session is being stopped) ──► stopped        (shutdown)

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
import contextlib
import logging
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from bridge.backoff import Backoff
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
# Opening a session failed: try again after 1, 2, 4 … s (at most a minute), or twice as long
# at most when the provider said trying again will not help soon.
RETRY = Backoff(first=1.0, cap=60.0, spread=(0.8, 1.2))
RETRY_REFUSED = Backoff(first=1.0, cap=120.0, spread=(0.8, 1.2))


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
    ) -> None:
        """``video`` and ``audio`` receive the avatar's media (the sinks); ``on_event`` its
        decoded events; ``on_session_end`` the reason whenever a session ends."""
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
        return {
            "provider": self.provider.name,
            "state": str(self.state),
            "session_id": self.session.session_id if self.session else None,
            "seconds_left": self._seconds_left(),
            "sessions_opened": self.sessions_opened,
            "orphans_stopped": self.orphans_stopped,
            "last_error": self.last_error,
        }

    def _seconds_left(self) -> int | None:
        """Until the provider ends the current session by its duration limit (None: no limit
        or no session)."""
        session, started = self.session, self._session_started
        if session is None or started is None or session.duration_limit is None:
            return None
        return max(0, round(started + session.duration_limit - time.monotonic()))

    # --- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep a session alive until cancelled; then stop it (graceful shutdown)."""
        try:
            account = self.provider.account
            if self._opened is not None and account is not None:
                self._recorder = self._opened.recorder(account)
                await self._stop_orphans(self._opened, account)
            failures = 0
            while True:
                self._enter(STARTING)
                try:
                    session = await self.provider.open_session(self._recorder)
                except RemoteError as exc:
                    failures += 1
                    self.last_error = str(exc)
                    self._enter(FAILED, str(exc))
                    await asyncio.sleep((RETRY if exc.retryable else RETRY_REFUSED).delay(failures))
                    continue
                failures = 0
                self.sessions_opened += 1
                await self._live_through(session)
        finally:
            self._enter(STOPPING, "shutdown")
            self._enter(STOPPED)

    async def _live_through(self, session: AvatarSession) -> None:
        """Run one session until it ends (then return: ended or failed) or we are cancelled
        (then ``stopping``); either way it is stopped before this returns."""
        self.session = session
        self._session_started = time.monotonic()
        self._ended.clear()
        self._probe_soon.clear()
        self._enter(CONNECTING, f"session {session.session_id}")
        try:
            media = self._open_media(session.media, self.handlers)
            self.source, self._room = media.source, media.room
            await self._serve(session, media.source)
        except asyncio.CancelledError:
            self._enter(STOPPING, "shutdown")  # status says so while the session is stopped
            raise
        finally:
            self.source = self._room = None
            if self._on_session_end is not None:
                self._on_session_end(f"the session {session.session_id} ended")
            await finish_despite_cancel(self._stop(session), name=f"stop-{session.session_id}")

    async def _serve(self, session: AvatarSession, source: Source) -> None:
        """The session's tasks, until one of them ends it; leaves the state ended or failed."""
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
        """A keep-alive every ``every`` seconds, and one at once when the avatar leaves the
        room: did it leave because the session ended?"""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every):
                    await self._probe_soon.wait()
            self._probe_soon.clear()
            await self._probe(session)

    async def _probe(self, session: AvatarSession) -> None:
        """Keep-alive doubling as a liveness check: a gone session ends the loop."""
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
        return await session.speak(text, mode, self._room)

    async def interrupt(self) -> None:
        session = self.session
        if session is None:
            raise NotLive(f"the avatar is not live (state: {self.state})")
        await session.interrupt(self._room)


def _why(exc: BaseException) -> str:
    """A reason a person can read (a bare timeout's ``str()`` is empty)."""
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"no answer within {STOP_TIMEOUT_S:g} s"
    return str(exc)
