"""Per-source rate limits for speak requests: one token bucket per source string.

A source ("http:127.0.0.1", "ws:3", "chat:alice", "preset:hello", "cli") may make ``burst``
requests at once; its bucket refills at ``per_minute`` tokens a minute up to ``burst``.  A
request when the bucket holds less than one token is refused with
:class:`~bridge.errors.Busy`, whose ``retry_after`` is the whole number of seconds (at least
1) until the bucket holds one again; a refused request takes nothing from the bucket.
``per_minute`` 0 turns the limit off.

Buckets that have refilled to full are the same as no bucket, so they are forgotten once
there are many: the memory stays bounded by the sources active within a refill time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from bridge.config import RateLimitConfig
from bridge.errors import Busy

__all__ = ["RateLimiter"]

# Past this many buckets, full ones are forgotten (they mean the same as none).
PRUNE_ABOVE = 1024


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float  # when ``tokens`` was counted (the limiter's clock)


class RateLimiter:
    def __init__(
        self, *, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """``clock``: seconds, monotonic (tests pass their own to move time by hand)."""
        if per_minute < 0 or burst < 1:
            raise ValueError(f"per_minute must be >= 0 and burst >= 1: {per_minute}, {burst}")
        self.per_minute = per_minute
        self.burst = burst
        self._per_second = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self.refused = 0

    @classmethod
    def from_config(
        cls, cfg: RateLimitConfig | None, *, clock: Callable[[], float] = time.monotonic
    ) -> RateLimiter:
        """The limiter ``cfg`` describes; no config means no limit."""
        if cfg is None:
            return cls(per_minute=0, burst=1, clock=clock)
        return cls(per_minute=cfg.per_minute, burst=cfg.burst, clock=clock)

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def take(self, source: str) -> None:
        """Count one request from ``source``, or refuse it (:class:`Busy`) changing nothing."""
        if not self.enabled:
            return
        now = self._clock()
        bucket = self._buckets.get(source)
        tokens = self.burst if bucket is None else self._refilled(bucket, now)
        if tokens < 1.0:
            self.refused += 1
            wait = max(1, math.ceil((1.0 - tokens) / self._per_second))
            raise Busy(
                f"{source}: over the rate limit ({self.burst} requests at once, "
                f"{self.per_minute} a minute); try again in {wait} s",
                retry_after=wait,
            )
        if bucket is None and len(self._buckets) >= PRUNE_ABOVE:
            self._forget_full(now)
        self._buckets[source] = _Bucket(tokens - 1.0, now)

    def _refilled(self, bucket: _Bucket, now: float) -> float:
        return min(float(self.burst), bucket.tokens + (now - bucket.at) * self._per_second)

    def _forget_full(self, now: float) -> None:
        full = [s for s, b in self._buckets.items() if self._refilled(b, now) >= self.burst]
        for source in full:
            del self._buckets[source]

    def __len__(self) -> int:
        """Sources with a bucket that is not known to be full."""
        return len(self._buckets)
