"""Probes for supervisors (systemd, Docker, Kubernetes, uptime checkers); no token needed.

``GET /healthz``: 200 whenever the process and its event loop answer — whatever the avatar
session is doing (a session that is down is the bridge's ordinary work, not a reason to
restart it).  ``GET /readyz``: 200 when a session is live and the camera writes (or the camera
is disabled); else 503 ``{"error": "not_ready", "detail": <what is not ready>}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from bridge.control.problems import error_response

READY_CAMERA_STATES = frozenset({"writing", "disabled"})


class HealthRoutes:
    def __init__(self, *, status: Callable[[], dict[str, Any]]) -> None:
        self._status = status
        self._started = time.monotonic()

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/healthz", self.healthz), web.get("/readyz", self.readyz)]

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        # Reads nothing of the bridge on purpose: it must answer while the rest is down.
        return web.json_response(
            {"status": "ok", "uptime_s": round(time.monotonic() - self._started, 1)}
        )

    async def readyz(self, request: web.Request) -> web.StreamResponse:
        status = self._status()
        session = (status.get("session") or {}).get("state", "unknown")
        camera = (status.get("camera") or {}).get("state", "unknown")
        waiting = []
        if session != "live":
            waiting.append(f"session: {session} (not live)")
        if camera not in READY_CAMERA_STATES:
            waiting.append(f"camera: {camera} (not writing)")
        if waiting:
            return error_response(503, "; ".join(waiting))
        return web.json_response({"ready": True, "session": session, "camera": camera})
