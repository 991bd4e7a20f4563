"""Fault injection for the simulators, switchable from tests and over HTTP (``/_sim/faults``).

A fault matches requests by path (``None`` = every API path) and does one of:
``latency`` (delay, then answer normally), ``status`` (answer with an HTTP status and a
provider error code instead of running the endpoint), ``drop`` (close the connection without
an answer).  ``times`` bounds how often it fires (``None`` = until cleared).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from aiohttp.typedefs import Middleware

from bridge.sim.ledger import Ledger, RequestRecord

FaultKind = Literal["latency", "status", "drop"]
# The provider error code an answer carried, for the ledger.
CODE_KEY = web.ResponseKey("code", int)


@dataclass
class Fault:
    kind: FaultKind
    path: str | None = None
    status: int = 503
    code: int | None = None
    message: str = "injected fault"
    delay: float = 0.0
    times: int | None = 1
    retry_after: float | None = None

    def matches(self, path: str) -> bool:
        return (self.path is None or self.path == path) and (self.times is None or self.times > 0)


class FaultPlan:
    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        self._faults.append(fault)
        return fault

    def clear(self) -> None:
        self._faults.clear()

    def take(self, path: str) -> list[Fault]:
        """The faults that fire for this request (each use counts against ``times``)."""
        fired = [f for f in self._faults if f.matches(path)]
        for fault in fired:
            if fault.times is not None:
                fault.times -= 1
        return fired


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def auth_kind(request: web.Request) -> str:
    if request.headers.get("Authorization", "").startswith("Bearer "):
        return "bearer"
    if request.headers.get("x-api-key"):
        return "api_key"
    return "none"


def middleware(
    *, service_of: Callable[[str], str | None], faults: FaultPlan, ledger: Ledger
) -> Middleware:
    """Apply faults to API paths and record every API request, with its body, in the ledger."""

    @web.middleware
    async def apply(request: web.Request, handler: Handler) -> web.StreamResponse:
        service = service_of(request.path)
        if service is None:
            return await handler(request)
        body = await _body_of(request)  # aiohttp keeps it: the handler reads it again
        response: web.StreamResponse | None = None
        for fault in faults.take(request.path):
            if fault.kind == "latency":
                await asyncio.sleep(fault.delay)
            elif fault.kind == "drop":
                _record(ledger, service, request, body, status=0, code=None)
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError  # aiohttp ends the handler quietly
            elif response is None:
                response = error_response(fault.status, fault.code, fault.message)
                if fault.retry_after is not None:
                    response.headers["Retry-After"] = f"{fault.retry_after:g}"
        if response is None:
            response = await handler(request)
        code = response.get(CODE_KEY)
        _record(ledger, service, request, body, status=response.status, code=code)
        return response

    return apply


def error_response(status: int, code: int | None, message: str) -> web.Response:
    body: dict[str, object] = {"code": code, "message": message}
    response = web.Response(status=status, text=json.dumps(body), content_type="application/json")
    if code is not None:
        response[CODE_KEY] = code
    return response


async def _body_of(request: web.Request) -> Any:
    """The parsed JSON body; its text when it is not JSON; None when there is none."""
    if not request.body_exists:
        return None
    text = (await request.read()).decode("utf-8", errors="replace")
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _record(
    ledger: Ledger,
    service: str,
    request: web.Request,
    body: Any,
    *,
    status: int,
    code: int | None,
) -> None:
    ledger.record_request(
        RequestRecord(
            at=time.time(),
            service=service,
            method=request.method,
            path=request.path,
            status=status,
            code=code,
            auth=auth_kind(request),
            body=body,
            query=dict(request.query),
        )
    )
