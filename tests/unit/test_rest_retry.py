"""Retrying remote calls: what is tried again, how long the bridge waits, and what a call
against a real (loopback) HTTP server does when the server fails."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bridge.errors import (
    ApiError,
    ApiFault,
    InvalidRequest,
    RateLimited,
    RemoteError,
    TransportError,
)
from bridge.providers.heygen.errors import ERRORS
from bridge.providers.rest.client import RestClient
from bridge.providers.rest.retry import REST_BACKOFF, should_retry, wait_before_retry


def api_error(status: int, *, retryable: bool | None = None) -> ApiError:
    fault = ApiFault(status=status, code=None, message="")
    return ApiError(fault, provider="P", endpoint="e", retryable=retryable)


def transport(*, sent: bool) -> TransportError:
    return TransportError("lost", provider="P", endpoint="e", sent=sent)


def rate_limited(retry_after: float | None) -> RateLimited:
    fault = ApiFault(status=429, code=None, message="")
    return RateLimited(fault, provider="P", endpoint="e", retry_after=retry_after)


# --- which failures are tried again -------------------------------------------------------------


@pytest.mark.parametrize("idempotent", [True, False])
@pytest.mark.parametrize(
    ("failure", "retried"),
    [
        (api_error(400), False),  # a 4xx is final
        (InvalidRequest(ApiFault(422, None, ""), provider="P", endpoint="e"), False),
        (api_error(503, retryable=True), True),  # the server says it did not act
        (rate_limited(None), True),
        (transport(sent=False), True),  # the request never left: safe even to create
    ],
)
def test_retry_follows_the_answer(failure: RemoteError, retried: bool, idempotent: bool) -> None:
    assert should_retry(failure, idempotent=idempotent) is retried


def test_a_lost_answer_is_retried_only_for_an_idempotent_call() -> None:
    assert should_retry(transport(sent=True), idempotent=True)
    assert not should_retry(transport(sent=True), idempotent=False)  # it might act twice


def test_retry_after_is_honoured_when_longer_than_the_backoff() -> None:
    assert wait_before_retry(rate_limited(3.0), planned=0.5) == 3.0
    assert wait_before_retry(rate_limited(0.1), planned=0.5) == 0.5
    assert wait_before_retry(rate_limited(None), planned=0.5) == 0.5
    assert wait_before_retry(api_error(503, retryable=True), planned=0.5) == 0.5


class Extremes(random.Random):
    """Draws the lowest or the highest value a range allows."""

    def __init__(self, *, high: bool) -> None:
        super().__init__()
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


def test_the_waits_double_to_a_cap_with_full_jitter() -> None:
    longest = [REST_BACKOFF.delay(n, Extremes(high=True)) for n in range(1, 8)]
    assert longest == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 4.0, 4.0])
    assert {REST_BACKOFF.delay(n, Extremes(high=False)) for n in range(1, 8)} == {0.0}


# --- a call against a server that fails ---------------------------------------------------------


@dataclass
class Script:
    """What the server answers, one entry per request; the last one repeats."""

    answers: list[Answer]
    seen: int = 0
    bodies: list[bytes] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.read())
        answer = self.answers[min(self.seen, len(self.answers) - 1)]
        self.seen += 1
        return answer(request)


Answer = Callable[[web.Request], web.Response]


def status(code: int, body: Any = None, **headers: str) -> Answer:
    return lambda _request: web.json_response(body or {}, status=code, headers=headers)


def ok(data: Any) -> Answer:
    return status(200, {"code": 100, "data": data})


def hang_up(request: web.Request) -> web.Response:
    """Read the request, then drop the connection: the client cannot know if we acted."""
    assert request.transport is not None
    request.transport.close()
    return web.Response()


@pytest.fixture
async def server() -> AsyncIterator[tuple[Script, TestServer]]:
    script = Script(answers=[ok(None)])
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", script.handle)
    test_server = TestServer(app, host="127.0.0.1")
    async with test_server:
        yield script, test_server


def client(url: str, *, deadline: float = 5.0) -> RestClient:
    """A client whose waits are all zero (the jitter draws its lowest value)."""
    return RestClient(
        provider="HeyGen",
        base_url=url,
        timeout=5.0,
        retry_deadline=deadline,
        interpret=ERRORS.interpret,
        rng=Extremes(high=False),
    )


async def call(
    script: Script, server: TestServer, *, idempotent: bool, deadline: float = 5.0
) -> Any:
    async with client(str(server.make_url("")), deadline=deadline) as rest:
        return await rest.call(
            "POST",
            "/v1/thing",
            endpoint="thing",
            headers={},
            json_body={"n": 1},
            idempotent=idempotent,
        )


@pytest.mark.parametrize("idempotent", [True, False])
async def test_5xx_is_retried_until_an_answer(
    server: tuple[Script, TestServer], idempotent: bool
) -> None:
    script, http = server
    script.answers = [status(503), status(502), ok({"done": True})]
    assert await call(script, http, idempotent=idempotent) == {"done": True}
    assert script.seen == 3 and script.bodies == [b'{"n": 1}'] * 3


async def test_a_4xx_is_sent_once(server: tuple[Script, TestServer]) -> None:
    script, http = server
    script.answers = [status(400, {"code": 400175, "message": "bad"}), ok(None)]
    with pytest.raises(InvalidRequest):
        await call(script, http, idempotent=True)
    assert script.seen == 1


async def test_a_lost_answer_to_a_create_is_not_sent_again(
    server: tuple[Script, TestServer],
) -> None:
    script, http = server
    script.answers = [hang_up, ok({"id": "second"})]
    with pytest.raises(TransportError) as caught:
        await call(script, http, idempotent=False)
    assert caught.value.sent and script.seen == 1


async def test_a_lost_answer_to_a_keep_alive_is_sent_again(
    server: tuple[Script, TestServer],
) -> None:
    script, http = server
    script.answers = [hang_up, ok({"alive": True})]
    assert await call(script, http, idempotent=True) == {"alive": True}
    assert script.seen == 2


async def test_a_retry_after_beyond_the_deadline_fails_at_once(
    server: tuple[Script, TestServer],
) -> None:
    script, http = server
    script.answers = [status(429, {"message": "slow"}, **{"Retry-After": "60"}), ok(None)]
    with pytest.raises(RateLimited) as caught:
        await call(script, http, idempotent=True, deadline=1.0)
    assert caught.value.retry_after == 60.0 and script.seen == 1


async def test_the_retry_after_wait_is_kept(server: tuple[Script, TestServer]) -> None:
    script, http = server
    script.answers = [status(429, {"message": "slow"}, **{"Retry-After": "0.2"}), ok("later")]
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await call(script, http, idempotent=False) == "later"
    assert script.seen == 2
    assert loop.time() - started >= 0.2  # a lower bound: a loaded machine only adds to it


async def test_nobody_listening_is_a_transport_error_that_never_left() -> None:
    async with TestServer(web.Application(), host="127.0.0.1") as gone:
        url = str(gone.make_url(""))
    async with client(url, deadline=0) as rest:
        with pytest.raises(TransportError) as caught:
            await rest.call("GET", "/v1/x", endpoint="x", headers={}, idempotent=False)
    assert not caught.value.sent and "cannot connect to" in str(caught.value)
