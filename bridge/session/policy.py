"""What to do after a session failed to open or ended early: try again when, or give up why.

One pure function, :func:`decide`, so the manager's loop only waits and counts.  Three kinds:

* **transient** (connection refused, timeouts, 5xx, the room lost, the session closed by the
  server, 429): try again after :data:`RETRY` (1, 2, 4 … s with jitter, at most a minute), or
  after the server's ``Retry-After`` when it is longer;
* **limit** (the account's concurrent-session limit): try again after :data:`RETRY_LIMIT`
  (30 s doubling to 5 minutes: the limit frees only when a session ends), and when the bridge
  holds no session of its own the sessions in the way are someone else's, so the fix names
  ``heygen-bridge sessions stop --all``;
* **fatal** (the key refused, the avatar unknown or not allowed, a request the provider calls
  malformed, no credits left; also a session the provider ended for no credits or a deleted
  avatar, :func:`after_fatal_end`): trying again will not help, so the manager stops after this
  one request and shows the fix until the config is reloaded or the daemon restarted.

A refusal the tree does not name but the provider marks as not retryable
(:class:`~bridge.errors.UnexpectedResponse`, a 4xx of no known kind) is tried again slowly
(:data:`RETRY_REFUSED`): it may be a provider's passing fault, and a slow retry costs little.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from bridge.backoff import Backoff
from bridge.errors import (
    ApiError,
    InvalidRequest,
    OutOfCredits,
    RateLimited,
    RemoteError,
    SessionLimitReached,
    Unauthorized,
)

RETRY = Backoff(first=1.0, cap=60.0, spread=(0.8, 1.2))
RETRY_REFUSED = Backoff(first=5.0, cap=120.0, spread=(0.8, 1.2))
RETRY_LIMIT = Backoff(first=30.0, cap=300.0, spread=(0.8, 1.2))

STOP_OTHERS = (
    "Sessions this bridge did not start hold the account's session limit: stop them with "
    "`heygen-bridge sessions stop --all` (or wait until they time out)"
)
WAIT_FOR_OWN = "The limit frees when the bridge's previous session has ended"
THEN = "then reload the config (SIGHUP) or restart heygen-bridge"


class Kind(StrEnum):
    TRANSIENT = "transient"
    LIMIT = "limit"
    FATAL = "fatal"


@dataclass(frozen=True, slots=True)
class Decision:
    """``delay`` is the seconds to wait before the next try; None for fatal (do not retry).
    ``fix`` is what the user can do (None when waiting is all it takes)."""

    kind: Kind
    reason: str
    delay: float | None
    fix: str | None = None

    @property
    def retry(self) -> bool:
        return self.delay is not None


FATAL = (Unauthorized, InvalidRequest, OutOfCredits)


def decide(
    exc: RemoteError,
    failures: int,
    *,
    holds_own_session: bool = False,
    rng: random.Random | None = None,
) -> Decision:
    """The decision after ``exc``, the ``failures``-th failure in a row (1 for the first).

    ``holds_own_session``: the bridge still has a session of its own open (make-before-break
    renewal), so a concurrency refusal may be its own doing and naming the stop-all command
    would stop the session on the camera.
    """
    reason = str(exc)
    if isinstance(exc, FATAL):
        hint = exc.hint if isinstance(exc, ApiError) and exc.hint else _fallback_fix(exc)
        return Decision(Kind.FATAL, reason, None, f"{hint}; {THEN}")
    if isinstance(exc, SessionLimitReached):
        fix = WAIT_FOR_OWN if holds_own_session else STOP_OTHERS
        return Decision(Kind.LIMIT, reason, RETRY_LIMIT.delay(failures, rng), fix)
    if isinstance(exc, RateLimited):
        delay = max(RETRY.delay(failures, rng), exc.retry_after or 0.0)
        return Decision(Kind.TRANSIENT, reason, delay)
    policy = RETRY if exc.retryable else RETRY_REFUSED
    return Decision(Kind.TRANSIENT, reason, policy.delay(failures, rng))


def after_early_end(reason: str, failures: int, rng: random.Random | None = None) -> Decision:
    """A session that ended before it had been live for long (its room never connected or
    dropped, the server closed it): transient, so the next one opens after :data:`RETRY`."""
    return Decision(Kind.TRANSIENT, reason, RETRY.delay(failures, rng))


# Reasons a provider gives for ending a session (LiveAvatar's ``end_reason``) that a new
# session would meet again at once: what the user must do first.
FATAL_END_REASONS = {
    "NO_CREDITS": "Add credits to the LiveAvatar account",
    "AVATAR_DELETED": "The avatar was deleted: choose another (heygen-bridge avatars lists yours)",
}


def after_fatal_end(reason: str | None) -> Decision | None:
    """The decision when the provider ended the session for ``reason`` and a new session
    cannot help (no credits left, the avatar deleted); None for any other reason."""
    fix = FATAL_END_REASONS.get((reason or "").strip().upper())
    if fix is None:
        return None
    return Decision(Kind.FATAL, f"the provider ended the session: {reason}", None, f"{fix}; {THEN}")


def _fallback_fix(exc: RemoteError) -> str:
    if isinstance(exc, Unauthorized):
        return "Check the provider's API key in the environment"
    if isinstance(exc, OutOfCredits):
        return "Add credits to the provider account"
    return "Check the avatar settings in the config (heygen-bridge avatars lists yours)"
