"""Every refusal of the control API is JSON ``{"error", "detail"}``: ``error`` a stable code a
program can test (:data:`ERROR_CODES`), ``detail`` the cause for a person (never a secret).

=====  ======================  ==============================================================
400    ``bad_request``         the body or a field is malformed (:class:`BadInput`)
401    ``unauthorized``        a token is configured and the request has none, or a wrong one
403    ``forbidden``           a foreign ``Host``, or a page of another origin
404    ``not_found``           no such endpoint, preset or queue item (:class:`NotFound`)
405    ``method_not_allowed``  not with that method
409    ``conflict``            nothing to act on: no live session, the camera disabled
413    ``body_too_large``      a body over :data:`MAX_BODY` bytes
429    ``busy``                the queue is full or the source over its rate; ``Retry-After``
500    ``internal_error``      a bug: logged with its traceback, counted in status
502    ``provider_error``      the avatar provider refused or failed
503    ``not_ready``           ``/readyz``: no live session, or the camera not writing
=====  ======================  ==============================================================

:func:`problems_middleware` is the API's one error boundary: it turns the bridge's errors
and aiohttp's own refusals into these answers, and anything unexpected into a 500 counted in
:class:`ControlStats` (``status.control.errors``) — the request fails, the daemon goes on.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aiohttp import web

from bridge.errors import BadInput, Busy, NotFound, NotLive, RemoteError

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    429: "busy",
    500: "internal_error",
    502: "provider_error",
    503: "not_ready",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Conflict(Exception):
    """The request is fine but there is nothing to act on (HTTP 409): e.g. a snapshot while
    the camera is disabled."""


def error_code(status: int) -> str:
    return ERROR_CODES.get(status) or HTTPStatus(status).phrase.lower().replace(" ", "_")


def error_response(status: int, detail: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        {"error": error_code(status), "detail": detail}, status=status, headers=headers
    )


def retry_after(seconds: float) -> str:
    """``Retry-After`` in whole seconds, at least 1 (clients read 0 as "now")."""
    return str(max(1, math.ceil(seconds)))


def describe(exc: Exception) -> tuple[int, str, dict[str, str]] | None:
    """``(status, detail, headers)`` for an error the bridge raises on purpose at a client
    (the WebSocket hub answers with the same codes); None for anything else."""
    if isinstance(exc, BadInput):
        return 400, str(exc), {}
    if isinstance(exc, NotFound):
        return 404, str(exc), {}
    if isinstance(exc, Busy):
        return 429, str(exc), {"Retry-After": retry_after(exc.retry_after)}
    if isinstance(exc, NotLive):
        return 409, str(exc) or "session: not live; wait until it is (GET /v1/state)", {}
    if isinstance(exc, Conflict):
        return 409, str(exc), {}
    if isinstance(exc, RemoteError):
        return 502, str(exc), {}
    return None


@dataclass
class ControlStats:
    """The API's part of ``/v1/status`` (``control``): refusals by status, unexpected errors."""

    refused: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    last_error: str | None = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "errors": self.errors,
            "last_error": self.last_error,
            "refused": {str(status): n for status, n in sorted(self.refused.items())},
        }


def problems_middleware(stats: ControlStats) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The middleware of the module docstring, counting into ``stats``."""

    @web.middleware
    async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = _refusal(request, exc)
        except Exception as exc:
            known = describe(exc)
            if known is None:
                response = _internal_error(request, exc, stats)
            else:
                status, detail, headers = known
                response = error_response(status, detail, headers)
        if response.status >= 400:
            stats.refused[response.status] += 1
        return response

    return problems


def _internal_error(request: web.Request, exc: Exception, stats: ControlStats) -> web.Response:
    """The documented boundary: a bug in a route fails that request, not the daemon.  The
    answer names the exception's type only (its message might carry anything)."""
    stats.errors += 1
    stats.last_error = f"{type(exc).__name__} in {request.method} {request.path}"
    log.error("control API: %s", stats.last_error, exc_info=exc)
    return error_response(
        500, f"{type(exc).__name__}: a bug in the bridge (logged; please report it)"
    )


def _refusal(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's own refusals (routing, body size), with a detail that names the cause."""
    where = f"{request.method} {request.path}"
    if isinstance(exc, web.HTTPNotFound):
        return error_response(404, f"{where}: no such endpoint (there are: {endpoints(request)})")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods - {"HEAD"}))
        return error_response(405, f"{where}: not allowed here; use {allowed}")
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return error_response(413, f"body: larger than {MAX_BODY} bytes")
    return error_response(exc.status, f"{where}: {exc.reason}")


def endpoints(request: web.Request) -> str:
    """What the API serves, as ``METHOD /path`` (HEAD, which aiohttp adds to GET, left out)."""
    return ", ".join(
        f"{route.method} {route.resource.canonical}"
        for route in request.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    )
