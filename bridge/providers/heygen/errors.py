"""HeyGen error answers → the bridge's error tree, with causes and ways out a user can act on.

Codes from reference/heygen-api.md §1.4 (several are only known from third-party clients).
"""

from __future__ import annotations

from typing import Any

from bridge.errors import (
    ApiError,
    ApiFault,
    InvalidRequest,
    RateLimited,
    SessionGone,
    SessionLimitReached,
    Unauthorized,
)
from bridge.providers.rest.client import Reply
from bridge.providers.rest.envelope import data_of, fault_of, is_envelope_failure, retry_after

PROVIDER = "HeyGen"
SUCCESS = 100

KEY_HINT = (
    "Check HEYGEN_API_KEY (app.heygen.com → Settings → API). LiveAvatar keys do not work on "
    "the Streaming API; for a LiveAvatar key set provider: liveavatar"
)
STOP_HINT = "Stop idle sessions with: heygen-bridge sessions stop --all"
AVATAR_HINT = "List the avatars you can stream with: heygen-bridge avatars"

# code → (error class, cause, hint)
_CODES: dict[int, tuple[type[ApiError], str, str | None]] = {
    400112: (Unauthorized, "the API key or session token was not accepted", KEY_HINT),
    40009: (Unauthorized, "invalid credentials", KEY_HINT),
    400599: (
        Unauthorized,
        "this account has no API access",
        "The Interactive Avatar API needs a HeyGen plan with API access",
    ),
    40001: (InvalidRequest, "a required parameter is missing", None),
    400175: (InvalidRequest, "a parameter is invalid", None),
    10001: (InvalidRequest, "the session is not started yet (state: new)", None),
    10002: (InvalidRequest, "the session is still connecting", None),
    10003: (InvalidRequest, "the session is in the wrong state (connected)", None),
    10004: (SessionGone, "the session is closing", None),
    10005: (SessionGone, "the session is closed (stopped or timed out)", None),
    10006: (SessionGone, "the session does not exist", None),
    10007: (SessionLimitReached, "concurrent session limit reached", STOP_HINT),
    10012: (InvalidRequest, "avatar not found", AVATAR_HINT),
    10013: (InvalidRequest, "this avatar is not allowed for streaming", AVATAR_HINT),
    10014: (SessionLimitReached, "the session is full", STOP_HINT),
    10015: (
        SessionLimitReached,
        "trial API limit reached",
        "Upgrade the HeyGen plan, or wait for the monthly trial allowance",
    ),
    400014: (
        InvalidRequest,
        "avatar version is deprecated (v3+ required)",
        "Pick a current avatar: heygen-bridge avatars",
    ),
}


def interpret(reply: Reply) -> Any:
    """Data of a successful answer, or the matching :class:`ApiError`."""
    if reply.ok and not is_envelope_failure(reply, (SUCCESS,)):
        return data_of(reply)
    raise error_for(fault_of(reply), reply)


def error_for(fault: ApiFault, reply: Reply) -> ApiError:
    endpoint = reply.endpoint
    if fault.status == 429:
        return RateLimited(
            fault,
            provider=PROVIDER,
            endpoint=endpoint,
            retry_after=retry_after(reply),
            cause="too many requests",
        )
    cls: type[ApiError]
    if fault.code in _CODES:
        cls, cause, hint = _CODES[fault.code]
    elif fault.status in (401, 403):
        cls, cause, hint = Unauthorized, "the API key or session token was not accepted", KEY_HINT
    elif fault.status >= 500:
        return ApiError(
            fault, provider=PROVIDER, endpoint=endpoint, cause="internal error", retryable=True
        )
    elif fault.status == 404:
        cls, cause, hint = InvalidRequest, "no such endpoint (check heygen.base_url)", None
    else:
        cls, cause, hint = InvalidRequest, fault.message or "request refused", None
    return cls(fault, provider=PROVIDER, endpoint=endpoint, cause=cause, hint=hint)
