"""The skeleton both provider fakes share: sessions, clock, expiry, refusals, avatar, closing.

A fake (:class:`FakeService`) keeps its sessions by id and answers in its own dialect; the
skeleton does what every fake does the same way:

* **time**: every timeout is read from the simulator's :mod:`~bridge.sim.clock`; a service's
  limits shrink by its ``time_scale`` (:meth:`~FakeService.scaled`), which stays for rehearsals
  on the wall clock (tests move a :class:`~bridge.sim.clock.ManualClock` instead);
* **expiry**: :meth:`~FakeService.watch` asks the service's ``expiry`` about each session at
  every tick and closes the ones it names;
* **refusals**: an endpoint raises its service's :class:`Refusal`; :meth:`~FakeService.guard`
  turns it into that service's error answer;
* **the avatar**: :meth:`~FakeService.begin` starts a session and sends the avatar into its room
  in a task the session owns; only :class:`~bridge.sim.media.JoinFailed` fails the session (as
  the real service would), any other error is a bug of the simulator and propagates to whoever
  ends the task; :meth:`~FakeService.bounce_avatar` takes the avatar out and back;
* **closing**: :meth:`~FakeService.close` ends a session once, awaits its tasks, lets the avatar
  say goodbye and leave, and closes the room; :meth:`~FakeService.aclose` closes them all.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypedDict, TypeVar, Unpack

from aiohttp import web

from bridge.sim.clock import Clock
from bridge.sim.ledger import Ledger
from bridge.sim.media import AvatarLink, Hooks, JoinFailed, MediaHost, RoomSpec
from bridge.sim.tasks import cancel_and_wait, for_each

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SessionEnd = Literal["stopped", "expired"]
HISTORY = 256  # texts spoken, kept per session for tests and rehearsals
TICK = 0.05  # seconds between expiry checks on the wall clock


class Refusal(Exception):
    """Answer the request with the service's error shape instead of running the endpoint."""

    def response(self) -> web.Response:
        raise NotImplementedError(f"{type(self).__name__} must say how it answers")


@dataclass(kw_only=True)
class SimSession:
    """What every fake knows about one of its sessions (times are on the simulator's clock)."""

    session_id: str
    owner: str  # the API key that created it
    room: str
    created: float  # wall-clock seconds (``time.time()``), for listings
    state: str
    last_activity: float
    started: float | None = None
    speaking_until: float = 0.0
    duration_s: float = 0.0
    link: AvatarLink | None = None
    join_task: asyncio.Task[None] | None = None
    worker: asyncio.Task[None] | None = None  # the avatar's command loop, where it has one
    history: deque[str] = field(default_factory=lambda: deque(maxlen=HISTORY))

    def summary(self) -> dict[str, object]:
        """The row ``GET /_sim/sessions`` shows for it."""
        return {
            "session_id": self.session_id,
            "state": self.state,
            "room": self.room,
            "history": list(self.history),
        }


S = TypeVar("S", bound=SimSession)


class Backdrop(TypedDict):
    """What a fake is given by the simulator it runs in (keyword arguments of every fake)."""

    ledger: Ledger
    media: MediaHost
    api_keys: set[str]  # the API keys it accepts
    clock: Clock


