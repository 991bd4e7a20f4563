"""The one backoff policy: how long to wait before trying something that failed again.

Every retry loop in the bridge (REST calls, opening a session, rejoining a room, reopening
the sound server's stream, re-making the mic devices) waits ``first * factor**(n-1)``
seconds after its n-th failure in a row, capped at ``cap``, times a random factor drawn from
``spread`` so that many clients do not retry in step.  ``spread=(0, 1)`` is "full jitter"
(AWS's advice for calls to a shared service); ``(1, 1)`` is a plain doubling for local
resources, where nobody else is retrying with us.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    first: float
    cap: float
    factor: float = 2.0
    spread: tuple[float, float] = (1.0, 1.0)

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """The wait after ``failures`` failures in a row (1 for the first)."""
        base = min(self.cap, self.first * self.factor ** max(0, failures - 1))
        low, high = self.spread
        if low == high:
            return base * low
        return base * (rng or random).uniform(low, high)


class Retrying:
    """Counts failures in a row for one loop and says how long to wait after each."""

    def __init__(self, policy: Backoff, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.failures = 0
        self._rng = rng

    def failed(self) -> float:
        """One more failure: the seconds to wait before the next try."""
        self.failures += 1
        return self.policy.delay(self.failures, self._rng)

    def succeeded(self) -> None:
        self.failures = 0
