"""One session's lane: the session, its media, and the gate between its media and the sinks.

Renewal before the duration limit is make-before-break: for a few seconds two sessions run
side by side, and exactly one of them, the *active* lane, feeds the camera and the mic.  Each
lane hands its source its own :class:`MediaHandlers` bundle, whose video and audio handlers
forward to the app's sinks only while the lane is active (one bool check per frame, no copy),
and whose data handler decodes with the lane's own session.  The first frame an inactive lane
receives sets :attr:`Lane.first_frame`: the new session is ready, the switch may happen.
Flipping two lanes' ``active`` in one step, on the event loop (where every handler runs),
switches at a frame boundary.

:class:`Renewal` is the make-before-break renewal itself, a collaborator the session manager
owns (the story is in :mod:`bridge.session.manager`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bridge.cleanup import finish_despite_cancel
from bridge.errors import RemoteError
from bridge.media.frames import AudioChunk, VideoFrame
from bridge.providers.base import AvatarSession
from bridge.session.policy import Kind, decide
from bridge.session.retrying import sleep_unless
from bridge.source.base import DataChannel, MediaHandlers, Source

if TYPE_CHECKING:
    from bridge.session.manager import SessionManager

log = logging.getLogger("bridge.session.manager")  # the manager's story, one logger

MAKE_BEFORE_BREAK = "make-before-break"
ONE_AT_A_TIME = "break-before-make (the provider allows one session at a time)"

# At most this long an utterance in progress holds the switch to the renewed session.
UTTERANCE_WAIT_S = 20.0
# A retry of the next session's open is not started with less than this left to the limit.
RENEW_LAST_TRY_S = 5.0


class Renewed(Exception):
    """The next session took over the camera and mic: the old one's tasks end."""


LaneData = Callable[["Lane", bytes, str | None], None]
LanePresence = Callable[["Lane", bool], None]


class Lane:
    """One session and its media.  ``sinks`` are the app's video and audio (only reached
    while :attr:`active`); ``on_data`` and ``on_presence`` receive the lane's data packets and
    presence reports, with the lane, whether active or not (the manager decides)."""

    def __init__(
        self,
        session: AvatarSession,
        sinks: MediaHandlers,
        *,
        on_data: LaneData,
        on_presence: LanePresence,
        opened_at: float,
    ) -> None:
        self.session = session
        self.opened_at = opened_at  # the manager's clock when the session was created
        self.active = False
        self.present = False  # the source's last presence report
        self.first_frame = asyncio.Event()
        self.source: Source | None = None
        self.room: DataChannel | None = None
        self.task: asyncio.Task[None] | None = None  # the source's run, once started
        self._video, self._audio = sinks.video, sinks.audio
        self._on_data, self._on_presence = on_data, on_presence
        self.handlers = MediaHandlers(
            video=self._video_in, audio=self._audio_in, data=self._data_in, presence=self._here
        )

    def start(self, source: Source, room: DataChannel | None) -> None:
        """Run ``source`` in a task the lane's owner (the manager) awaits or cancels."""
        self.source, self.room = source, room
        self.task = asyncio.create_task(source.run(), name="media-source")

    def _video_in(self, frame: VideoFrame) -> None:
        if self.active:
            self._video(frame)
        elif not self.first_frame.is_set():
            self.first_frame.set()

    def _audio_in(self, chunk: AudioChunk) -> None:
        if self.active:
            self._audio(chunk)

    def _data_in(self, payload: bytes, topic: str | None) -> None:
        self._on_data(self, payload, topic)

    def _here(self, present: bool) -> None:
        self.present = present
        self._on_presence(self, present)


