"""The simulator process: HeyGen's and LiveAvatar's APIs on one local HTTP port.

Tests use :class:`Simulator` in-process (with a :class:`~bridge.sim.clock.ManualClock` when
they need to decide when time passes); users run ``heygen-bridge simulate``.  Besides the
provider APIs it serves a small admin surface for tests driving a separate process:
``GET /_sim/ledger``, ``GET /_sim/sessions``, ``POST /_sim/sessions/{id}/bounce``,
``/signal`` and ``/end`` (the service ends the session, with a reason),
``POST /_sim/faults`` (a :class:`~bridge.sim.faults.Fault` as JSON),
``DELETE /_sim/faults``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, Self

from aiohttp import web

from bridge.sim import DEFAULT_HEYGEN_KEY, DEFAULT_LIVEAVATAR_KEY
from bridge.sim.clock import Clock, WallClock
from bridge.sim.faults import Fault, FaultPlan, middleware
from bridge.sim.heygen import HeyGenLimits, HeyGenSim
from bridge.sim.ledger import Ledger
from bridge.sim.liveavatar import LiveAvatarLimits, LiveAvatarSim
from bridge.sim.media import MediaHost, NoMedia
from bridge.sim.service import FakeService, SimSession
from bridge.sim.tasks import cancel_and_wait, for_each
from bridge.synthetic.voice import tone


class Simulator:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        media: MediaHost | None = None,
        clock: Clock | None = None,
        heygen_keys: set[str] | None = None,
        heygen_limits: HeyGenLimits | None = None,
        liveavatar_keys: set[str] | None = None,
        liveavatar_limits: LiveAvatarLimits | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.ledger = Ledger()
        self.faults = FaultPlan()
        self.media: MediaHost = media or NoMedia()
        self.clock: Clock = clock or WallClock()
        self.heygen = HeyGenSim(
            ledger=self.ledger,
            media=self.media,
            api_keys=heygen_keys if heygen_keys is not None else {DEFAULT_HEYGEN_KEY},
            clock=self.clock,
            public_url=lambda: self.url,
            limits=heygen_limits,
        )
        self.liveavatar = LiveAvatarSim(
            ledger=self.ledger,
            media=self.media,
            api_keys=liveavatar_keys if liveavatar_keys is not None else {DEFAULT_LIVEAVATAR_KEY},
            clock=self.clock,
            limits=liveavatar_limits,
        )
        self.services: tuple[FakeService[Any], ...] = (self.heygen, self.liveavatar)
        self._runner: web.AppRunner | None = None
        self._watchers: list[asyncio.Task[None]] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _service_of(self, path: str) -> str | None:
        return next((s.SERVICE for s in self.services if s.owns(path)), None)

    def app(self) -> web.Application:
        recorder = middleware(service_of=self._service_of, faults=self.faults, ledger=self.ledger)
        app = web.Application(middlewares=[recorder])
        for service in self.services:
            app.add_routes(service.routes())
        app.add_routes(
            [
                web.get("/_sim/ledger", self._ledger),
                web.get("/_sim/sessions", self._sessions),
                web.post("/_sim/sessions/{session_id}/bounce", self._bounce),
                web.post("/_sim/sessions/{session_id}/signal", self._signal),
                web.post("/_sim/sessions/{session_id}/end", self._end),
                web.post("/_sim/faults", self._add_fault),
                web.delete("/_sim/faults", self._clear_faults),
            ]
        )
        return app

    async def start(self) -> Self:
        """Listen (``port`` 0 picks a free one, read back into ``port``) and start expiry."""
        runner = self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port).start()
        self.port = runner.addresses[0][1]
        self._watchers = [
            asyncio.create_task(service.watch(), name=f"sim-{service.SERVICE}-expiry")
            for service in self.services
        ]
        return self

    async def aclose(self) -> None:
        """Stop expiry, close every session, stop listening.

        A cancellation of ``aclose`` itself propagates; an expiry loop that had crashed raises
        its error here, after the sessions are closed and the port is released.
        """
        watchers, self._watchers = self._watchers, []
        try:
            await cancel_and_wait(*watchers)
        finally:
            try:
                await for_each(self.services, _close)
            finally:
                if self._runner is not None:
                    runner, self._runner = self._runner, None
                    await runner.cleanup()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _find(self, session_id: str) -> tuple[FakeService[Any], SimSession] | None:
        for service in self.services:
            session = service.sessions.get(session_id)
            if session is not None:
                return service, session
        return None

    async def _ledger(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.ledger.as_json())

    async def _sessions(self, request: web.Request) -> web.StreamResponse:
        """Every session the fakes know, with its state, room and what its avatar said."""
        return web.json_response(
            {s.SERVICE: [x.summary() for x in s.sessions.values()] for s in self.services}
        )

    async def _bounce(self, request: web.Request) -> web.StreamResponse:
        """The avatar leaves its room and comes back ``away`` seconds later."""
        session_id = request.match_info["session_id"]
        try:
            away = float(request.query.get("away", "2"))
        except ValueError:
            return web.json_response(
                {"error": "bad away", "detail": "seconds, a number"}, status=400
            )
        found = self._find(session_id)
        if found is None:
            return web.json_response({"error": "not found", "detail": session_id}, status=404)
        await found[0].bounce_avatar(session_id, away)
        return web.json_response({"bounced": session_id, "away": away})

    async def _signal(self, request: web.Request) -> web.StreamResponse:
        """The avatar plays a sine (``freq`` Hz, ``seconds``, ``level`` of full scale)."""
        session_id = request.match_info["session_id"]
        try:
            freq = float(request.query.get("freq", "440"))
            seconds = float(request.query.get("seconds", "3"))
            level = float(request.query.get("level", "0.5"))
        except ValueError:
            return web.json_response({"error": "bad signal", "detail": "numbers"}, status=400)
        found = self._find(session_id)
        if found is None or found[1].link is None:
            return web.json_response({"error": "no avatar", "detail": session_id}, status=404)
        found[1].link.play_signal(tone(freq, seconds, level=level), f"signal-{freq:g}")
        return web.json_response({"playing": freq, "seconds": seconds})

    async def _end(self, request: web.Request) -> web.StreamResponse:
        """The service ends the session as it would at a limit or a server-side fault:
        ``reason`` (LiveAvatar: a ``SessionEndReason`` such as ``NO_CREDITS``) is what its
        clients are told, and the ledger records it as expired."""
        session_id = request.match_info["session_id"]
        reason = request.query.get("reason", "SERVER_ERROR")
        found = self._find(session_id)
        if found is None:
            return web.json_response({"error": "not found", "detail": session_id}, status=404)
        await found[0].close(found[1], "expired", reason)
        return web.json_response({"ended": session_id, "reason": reason})

    async def _add_fault(self, request: web.Request) -> web.StreamResponse:
        try:
            raw: Any = await request.json()
            fault = Fault(**raw)
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": "bad fault", "detail": str(exc)}, status=400)
        self.faults.add(fault)
        return web.json_response(dataclasses.asdict(fault), status=201)

    async def _clear_faults(self, request: web.Request) -> web.StreamResponse:
        self.faults.clear()
        return web.json_response({"cleared": True})


async def _close(service: FakeService[Any]) -> None:
    await service.aclose()
