"""Per-source rate limits: a burst at once, then so many a minute; time moves by hand."""

from __future__ import annotations

import pytest

from bridge.config import RateLimitConfig
from bridge.control import ratelimit
from bridge.control.ratelimit import RateLimiter
from bridge.errors import Busy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_one_more_each_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=6, burst=2, clock=clock)  # one token every 10 s
    limiter.take("http:127.0.0.1")
    limiter.take("http:127.0.0.1")
    with pytest.raises(Busy) as busy:
        limiter.take("http:127.0.0.1")
    assert busy.value.retry_after == 10
    assert "http:127.0.0.1: over the rate limit (2 requests at once, 6 a minute)" in str(busy.value)
    clock.now += 4
    with pytest.raises(Busy) as busy:
        limiter.take("http:127.0.0.1")
    assert busy.value.retry_after == 6  # what is left of the 10 s, not another 10
    clock.now += 6
    limiter.take("http:127.0.0.1")  # refused requests took nothing: the token is there
    assert limiter.refused == 2


def test_sources_have_buckets_of_their_own() -> None:
    limiter = RateLimiter(per_minute=1, burst=1, clock=Clock())
    limiter.take("ws:1")
    with pytest.raises(Busy):
        limiter.take("ws:1")
    limiter.take("ws:2")
    limiter.take("chat:alice")


def test_a_bucket_never_holds_more_than_the_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    limiter.take("cli")
    clock.now += 3600  # an idle hour earns no more than a burst
    for _ in range(3):
        limiter.take("cli")
    with pytest.raises(Busy) as busy:
        limiter.take("cli")
    assert busy.value.retry_after == 1  # at least a second, in whole seconds


def test_per_minute_zero_turns_the_limit_off() -> None:
    limiter = RateLimiter.from_config(RateLimitConfig(per_minute=0, burst=1), clock=Clock())
    for _ in range(1000):
        limiter.take("http:127.0.0.1")
    assert not limiter.enabled and len(limiter) == 0
    assert not RateLimiter.from_config(None).enabled


def test_full_buckets_are_forgotten_when_there_are_many(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "PRUNE_ABOVE", 10)
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=1, clock=clock)
    for n in range(10):
        limiter.take(f"ws:{n}")
    assert len(limiter) == 10
    clock.now += 1  # every bucket is full again
    limiter.take("ws:new")
    assert len(limiter) == 1  # only the one that is not full is kept
    limiter.take("ws:0")  # and forgetting cost nobody a token
