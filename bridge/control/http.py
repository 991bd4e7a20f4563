"""The control API on 127.0.0.1:8765 (by default): one aiohttp app, assembled here.

Its routes (:mod:`~bridge.control.openapi` describes each, ``GET /v1/openapi.json`` serves it):

- speech and queue, state and snapshot: :mod:`~bridge.control.routes` (bodies read by
  :mod:`~bridge.control.bodies`);
- presets: :mod:`~bridge.control.presets`; probes: :mod:`~bridge.control.health`;
  ``/metrics``: :mod:`~bridge.control.metrics`;
- the ``routes`` others add: the WebSocket hub (``/v1/ws``), the panel (``/``,
  ``/static/*``), the MJPEG preview.

Every request passes, outermost first, :func:`~bridge.control.problems.problems_middleware`
(the one error boundary: every refusal JSON ``{error, detail}``) and the
:class:`~bridge.control.guard.Guard` (Host, token, other sites' pages, CORS) — the added
routes too.  Listening beyond loopback requires a token (``HEYGEN_BRIDGE_TOKEN``); without
one the server refuses to start (:class:`ConfigError`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from bridge.config import ControlConfig, PresetConfig, Secret
from bridge.control import openapi
from bridge.control.guard import TOKEN_ENV, Guard, is_loopback
from bridge.control.health import HealthRoutes
from bridge.control.metrics import Metrics
from bridge.control.presets import PresetRoutes
from bridge.control.problems import MAX_BODY, ControlStats, problems_middleware
from bridge.control.queue import SpeechQueue
from bridge.control.routes import Routes
from bridge.errors import ConfigError
from bridge.eventbus import EventBus

__all__ = ["HANDLER_ARGS", "MAX_BODY", "TOKEN_ENV", "ControlServer", "is_loopback"]

log = logging.getLogger(__name__)

# The request line may be as long as a body (Stream Deck sends text in the URL: 2000
# characters of CJK are 18 000 bytes percent-encoded); past it aiohttp's parser answers a
# plain-text 400 before any route sees the request.
HANDLER_ARGS: dict[str, Any] = {"max_line_size": MAX_BODY}

StatusFn = Callable[[], dict[str, Any]]
SnapshotJpegFn = Callable[[], Awaitable[bytes]]


class ControlServer:
    """The API over the bridge's queue and status.  ``app()`` builds the aiohttp app (tests
    serve it themselves); ``start()``/``stop()`` listen on ``cfg.host:cfg.port`` (port 0: the
    system picks one, then in :attr:`port`)."""

    def __init__(
        self,
        cfg: ControlConfig,
        *,
        queue: SpeechQueue,
        status: StatusFn,
        snapshot_jpeg: SnapshotJpegFn,
        token: Secret | None,
        presets: Mapping[str, PresetConfig],
        bus: EventBus,
        routes: Sequence[web.RouteDef] = (),
    ) -> None:
        if not is_loopback(cfg.host) and token is None:
            raise ConfigError(
                [
                    f"control.host: {cfg.host!r} is reachable from other machines; set "
                    f"{TOKEN_ENV} (clients then send it as a Bearer token) or bind 127.0.0.1"
                ]
            )
        self.cfg = cfg
        self.stats = ControlStats()
        self._queue = queue
        self._status = status
        self._snapshot_jpeg = snapshot_jpeg
        self._presets = dict(presets)
        self._bus = bus
        self._extra = list(routes)
        self._guard = Guard(cfg, token)
        self._runner: web.AppRunner | None = None
        self.port = cfg.port

    def set_presets(self, presets: Mapping[str, PresetConfig]) -> None:
        """Replace the presets (a config reload); the routes serve the new ones at once."""
        self._presets.clear()
        self._presets.update(presets)

    def snapshot(self) -> dict[str, Any]:
        """The API's part of status (``control``): refusals by status, unexpected errors."""
        return self.stats.snapshot()

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[problems_middleware(self.stats), self._guard.middleware],
            client_max_size=MAX_BODY,
        )
        app.on_response_prepare.append(self._on_response_prepare)
        metrics = Metrics(status=self._status, queue=self._queue, control=self.stats, bus=self._bus)
        app.cleanup_ctx.append(metrics.feed)
        app.add_routes(
            [
                *Routes(
                    queue=self._queue,
                    status=self._status,
                    snapshot_jpeg=self._snapshot_jpeg,
                    control=self.snapshot,
                ).routes(),
                *PresetRoutes(queue=self._queue, presets=self._presets).routes(),
                *HealthRoutes(status=self._status).routes(),
                *metrics.routes(),
                *openapi.routes(),
                *self._extra,
            ]
        )
        return app

    async def _on_response_prepare(
        self, request: web.Request, response: web.StreamResponse
    ) -> None:
        self._guard.on_response_prepare(request, response)

    async def start(self) -> None:
        self._runner = web.AppRunner(
            self.app(), access_log=None, handle_signals=False, **HANDLER_ARGS
        )
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.cfg.host, self.cfg.port).start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise ConfigError(
                [f"control.port: cannot listen on {self.cfg.host}:{self.cfg.port}: {exc.strerror}"]
            ) from None
        self.port = self._runner.addresses[0][1]
        log.info("control API on http://%s:%d", self.cfg.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
