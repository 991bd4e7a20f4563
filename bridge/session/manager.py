"""The session manager: keeps one avatar session alive and its media flowing.

An explicit state machine; every transition goes through :meth:`SessionManager._enter`, which
checks it, logs it and emits ``session.state`` once per change::

    starting ──► connecting ──► live ◄──► reconnecting
       ▲  │                       │            │
       │  └──► failed (backoff) ──┘            │
       └──────── ended (the provider closed the session: renew) ◄─┘
    any ──► stopping ──► stopped   (shutdown)

Per session it runs, in one task group: the media source, keep-alives, and a watch for the
session's end.  A session always gets ``stop()``: on shutdown, on renewal and on failure.  Each
remote session is also on record (:mod:`bridge.session.orphans`) from its creation to its stop,
and the sessions a crashed earlier run left on record are stopped before the first one opens.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol

from bridge.errors import NotLive, RemoteError, SessionGone
from bridge.eventbus import EventBus
from bridge.providers.base import (
    NO_RECORD,
    AvatarSession,
    LocalMedia,
    Provider,
    SessionRecorder,
    SpeakMode,
)
from bridge.providers.events import AvatarEvent
from bridge.session.orphans import OpenedSessions

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 8.0
RETRY_FIRST_S, RETRY_MAX_S = 1.0, 60.0


class SessionState(StrEnum):
    STARTING = "starting"
    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    FAILED = "failed"
    STOPPING = "stopping"
    STOPPED = "stopped"


S = SessionState
ALLOWED: dict[SessionState, set[SessionState]] = {
    S.STARTING: {S.CONNECTING, S.FAILED, S.STOPPING},
    S.CONNECTING: {S.LIVE, S.ENDED, S.FAILED, S.STOPPING},
    S.LIVE: {S.RECONNECTING, S.ENDED, S.FAILED, S.STOPPING},
    S.RECONNECTING: {S.LIVE, S.ENDED, S.FAILED, S.STOPPING},
    S.ENDED: {S.STARTING, S.STOPPING},
    S.FAILED: {S.STARTING, S.STOPPING},
    S.STOPPING: {S.STOPPED},
    S.STOPPED: set(),
}


class MediaSource(Protocol):
    async def run(self) -> None: ...

    async def publish(self, payload: bytes, topic: str) -> None: ...

    def snapshot(self) -> dict[str, Any]: ...


SourceFactory = Callable[[AvatarSession, "SessionManager"], MediaSource]
EventListener = Callable[[AvatarEvent], None]


class SessionEnded(Exception):
    """The provider ended the session (stopped, expired, gone)."""


class SessionManager:
    def __init__(
        self,
        *,
        provider: Provider,
        make_source: SourceFactory,
        bus: EventBus,
        on_event: EventListener | None = None,
        on_session_end: Callable[[str], None] | None = None,
        opened: OpenedSessions | None = None,
    ) -> None:
        self.provider = provider
        self._make_source = make_source
        self._bus = bus
        self._on_event = on_event
        self._on_session_end = on_session_end
        self.state = SessionState.STARTING
        self.session: AvatarSession | None = None
        self.source: MediaSource | None = None
        self.last_error: str | None = None
        self.sessions_opened = 0
        self.orphans_stopped = 0
        self._opened = opened
        self._recorder: SessionRecorder = NO_RECORD
        self.live = asyncio.Event()
        self._ended = asyncio.Event()
        self._end_reason = ""
        self._probes: set[asyncio.Task[None]] = set()

    # --- state ---------------------------------------------------------------------------

    def _enter(self, new: SessionState, why: str = "") -> None:
        if new == self.state:
            return
        if new not in ALLOWED[self.state]:
            log.debug("ignored transition %s -> %s (%s)", self.state, new, why)
            return
        old, self.state = self.state, new
        if new == S.LIVE:
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
            "sessions_opened": self.sessions_opened,
            "orphans_stopped": self.orphans_stopped,
            "last_error": self.last_error,
        }

    # --- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep a session alive until cancelled; then stop it (graceful shutdown)."""
        failures = 0
        try:
            account = self.provider.account
            if self._opened is not None and account is not None:
                self._recorder = self._opened.recorder(account)
                await self._stop_orphans(self._opened, account)
            while True:
                self._enter(S.STARTING)
                try:
                    session = await self.provider.open_session(self._recorder)
                except RemoteError as exc:
                    failures += 1
                    self.last_error = str(exc)
                    self._enter(S.FAILED, str(exc))
                    await asyncio.sleep(_retry_delay(failures, exc.retryable))
                    continue
                failures = 0
                self.sessions_opened += 1
                await self._live_through(session)
        finally:
            probes = list(self._probes)
            for probe in probes:
                probe.cancel()
            await asyncio.gather(*probes, return_exceptions=True)
            self._enter(S.STOPPING, "shutdown")
            self._enter(S.STOPPED)

    async def _live_through(self, session: AvatarSession) -> None:
        """Run one session until it ends (then return) or we are cancelled (then stop it)."""
        self.session = session
        self._ended.clear()
        self._enter(S.CONNECTING, f"session {session.session_id}")
        source = self._make_source(session, self)
        self.source = source
        session.attach(source.publish)
        if isinstance(session.media, LocalMedia):
            self._enter(S.LIVE, "in-process avatar")
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(source.run(), name="media-source")
                if session.keep_alive_every:
                    group.create_task(self._keep_alive(session), name="keep-alive")
                group.create_task(self._watch_end(), name="session-end-watch")
        except* SessionEnded:
            self._enter(S.ENDED, self._end_reason)
        except* RemoteError as group:
            self.last_error = str(group.exceptions[0])
            self._enter(S.FAILED, self.last_error)
        finally:
            self.source = None
            if self._on_session_end is not None:
                self._on_session_end(f"the session {session.session_id} ended")
            await asyncio.shield(self._stop(session))

    async def _stop(self, session: AvatarSession) -> None:
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await session.stop()
                await self._recorder.stopped(session.session_id)
            log.info("stopped session %s", session.session_id)
        except (RemoteError, TimeoutError) as exc:
            log.warning("could not stop session %s: %s", session.session_id, exc)
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
                    exc,
                )
                continue
            else:
                self.orphans_stopped += 1
                log.info("stopped session %s, left running by an earlier run", session_id)
            await self._recorder.stopped(session_id)

    async def _keep_alive(self, session: AvatarSession) -> None:
        assert session.keep_alive_every is not None
        while True:
            await asyncio.sleep(session.keep_alive_every)
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

    # --- from the source ------------------------------------------------------------------

    def on_avatar(self, present: bool) -> None:
        if present:
            self._enter(S.LIVE, "avatar in the room")
            return
        self._enter(S.RECONNECTING, "avatar not in the room")
        session = self.session
        if session is not None and session.keep_alive_every:
            # Did it leave because the session ended?  Ask now rather than at the next keep-alive.
            probe = asyncio.get_running_loop().create_task(
                self._probe(session), name="probe-after-leave"
            )
            self._probes.add(probe)
            probe.add_done_callback(self._probes.discard)

    def on_data(self, payload: bytes, topic: str | None) -> None:
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
        session = self.session
        if session is None or self.state != S.LIVE:
            raise NotLive(f"the avatar is not live (state: {self.state})")
        return await session.speak(text, mode)

    async def interrupt(self) -> None:
        session = self.session
        if session is None:
            raise NotLive(f"the avatar is not live (state: {self.state})")
        await session.interrupt()


def _retry_delay(failures: int, retryable: bool) -> float:
    cap = RETRY_MAX_S if retryable else RETRY_MAX_S * 2
    return min(cap, RETRY_FIRST_S * 2.0 ** (failures - 1)) * random.uniform(0.8, 1.2)
