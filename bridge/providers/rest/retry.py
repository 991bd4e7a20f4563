"""Which failed remote calls are tried again, and how long to wait before the next try.

Only failures that may succeed on a second try are retried: no answer at all (connection
refused/reset, timeout), 5xx and 429.  A 4xx is final.  A call that is not idempotent
(creating a session, sending a task) is retried only when the request provably never reached
the server or the server answered that it did not act (5xx/429): retrying after a lost answer
could create a second session or speak twice.

The wait is :mod:`bridge.backoff`'s policy with full jitter (the provider's API is shared with
every other client), or longer when a 429 carries the server's ``Retry-After``.  The caller
bounds the whole call by a deadline.
"""

from __future__ import annotations

from bridge.backoff import Backoff
from bridge.errors import RateLimited, RemoteError, TransportError

# 0.2 s, 0.4 s, 0.8 s ... up to 4 s, each drawn uniformly from zero to that (full jitter).
REST_BACKOFF = Backoff(first=0.2, cap=4.0, factor=2.0, spread=(0.0, 1.0))


def should_retry(exc: RemoteError, *, idempotent: bool) -> bool:
    """Whether ``exc``'s call may be tried again: it may succeed, and cannot act twice."""
    if not exc.retryable:
        return False
    if isinstance(exc, TransportError) and not idempotent:
        return not exc.sent
    return True


def wait_before_retry(exc: RemoteError, planned: float) -> float:
    """The backoff's ``planned`` wait, or the server's ``Retry-After`` when it asks for longer."""
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        return max(planned, exc.retry_after)
    return planned