class Renewal:
    """The make-before-break renewal of the manager's sessions.  ``mode`` is what status
    shows; ``next`` the next session's lane while it is readied (and, renewed, until the
    manager's loop takes it over); ``switched`` is set while a switch is pending (``speak``
    waits on it)."""

    def __init__(self, manager: SessionManager, margin: float) -> None:
        self._m = manager
        self.margin = margin
        self.mode = MAKE_BEFORE_BREAK
        self.next: Lane | None = None
        self.switched: asyncio.Event | None = None

    async def when_due(self, old: Lane) -> None:
        """At the renewal time, open the next session and its media; once its first frame
        has arrived and the utterance in progress has ended, switch the camera and mic to it
        (raises :class:`Renewed`).  Returns (the old session runs to its end: break before
        make) when the next session cannot be opened or never sends a picture."""
        m = self._m
        limit = old.session.duration_limit
        if limit is None or limit <= 2 * self.margin:
            return  # no limit, or too short to renew ahead of it
        await m._sleep(old.opened_at + limit - self.margin - m._clock())
        old_id = old.session.session_id
        m._bus.emit("session.renewing", session_id=old_id)
        log.info("renewing session %s before its duration limit", old_id)
        session = await self._open_next()
        if session is None:
            return
        lane = self.next = m._new_lane(session, m._clock())
        m.sessions_opened += 1
        media = m._open_media(session.media, lane.handlers)
        lane.start(media.source, media.room)
        if not await self._first_frame(lane):
            self.next = None  # stopped here, even if the shutdown comes meanwhile
            await finish_despite_cancel(m._end_lane(lane), name=f"stop-{session.session_id}")
            self._fall_back(f"the next session {session.session_id} sent no picture")
            return
        switched = self.switched = asyncio.Event()  # speak() holds new items from here
        try:
            # (An avatar gone from the old room finishes no utterance: switch at once.)
            if old.present and not await sleep_unless(m._sleep, UTTERANCE_WAIT_S, m._speech.idle):
                log.warning(
                    "an utterance on session %s still runs after %.0f s: switching anyway",
                    old_id,
                    UTTERANCE_WAIT_S,
                )
            m._take_over(old, lane)  # at a frame boundary: nothing else runs meanwhile
        finally:
            self.switched = None
            switched.set()
        if self.mode != MAKE_BEFORE_BREAK:
            self._set_mode(MAKE_BEFORE_BREAK, "the provider allowed a second session")
        m._bus.emit(
            "session.renewed", previous=old_id, session_id=session.session_id, gap_free=True
        )
        log.info("renewed session %s to %s", old_id, session.session_id)
        raise Renewed(f"renewed to session {session.session_id} before its duration limit")

    async def _open_next(self) -> AvatarSession | None:
        """The next session, or None (and the fallback said) when the provider will not give
        one in time."""
        m = self._m
        attempt = 0
        while True:
            try:
                return await m.provider.open_session(m._recorder)
            except RemoteError as exc:
                attempt += 1
                decision = decide(exc, attempt, holds_own_session=True)
                if decision.kind is Kind.LIMIT:
                    self._fall_back(ONE_AT_A_TIME, decision.reason)
                    return None
                left = m._until_limit()
                delay = decision.delay
                if delay is None or left is None or delay > left - RENEW_LAST_TRY_S:
                    self._fall_back(
                        f"break-before-make (the next session did not open: {decision.reason})",
                        decision.reason,
                    )
                    return None
                log.warning("the next session did not open (%s): again in %.0f s", exc, delay)
                await m._sleep(delay)

    def _fall_back(self, mode: str, reason: str | None = None) -> None:
        """The old session runs to its end and the next opens after it (the slate between)."""
        if not mode.startswith("break-before-make"):
            mode = f"break-before-make ({mode})"
        log.warning("renewal: %s", mode)
        self._set_mode(mode, reason or mode)

    def _set_mode(self, mode: str, reason: str) -> None:
        self.mode = mode
        self._m._bus.emit("session.renewal", mode=mode, reason=reason)

    async def _first_frame(self, lane: Lane) -> bool:
        """Until the lane's first video frame (True), or its source ended or the old
        session's limit passed (False)."""
        assert lane.task is not None
        left = self._m._until_limit()
        waiters: list[asyncio.Future[Any]] = [
            asyncio.create_task(lane.first_frame.wait(), name="renewal-first-frame"),
            asyncio.create_task(self._m._sleep(max(0.0, left or 0.0)), name="renewal-deadline"),
        ]
        try:
            await asyncio.wait([*waiters, lane.task], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        return lane.first_frame.is_set() and not lane.task.done()
