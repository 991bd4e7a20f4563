"""The HTTP transport shared by the provider clients: one owned aiohttp session, a timeout on
every call, JSON in and out, retries per :mod:`bridge.providers.rest.retry`.

A failure to get any answer becomes a :class:`~bridge.errors.TransportError` saying whether
the request may have reached the server (``sent``).  What an answer *means* (envelopes, error
codes) is not decided here: each client passes an ``interpret`` function (its provider's
:meth:`~bridge.providers.rest.errors.ErrorMap.interpret`) that turns a :class:`Reply` into
data or raises an :class:`~bridge.errors.ApiError`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Self

import aiohttp

from bridge.backoff import Backoff, Retrying
from bridge.errors import RemoteError, TransportError
from bridge.providers.rest.retry import REST_BACKOFF, should_retry, wait_before_retry

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer as it came: for ``interpret`` to read."""

    status: int
    body: Any  # parsed JSON, or None when the body was empty or not JSON
    text: str  # the raw body, for messages when it is not JSON (truncated)
    headers: Mapping[str, str]
    endpoint: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


Interpret = Callable[[Reply], Any]
HttpMethod = Literal["GET", "POST"]


class RestClient:
    """JSON-over-HTTP with timeouts and bounded retries.  Use as an async context manager."""

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        timeout: float,
        retry_deadline: float,
        interpret: Interpret,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry_deadline = retry_deadline
        self._interpret = interpret
        self._backoff = backoff or REST_BACKOFF
        self._rng = rng
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"Accept": "application/json", "User-Agent": "heygen-bridge"},
                timeout=aiohttp.ClientTimeout(total=None),  # asyncio.timeout() bounds each call
            )
        return self._session

    async def call(
        self,
        method: HttpMethod,
        path: str,
        *,
        endpoint: str,
        headers: Mapping[str, str],
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        idempotent: bool,
    ) -> Any:
        """One logical call: retried while retryable and the deadline allows."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_deadline
        retrying = Retrying(self._backoff, self._rng)
        while True:
            try:
                reply = await self._once(method, path, endpoint, headers, json_body, params)
                return self._interpret(reply)
            except RemoteError as exc:
                if not should_retry(exc, idempotent=idempotent):
                    raise
                delay = wait_before_retry(exc, retrying.failed())
                if loop.time() + delay > deadline:
                    raise
                log.warning(
                    "%s %s failed (%s); retry %d in %.2f s",
                    self.provider,
                    endpoint,
                    exc,
                    retrying.failures,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _once(
        self,
        method: HttpMethod,
        path: str,
        endpoint: str,
        headers: Mapping[str, str],
        json_body: Any,
        params: Mapping[str, str] | None,
    ) -> Reply:
        url = self.base_url + path
        data = None if json_body is None else json.dumps(json_body)
        send_headers = dict(headers)
        if data is not None:
            send_headers["Content-Type"] = "application/json"
        try:
            async with asyncio.timeout(self.timeout):
                async with self._http().request(
                    method, url, data=data, params=params, headers=send_headers
                ) as resp:
                    raw = await resp.read()
                    status, resp_headers = resp.status, dict(resp.headers)
        except TimeoutError:
            raise self._transport(endpoint, f"no answer within {self.timeout:g} s", True) from None
        except aiohttp.ClientError as exc:
            raise self._transport(endpoint, *self._what_failed(exc)) from exc
        text = raw.decode("utf-8", "replace")
        try:
            body = json.loads(text) if text.strip() else None
        except ValueError:
            body = None
        return Reply(
            status=status, body=body, text=text[:300], headers=resp_headers, endpoint=endpoint
        )

    def _what_failed(self, exc: aiohttp.ClientError) -> tuple[str, bool]:
        """What went wrong, and whether the request may have reached the server (``sent``)."""
        name = type(exc).__name__
        # ClientConnectorError is a ClientOSError: it must be told apart first.
        if isinstance(exc, aiohttp.ClientConnectorError):
            return f"cannot connect to {self.base_url} ({exc.os_error})", False
        if isinstance(
            exc,
            aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientOSError,
        ):
            return f"connection lost ({name})", True
        return f"HTTP failure ({name}: {exc})", True

    def _transport(self, endpoint: str, what: str, sent: bool) -> TransportError:
        return TransportError(
            f"{self.provider} {endpoint}: {what}",
            provider=self.provider,
            endpoint=endpoint,
            sent=sent,
        )
