"""The control API on 127.0.0.1:8765 (by default).

``POST /v1/speak``  ``{"text": ..., "mode": "repeat"|"chat"}`` → 202 ``{"id", "state", "position"}``
``GET  /v1/status`` the bridge's state as JSON
``GET  /v1/snapshot.jpg`` the frame the camera shows now

Bodies are read as JSON whatever their Content-Type says (Stream Deck and Companion plugins
label bodies loosely).  Every refusal is JSON ``{"error", "detail"}``: ``error`` is a stable
code a program can test (:data:`ERROR_CODES`), ``detail`` names the cause for a person.

- 400 ``bad_request``: the body is empty, not JSON, not an object, has an unknown field or a
  bad ``text``/``mode``; the queue is full; a snapshot while the camera is disabled
- 401 ``unauthorized``: a token is configured and the request has none, or a wrong one
- 404 ``not_found``, 405 ``method_not_allowed``: no such endpoint, or not with that method
- 413 ``body_too_large``: a body over :data:`MAX_BODY` bytes

Listening beyond loopback requires a token (``HEYGEN_BRIDGE_TOKEN``), sent as
``Authorization: Bearer <token>`` or ``?token=``; without one the server refuses to start.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web

from bridge.config import ControlConfig, Secret
from bridge.control.queue import SpeechQueue
from bridge.errors import BadInput, ConfigError

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
TOKEN_ENV = "HEYGEN_BRIDGE_TOKEN"
ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}

StatusFn = Callable[[], dict[str, Any]]
SnapshotJpegFn = Callable[[], Awaitable[bytes]]


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps the API on this machine (127.0.0.0/8, ::1,
    localhost); anything else, including a hostname or "" (every interface), is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> web.Response:
    error = ERROR_CODES.get(status) or HTTPStatus(status).phrase.lower().replace(" ", "_")
    return web.json_response({"error": error, "detail": detail}, status=status, headers=headers)


def _refusal(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's own refusals (routing, body size), with a detail that names the cause."""
    where = f"{request.method} {request.path}"
    if isinstance(exc, web.HTTPNotFound):
        return _error(404, f"{where}: no such endpoint (there are: {_endpoints(request.app)})")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods - {"HEAD"}))
        return _error(405, f"{where}: not allowed here; use {allowed}")
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return _error(413, f"body: larger than {MAX_BODY} bytes")
    return _error(exc.status, f"{where}: {exc.reason}")


def _endpoints(app: web.Application) -> str:
    """What the API serves, as ``METHOD /path`` (HEAD, which aiohttp adds to GET, left out)."""
    return ", ".join(
        f"{route.method} {route.resource.canonical}"
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    )


class ControlServer:
    def __init__(
        self,
        cfg: ControlConfig,
        *,
        queue: SpeechQueue,
        status: StatusFn,
        snapshot_jpeg: SnapshotJpegFn,
        token: Secret | None,
    ) -> None:
        if not is_loopback(cfg.host) and token is None:
            raise ConfigError(
                [
                    f"control.host: {cfg.host!r} is reachable from other machines; set "
                    f"{TOKEN_ENV} (clients then send it as a Bearer token) or bind 127.0.0.1"
                ]
            )
        self.cfg = cfg
        self._queue = queue
        self._status = status
        self._snapshot_jpeg = snapshot_jpeg
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
        refused = self._unauthorized(request)
        if refused is not None:
            return _error(401, refused, headers={"WWW-Authenticate": "Bearer"})
        try:
            return await handler(request)
        except BadInput as exc:
            return _error(400, str(exc))
        except web.HTTPException as exc:
            return _refusal(request, exc)

    def _unauthorized(self, request: web.Request) -> str | None:
        """Why the request may not pass (None: it may)."""
        if self._token is None:
            return None
        given = _given_token(request)
        how = f"send {TOKEN_ENV}'s value as 'Authorization: Bearer <token>' or '?token=<token>'"
        if not given:
            return f"token: missing; {how}"
        if not hmac.compare_digest(given.encode(), self._token.reveal().encode()):
            return f"token: wrong; {how}"
        return None

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
        jpeg = await self._snapshot_jpeg()
        return web.Response(
            body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"}
        )


def _given_token(request: web.Request) -> str:
    """The token from ``Authorization: Bearer <token>`` (the scheme in any case, as RFC 7235
    allows), else from ``?token=``; another scheme's credentials count as a wrong token."""
    header = request.headers.get("Authorization", "").strip()
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer":
        header = credentials.strip()
    return header or request.query.get("token", "")


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
