"""The session manager: keeps one avatar session alive and its media flowing.

An explicit state machine; every transition goes through :meth:`SessionManager._enter`, which
checks it against :data:`ALLOWED` (a transition outside the table is a bug, and raises), and
emits ``session.state`` once per change::

    starting ──► connecting ──► live ◄──► reconnecting
       ▲  │                       │            │
       │  └──► failed (backoff) ──┘            │      (or failed for good: see below)
       └──── ended (the provider closed the session, or its media failed: renew) ◄─┘
    any ──► stopping (the session is being stopped) ──► stopped        (shutdown)

(ended or failed ──► connecting: a session the renewal opened ahead takes over when its
predecessor ended before the switch: the slate until its first frame, no new session.)

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

Keep-alives go out every ``keep_alive_every`` seconds of *silence* (:mod:`bridge.session.liveness`).

Renewal, make-before-break (:mod:`bridge.session.renewal`): ``avatar.renew_margin_s`` (30 s
by default) before the session's duration limit the next session opens beside it, its media
too, while the camera and mic stay on the old one; at the new one's first video frame, and
once the utterance in progress has ended (at most :data:`UTTERANCE_WAIT_S`; ``speak`` holds
new items meanwhile, for the new session), the sinks switch to it between two frames, the old
session is stopped and the new one goes on as the current session, the state live throughout
(``session.renewing``, ``session.renewed``).  A provider that refuses the second session (its
concurrency limit) gets break-before-make: the old session runs to its end and the next opens
after it, the slate in between; status (``renewal``) and a ``session.renewal`` event say so.

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

The states and their table are in :mod:`bridge.session.state`; the wait before a retry in
:mod:`bridge.session.retrying`; what the avatar is saying in :mod:`bridge.session.speech`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from bridge.cleanup import finish_despite_cancel
from bridge.config import RENEW_MARGIN_S as RENEW_MARGIN_S
from bridge.errors import NotLive, RemoteError
from bridge.eventbus import EventBus
from bridge.providers.base import (
    NO_RECORD,
    AvatarSession,
    ListeningSession,
    Provider,
    SessionRecorder,
    SpeakMode,
)
from bridge.providers.events import AvatarEvent
from bridge.session.lifetime import SessionEnded as SessionEnded
from bridge.session.lifetime import live_through
from bridge.session.liveness import Liveness
from bridge.session.orphans import OpenedSessions
from bridge.session.policy import after_early_end, after_fatal_end, decide
from bridge.session.renewal import RENEW_LAST_TRY_S as RENEW_LAST_TRY_S
from bridge.session.renewal import UTTERANCE_WAIT_S as UTTERANCE_WAIT_S
from bridge.session.renewal import Lane, Renewal
from bridge.session.renewal import Renewed as Renewed
from bridge.session.retrying import Clock as Clock
from bridge.session.retrying import Retrying
from bridge.session.retrying import Sleep as Sleep
from bridge.session.speech import SpeechInFlight
from bridge.session.state import ALLOWED as ALLOWED
from bridge.session.state import (
    CONNECTING,
    FAILED,
    LIVE,
    RECONNECTING,
    STARTING,
    STOPPED,
    STOPPING,
)
from bridge.session.state import IllegalTransition as IllegalTransition
from bridge.session.state import SessionState as SessionState
from bridge.session.status import snapshot
from bridge.session.stopping import end_media, stop_orphans, stop_session
from bridge.source.base import (
    AudioHandler,
    DataChannel,
    MediaHandlers,
    Source,
    VideoHandler,
)
from bridge.source.open import MediaOpener, open_media

STOP_TIMEOUT_S = 8.0
# A session live at least this long was healthy: when it ends, the next opens at once and the
# failures in a row start again from zero.
STABLE_S = 30.0


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


EventListener = Callable[[AvatarEvent], None]


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
        self._end_code: str | None = None  # the provider's own reason, as it gave it
        self._session_started: float | None = None
        self._clock = clock
        self._sleep = sleep
        # The story status tells (snapshot()).
        self.reconnects = 0  # tries after the first: a session ended or an open failed
        self.last_reason: str | None = None  # why the last session ended
        self.fix: str | None = None  # what the user can do about the failure that stopped us
        self._went_live_at: float | None = None
        self._retrying = Retrying(bus, clock, sleep)
        self._missing_since: float | None = None  # the avatar not in the room since
        self._liveness = Liveness(clock, sleep, self.end, self._avatar_missing_since)
        # Renewal (make-before-break): the next session while it is being readied, and what
        # holds the switch (speech sent to the old session).
        self._renewal = Renewal(self, renew_margin_s)
        self._lane: Lane | None = None  # the active session's lane
        self._speech = SpeechInFlight()

    @property
    def renewal(self) -> str:
        """How sessions are renewed: ``make-before-break``, or ``break-before-make (why)``."""
        return self._renewal.mode

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
        waiting = (CONNECTING, RECONNECTING)
        if new in waiting and old not in waiting:
            self._missing_since = self._clock()
        session_id = self.session.session_id if self.session else None
        self._bus.emit(
            "session.state", state=str(new), previous=str(old), session_id=session_id, why=why
        )

    def _avatar_missing_since(self) -> float | None:
        """Since when the current session's avatar has not been in the room; None when it
        is (or no session is waiting for one)."""
        waiting = self.state in (CONNECTING, RECONNECTING)
        return self._missing_since if waiting else None

    def snapshot(self) -> dict[str, Any]:
        """Status: the session, when it ends and would be renewed, and the story of failures.

        ``seconds_left``: until the provider ends the session by its duration limit;
        ``renewal_in_s`` / ``next_renewal_at`` (UTC, ISO 8601): when the manager renews it
        (``renew_margin_s`` before that limit); ``renewal``: how (``make-before-break``, or
        ``break-before-make (why)`` after the provider refused a second session);
        ``reconnects``: tries after the first; ``last_reason``: why the last session ended;
        ``next_try_in_s``: while waiting to try again; ``last_error`` and ``fix``: the failure
        and what to do about it."""
        return snapshot(self)

    def _until_limit(self) -> float | None:
        session, started = self.session, self._session_started
        if session is None or started is None or session.duration_limit is None:
            return None
        return started + session.duration_limit - self._clock()

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
                    self._retrying.starting()
                    self._enter(STARTING)
                    try:
                        session = await self.provider.open_session(self._recorder)
                    except RemoteError as exc:
                        failures += 1
                        self.last_error = str(exc)
                        own = self.session is not None
                        decision = decide(exc, failures, holds_own_session=own)
                        self._enter(FAILED, decision.reason)
                        self.fix = decision.fix
                        if decision.retry:
                            await self._retrying.wait(decision, failures)
                        else:
                            await self._retrying.give_up(decision)
                            failures = 0
                        continue
                    self.sessions_opened += 1
                    self.fix = None
                    lane = None
                lived = await live_through(self, session, lane)
                if (fatal := after_fatal_end(self._end_code)) is not None:
                    await self._drop_successor()  # it would meet the same end
                    self.fix = fatal.fix
                    await self._retrying.give_up(fatal)
                    failures = 0
                    continue
                if self._renewal.next is not None:  # renewed: its successor has the camera
                    handoff, self._renewal.next = self._renewal.next, None
                    failures = 0
                    continue
                if lived >= STABLE_S:
                    failures = 0  # a healthy session ended (its limit, say): the next at once
                    continue
                failures += 1
                if failures > 1:  # one quick end is replaced at once, a second waits
                    reason = self.last_reason or "the session ended"
                    await self._retrying.wait(after_early_end(reason, failures - 1), failures)
        finally:
            self._retrying.next_try_at = None
            self._enter(STOPPING, "shutdown")
            await self._drop_successor()  # shut down between a switch and the handoff
            self._enter(STOPPED)

    def try_again(self) -> None:
        """Try to open a session now: after a fatal failure (the config was reloaded, say) or
        instead of waiting out a retry's delay."""
        self._retrying.try_again()

    # --- lanes (renewal: bridge.session.renewal) ------------------------------------------

    def _new_lane(self, session: AvatarSession, opened_at: float) -> Lane:
        return Lane(
            session,
            self.handlers,
            on_data=self._lane_data,
            on_presence=self._lane_presence,
            opened_at=opened_at,
        )

    def _take_over(self, old: Lane, lane: Lane) -> None:
        """The renewal's switch: ``lane`` becomes the active one, between two frames (nothing
        else runs between these lines)."""
        old.active, lane.active = False, True
        self._lane, self.session = lane, lane.session
        self.source, self._room = lane.source, lane.room
        self._speech.forget()
        if self.state != LIVE:
            self._enter(LIVE, f"renewed to session {lane.session.session_id}")

    async def _drop_successor(self) -> None:
        """Stop the session the renewal opened ahead, if one waits for the loop."""
        if self._renewal.next is not None:
            lane, self._renewal.next = self._renewal.next, None
            await finish_despite_cancel(self._end_lane(lane), name="stop-renewed")

    async def _end_lane(self, lane: Lane) -> None:
        """Stop a lane's media, then its session."""
        await end_media(lane)
        await self._stop(lane.session)

    async def _stop(self, session: AvatarSession) -> None:
        await stop_session(session, self._recorder, STOP_TIMEOUT_S)
        if self.session is session:
            self.session = None

    async def _stop_orphans(self, opened: OpenedSessions, account: str) -> None:
        """Stop the sessions an earlier run created and never stopped (it crashed)."""
        await stop_orphans(
            self.provider, opened, account, self._recorder, STOP_TIMEOUT_S, self._orphan_stopped
        )

    def _orphan_stopped(self) -> None:
        self.orphans_stopped += 1

    def end(self, reason: str) -> None:
        """The current session is over; the loop renews it."""
        if not self._ended.is_set():
            self._end_reason = reason
            self._ended.set()

    def _provider_ended(self, code: str | None) -> None:
        """The provider stopped the current session, for ``code`` (its own words)."""
        self._end_code = code
        self.end(f"the provider stopped the session ({code or 'no reason given'})")

    # --- from the source (the handlers it was given) --------------------------------------

    def on_presence(self, present: bool) -> None:
        """The avatar's picture arrived (live) or went (reconnecting: and is it still there?)."""
        if present:
            self._enter(LIVE, "avatar in the room")
            if self._went_live_at is None:
                self._went_live_at = self._clock()
        elif self.state == LIVE:  # still connecting: it was never here
            self._enter(RECONNECTING, "avatar not in the room")
            self._liveness.probe_soon.set()

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
                self._provider_ended(event.text)
        elif event.kind == "speak_ended":
            self._speech.ended(event.task_id, current=current)
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
        while (switched := self._renewal.switched) is not None:
            await switched.wait()
        session = self.session
        if session is None or self.state != LIVE:
            raise NotLive(f"the avatar is not live (state: {self.state})")
        self._speech.send_started()
        try:
            task_id = await session.speak(text, mode, self._room)
            self._liveness.active()  # the provider's idle timer starts again
            self._speech.sent(task_id, current=session is self.session)
        finally:
            self._speech.send_done()
        return task_id

    async def interrupt(self) -> None:
        session = self.session
        if session is None:
            raise NotLive(f"the avatar is not live (state: {self.state})")
        await session.interrupt(self._room)
        self._liveness.active()

    async def listen(self, on: bool, *, push_to_talk: bool) -> bool:
        """Open or close the live avatar's ears at its provider (listen mode); False when the
        provider has no such command (the demo).  :class:`NotLive` without a session."""
        session = self.session
        if session is None or self.state != LIVE:
            raise NotLive(f"the avatar is not live (state: {self.state})")
        if not isinstance(session, ListeningSession):
            return False
        await session.listen(on, push_to_talk, self._room)
        self._liveness.active()
        return True