class FakeService(ABC, Generic[S]):
    """State and shared behaviour of one fake; subclasses add routes and the service's rules."""

    SERVICE: ClassVar[str]  # its name in the ledger
    JOINING: ClassVar[str]  # the state while the avatar is on its way into the room
    SHUTDOWN_REASON: ClassVar[str]  # why sessions end when the simulator stops

    def __init__(self, **backdrop: Unpack[Backdrop]) -> None:
        self.ledger = backdrop["ledger"]
        self.media = backdrop["media"]
        self.api_keys = backdrop["api_keys"]
        self.clock = backdrop["clock"]
        self.sessions: dict[str, S] = {}

    # --- what each service says ---------------------------------------------------------

    @abstractmethod
    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    @abstractmethod
    def owns(self, path: str) -> bool:
        raise NotImplementedError

    @property
    @abstractmethod
    def time_scale(self) -> float:
        raise NotImplementedError

    @abstractmethod
    def expiry(self, session: S, now: float) -> str | None:
        """Why the session must end now, or None while it may live."""
        raise NotImplementedError

    @abstractmethod
    def room_spec(self, session: S) -> RoomSpec:
        raise NotImplementedError

    @abstractmethod
    def hooks(self, session: S) -> Hooks:
        raise NotImplementedError

    @abstractmethod
    def join_failed(self, session: S, error: JoinFailed) -> str:
        """The reason a session ends with when its avatar cannot enter the room."""
        raise NotImplementedError

    def joined(self, session: S, link: AvatarLink) -> None:
        """The avatar is in the room and the session connected (start its command loop...)."""

    def ended(self, session: S, reason: str) -> None:
        """The session was just marked closed; note the service's own fields."""

    async def farewell(self, session: S, link: AvatarLink) -> None:
        """Last words into the room before the avatar leaves a closing session."""

    @abstractmethod
    def closes_room(self, session: S, was: str) -> bool:
        """Whether closing the session (in state ``was``) deletes its LiveKit room."""
        raise NotImplementedError

    # --- wiring and time ----------------------------------------------------------------

    def guard(self, fn: Handler) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                return await fn(request)
            except Refusal as refusal:
                return refusal.response()

        return handler

    def now(self) -> float:
        return self.clock.now()

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale

    async def watch(self) -> None:
        """Expire sessions for the simulator's life (one task; cancel it to stop)."""
        await self.clock.every(TICK, self.expire_due)

    async def expire_due(self) -> None:
        now = self.now()
        for session in list(self.sessions.values()):
            reason = self.expiry(session, now)
            if reason is not None:
                await self.close(session, "expired", reason)

    # --- a session's life ---------------------------------------------------------------

    def add(self, session: S) -> S:
        self.sessions[session.session_id] = session
        self.ledger.record_session(self.SERVICE, session.session_id, "created")
        return session

    def begin(self, session: S, *, join: bool) -> None:
        """The session starts: its clocks run and, with ``join``, its avatar heads for the room."""
        session.started = session.last_activity = self.now()
        self.ledger.record_session(self.SERVICE, session.session_id, "started")
        if join:
            session.state = self.JOINING
            session.join_task = self.spawn(session, "join", self._join(session))
        else:
            session.state = "connected"

    def spawn(self, session: S, what: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A task of the session (``join_task``, ``worker``): ended and re-raised by close."""
        name = f"sim-{self.SERVICE}-{what}-{session.session_id[:8]}"
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(_report_crash)
        return task

    async def _join(self, session: S) -> None:
        try:
            link = await self.media.join(self.room_spec(session), self.hooks(session))
        except JoinFailed as exc:
            log.warning("simulated avatar cannot join %s: %s", session.room, exc)
            await self.close(session, "expired", self.join_failed(session, exc))
            return
        if session.state != self.JOINING:  # stopped while joining
            await link.leave()
            return
        session.link = link
        session.state = "connected"
        self.ledger.record_session(self.SERVICE, session.session_id, "connected")
        self.joined(session, link)

    async def bounce_avatar(self, session_id: str, away: float) -> None:
        """The avatar leaves the room and comes back ``away`` seconds later (tests)."""
        session = self.sessions[session_id]
        worker, session.worker = session.worker, None
        await cancel_and_wait(worker)
        if session.link is not None:
            link, session.link = session.link, None
            session.state = self.JOINING
            await link.leave()
        await self.clock.sleep_until(self.now() + away)
        if session.state == self.JOINING:
            await self._join(session)

    async def close(self, session: S, kind: SessionEnd, reason: str) -> None:
        """End the session (once): tasks end, the avatar says goodbye and leaves, room closes."""
        if session.state == "closed":
            return
        was, session.state = session.state, "closed"
        if session.started is not None:
            session.duration_s = self.now() - session.started
        self.ended(session, reason)
        self.ledger.record_session(self.SERVICE, session.session_id, kind, reason)
        log.info("sim %s session %s closed: %s", self.SERVICE, session.session_id[:8], reason)
        try:
            await cancel_and_wait(session.join_task, session.worker)
        finally:  # the room is left and closed even when a task of the session had crashed
            if session.link is not None:
                link, session.link = session.link, None
                await self.farewell(session, link)
                await link.leave()
            if self.closes_room(session, was):
                await self.media.close_room(session.room)

    async def aclose(self) -> None:
        """Close every session; what went wrong in any of them is raised after the last."""

        async def stop(session: S) -> None:
            await self.close(session, "stopped", self.SHUTDOWN_REASON)

        await for_each(list(self.sessions.values()), stop)


def _report_crash(task: asyncio.Task[None]) -> None:
    """Say at once that a session's task died; :meth:`FakeService.close` raises it again."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error(
            "%s crashed (raised again when its session closes)", task.get_name(), exc_info=error
        )
