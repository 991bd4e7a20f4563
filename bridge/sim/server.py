"""The simulator process: HeyGen's and LiveAvatar's APIs on one local HTTP port.

Tests use :class:`Simulator` in-process; users run ``heygen-bridge simulate``.  Besides the
provider APIs it serves a small admin surface for tests driving a separate process:
``GET /_sim/ledger``, ``POST /_sim/faults`` (a :class:`~bridge.sim.faults.Fault` as JSON),
``DELETE /_sim/faults``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any, Self

from aiohttp import web

from bridge.sim import DEFAULT_HEYGEN_KEY, DEFAULT_LIVEAVATAR_KEY
from bridge.sim.faults import Fault, FaultPlan, middleware
from bridge.sim.heygen import HeyGenLimits, HeyGenSim
from bridge.sim.ledger import Ledger
from bridge.sim.liveavatar import LiveAvatarLimits, LiveAvatarSim
from bridge.sim.media import MediaHost, NoMedia
from bridge.synthetic.voice import tone


class Simulator:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        media: MediaHost | None = None,
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
        self.heygen = HeyGenSim(
            ledger=self.ledger,
            media=self.media,
            api_keys=heygen_keys if heygen_keys is not None else {DEFAULT_HEYGEN_KEY},
            limits=heygen_limits,
            public_host=host,
        )
        self.liveavatar = LiveAvatarSim(
            ledger=self.ledger,
            media=self.media,
            api_keys=liveavatar_keys if liveavatar_keys is not None else {DEFAULT_LIVEAVATAR_KEY},
            limits=liveavatar_limits,
        )
        self._runner: web.AppRunner | None = None
        self._watchers: list[asyncio.Task[None]] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _service_of(self, path: str) -> str | None:
        if self.heygen.owns(path):
            return "heygen"
        if self.liveavatar.owns(path):
            return "liveavatar"
        return None

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[
                middleware(service_of=self._service_of, faults=self.faults, ledger=self.ledger)
            ]
        )
        app.add_routes(self.heygen.routes())
        app.add_routes(self.liveavatar.routes())
        app.add_routes(
            [
                web.get("/_sim/ledger", self._ledger),
                web.get("/_sim/sessions", self._sessions),
                web.post("/_sim/sessions/{session_id}/bounce", self._bounce),
                web.post("/_sim/sessions/{session_id}/signal", self._signal),
                web.post("/_sim/faults", self._add_fault),
                web.delete("/_sim/faults", self._clear_faults),
            ]
        )
        return app

    async def start(self) -> Self:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]
        self._watchers.append(asyncio.create_task(self.heygen.watch(), name="sim-heygen-expiry"))
        self._watchers.append(
            asyncio.create_task(self.liveavatar.watch(), name="sim-liveavatar-expiry")
        )
        return self

    async def aclose(self) -> None:
        for task in self._watchers:
            task.cancel()
        for task in self._watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._watchers.clear()
        await self.heygen.aclose()
        await self.liveavatar.aclose()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _ledger(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.ledger.as_json())

    async def _sessions(self, request: web.Request) -> web.StreamResponse:
        """Every session the fakes know, with its state, room and what its avatar said."""
        return web.json_response(
            {
                "heygen": [
                    {
                        "session_id": s.session_id,
                        "state": s.state,
                        "room": s.room,
                        "history": list(s.history),
                    }
                    for s in self.heygen.sessions.values()
                ],
                "liveavatar": [
                    {
                        "session_id": s.session_id,
                        "state": s.state,
                        "room": s.room,
                        "history": list(s.history),
                    }
                    for s in self.liveavatar.sessions.values()
                ],
            }
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
        for service in (self.heygen, self.liveavatar):
            if session_id in service.sessions:
                await service.bounce_avatar(session_id, away)
                return web.json_response({"bounced": session_id, "away": away})
        return web.json_response({"error": "not found", "detail": session_id}, status=404)

    async def _signal(self, request: web.Request) -> web.StreamResponse:
        """The avatar plays a sine (``freq`` Hz, ``seconds``, ``level`` of full scale)."""
        session_id = request.match_info["session_id"]
        try:
            freq = float(request.query.get("freq", "440"))
            seconds = float(request.query.get("seconds", "3"))
            level = float(request.query.get("level", "0.5"))
        except ValueError:
            return web.json_response({"error": "bad signal", "detail": "numbers"}, status=400)
        for service in (self.heygen, self.liveavatar):
            session = service.sessions.get(session_id)
            if session is not None and session.link is not None:
                session.link.play_signal(tone(freq, seconds, level=level), f"signal-{freq:g}")
                return web.json_response({"playing": freq, "seconds": seconds})
        return web.json_response({"error": "no avatar", "detail": session_id}, status=404)

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
