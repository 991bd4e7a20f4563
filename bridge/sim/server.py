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

from bridge.sim import DEFAULT_HEYGEN_KEY
from bridge.sim.faults import Fault, FaultPlan, middleware
from bridge.sim.heygen import HeyGenLimits, HeyGenSim
from bridge.sim.ledger import Ledger
from bridge.sim.media import MediaHost, NoMedia


class Simulator:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        media: MediaHost | None = None,
        heygen_keys: set[str] | None = None,
        heygen_limits: HeyGenLimits | None = None,
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
        self._runner: web.AppRunner | None = None
        self._watchers: list[asyncio.Task[None]] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _service_of(self, path: str) -> str | None:
        if self.heygen.owns(path):
            return "heygen"
        return None

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[
                middleware(service_of=self._service_of, faults=self.faults, ledger=self.ledger)
            ]
        )
        app.add_routes(self.heygen.routes())
        app.add_routes(
            [
                web.get("/_sim/ledger", self._ledger),
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
        return self

    async def aclose(self) -> None:
        for task in self._watchers:
            task.cancel()
        for task in self._watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._watchers.clear()
        await self.heygen.aclose()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _ledger(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.ledger.as_json())

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
