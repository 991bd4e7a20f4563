"""Retry policy for remote calls: exponential backoff with full jitter, bounded by a deadline.

Only failures that may succeed on a second try are retried: no answer at all (connection
refused/reset, timeout), 5xx and 429.  A 4xx is final.  A call that is not idempotent
(creating a session, sending a task) is retried only when the request provably never reached
the server or the server answered that it did not act (5xx/429): retrying after a lost answer
could create a second session or speak twice.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bridge.errors import RateLimited, RemoteError, TransportError


@dataclass(frozen=True, slots=True)
class Backoff:
    first: float = 0.2
    factor: float = 2.0
    cap: float = 4.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(cap, first * factor**attempt)]."""
        return rng.uniform(0.0, min(self.cap, self.first * self.factor**attempt))


def should_retry(exc: RemoteError, *, idempotent: bool) -> bool:
    if not exc.retryable:
        return False
    if isinstance(exc, TransportError) and not idempotent:
        return not exc.sent
    return True


def wait_before_retry(exc: RemoteError, attempt: int, policy: Backoff, rng: random.Random) -> float:
    delay = policy.delay(attempt, rng)
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        delay = max(delay, exc.retry_after)
    return delay
