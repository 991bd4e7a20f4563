"""The control API on 127.0.0.1:8765 (by default).

``POST /v1/speak``  ``{"text": ..., "mode": "repeat"|"chat"}`` → 202 ``{"id", "state", "position"}``
``GET  /v1/status`` the bridge's state as JSON
``GET  /v1/snapshot.jpg`` the frame the camera shows now

Bodies are read as JSON whatever their Content-Type says (Stream Deck and Companion plugins
label bodies loosely).  Every error is JSON ``{"error", "detail"}`` with a 4xx/5xx status.
Listening beyond loopback requires a token (``HEYGEN_BRIDGE_TOKEN``), sent as
``Authorization: Bearer <token>`` or ``?token=``.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bridge.config import ControlConfig, Secret
from bridge.control.queue import SpeechQueue
from bridge.errors import BadInput, ConfigError

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024

StatusFn = Callable[[], dict[str, Any]]
SnapshotFn = Callable[[], Awaitable[bytes]]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _error(status: int, error: str, detail: str) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status)


class ControlServer:
    def __init__(
        self,
        cfg: ControlConfig,
        *,
        queue: SpeechQueue,
        status: StatusFn,
        snapshot: SnapshotFn,
        token: Secret | None,
    ) -> None:
        if not is_loopback(cfg.host) and token is None:
            raise ConfigError(
                [
                    f"control.host: {cfg.host!r} is reachable from other machines; set "
                    "HEYGEN_BRIDGE_TOKEN (clients then send it as a Bearer token) or bind 127.0.0.1"
                ]
            )
        self.cfg = cfg
        self._queue = queue
        self._status = status
        self._snapshot = snapshot
        self._token = token
        self._runner: web.AppRunner | None = None
        self.port = cfg.port

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_BODY)
        app.add_routes(
            [
                web.post("/v1/speak", self._speak),
                web.get("/v1/status", self._status_route),
                web.get("/v1/snapshot.jpg", self._snapshot_route),
            ]
        )
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.cfg.host, self.cfg.port).start()
        except OSError as exc:
            await self._runner.cleanup()
            raise ConfigError(
                [f"control.port: cannot listen on {self.cfg.host}:{self.cfg.port}: {exc.strerror}"]
            ) from None
        self.port = self._runner.addresses[0][1]
        log.info("control API on http://%s:%d", self.cfg.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if self._token is not None and not self._authorized(request):
            return _error(
                401, "unauthorized", "send the control token as 'Authorization: Bearer …'"
            )
        try:
            return await handler(request)
        except BadInput as exc:
            return _error(400, "bad_request", str(exc))
        except web.HTTPException as exc:
            return _error(exc.status, exc.reason.lower().replace(" ", "_"), exc.text or exc.reason)

    def _authorized(self, request: web.Request) -> bool:
        assert self._token is not None
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        given = given or request.query.get("token", "")
        return hmac.compare_digest(given.encode(), self._token.reveal().encode())

    async def _speak(self, request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        unknown = set(body) - {"text", "mode"}
        if unknown:
            raise BadInput(sorted(unknown)[0], "unknown field (allowed: text, mode)")
        accepted = self._queue.submit(body.get("text"), body.get("mode", "repeat"))
        position = self._queue.snapshot()["pending"]
        return web.json_response(
            {"id": accepted.id, "state": accepted.state, "position": position}, status=202
        )

    async def _status_route(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self._status())

    async def _snapshot_route(self, request: web.Request) -> web.StreamResponse:
        jpeg = await self._snapshot()
        return web.Response(
            body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"}
        )


async def _json_object(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        raise BadInput("body", 'is empty; send JSON like {"text": "Hello"}')
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadInput("body", "is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadInput("body", 'must be a JSON object like {"text": "Hello"}')
    return body
