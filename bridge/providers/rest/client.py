"""The HTTP transport shared by the provider clients: one owned aiohttp session, a timeout on
every call, JSON in and out, retries per :mod:`bridge.providers.rest.retry`.

What a provider's answer *means* (envelopes, error codes) is not decided here: each client
passes an ``interpret`` function that turns a :class:`Reply` into data or raises an
:class:`~bridge.errors.ApiError`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Self

import aiohttp

from bridge.errors import RemoteError, TransportError
from bridge.providers.rest.retry import Backoff, should_retry, wait_before_retry

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any  # parsed JSON, or None when the body was empty or not JSON
    text: str  # the raw body, for messages when it is not JSON (truncated)
    headers: Mapping[str, str]
    endpoint: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


Interpret = Callable[[Reply], Any]


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
        self._backoff = backoff or Backoff()
        self._rng = rng or random.Random()
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
        method: str,
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
        attempt = 0
        while True:
            try:
                reply = await self._once(method, path, endpoint, headers, json_body, params)
                return self._interpret(reply)
            except RemoteError as exc:
                if not should_retry(exc, idempotent=idempotent):
                    raise
                delay = wait_before_retry(exc, attempt, self._backoff, self._rng)
                if loop.time() + delay > deadline:
                    raise
                attempt += 1
                log.warning(
                    "%s %s failed (%s); retry %d in %.2f s",
                    self.provider,
                    endpoint,
                    exc,
                    attempt,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _once(
        self,
        method: str,
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
            raise self._transport(
                endpoint, f"no answer within {self.timeout:g} s", sent=True
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise self._transport(
                endpoint, f"cannot connect to {self.base_url} ({exc.os_error})", sent=False
            ) from exc
        except (
            aiohttp.ServerDisconnectedError,
            aiohttp.ClientPayloadError,
            aiohttp.ClientOSError,
        ) as exc:
            raise self._transport(
                endpoint, f"connection lost ({type(exc).__name__})", sent=True
            ) from exc
        except aiohttp.ClientError as exc:
            raise self._transport(
                endpoint, f"HTTP failure ({type(exc).__name__}: {exc})", sent=True
            ) from exc
        text = raw.decode("utf-8", "replace")
        try:
            body = json.loads(text) if text.strip() else None
        except ValueError:
            body = None
        return Reply(
            status=status, body=body, text=text[:300], headers=resp_headers, endpoint=endpoint
        )

    def _transport(self, endpoint: str, what: str, *, sent: bool) -> TransportError:
        return TransportError(
            f"{self.provider} {endpoint}: {what}",
            provider=self.provider,
            endpoint=endpoint,
            sent=sent,
        )
