"""HeyGen's error codes → the bridge's error tree, with causes and ways out a user can act on.

Codes from reference/heygen-api.md §1.4 (several are only known from third-party clients).
A known code decides the error whatever the HTTP status; the rest (429, 5xx, 401/403, 404)
follows the rules every provider shares (:mod:`bridge.providers.rest.errors`).
"""

from __future__ import annotations

from bridge.errors import (
    ApiFault,
    InvalidRequest,
    OutOfCredits,
    SessionGone,
    SessionLimitReached,
    Unauthorized,
)
from bridge.providers.rest.errors import ErrorMap, Refusal

KEY_HINT = (
    "Check HEYGEN_API_KEY (app.heygen.com → Settings → API). LiveAvatar keys do not work on "
    "the Streaming API; for a LiveAvatar key set provider: liveavatar"
)
PLAN_HINT = "The Interactive Avatar API needs a HeyGen plan with API access"
STOP_HINT = "Stop idle sessions with: heygen-bridge sessions stop --all"
TRIAL_HINT = "Upgrade the HeyGen plan, or wait for the monthly trial allowance"
AVATAR_HINT = "List the avatars you can stream with: heygen-bridge avatars"
CURRENT_AVATAR_HINT = "Pick a current avatar: heygen-bridge avatars"

KEY_REFUSED = "the API key or session token was not accepted"

# code → (error class, cause, hint)
CODES: dict[int, Refusal] = {
    400112: (Unauthorized, KEY_REFUSED, KEY_HINT),
    40009: (Unauthorized, "invalid credentials", KEY_HINT),
    400599: (Unauthorized, "this account has no API access", PLAN_HINT),
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
    10015: (OutOfCredits, "trial API limit reached", TRIAL_HINT),
    400014: (InvalidRequest, "avatar version is deprecated (v3+ required)", CURRENT_AVATAR_HINT),
}


class HeyGenErrors(ErrorMap):
    """HeyGen's answers: success is code 100; a code in :data:`CODES` names the refusal."""

    provider = "HeyGen"
    success_codes = frozenset({100})
    config_section = "heygen"
    key_refused = (Unauthorized, KEY_REFUSED, KEY_HINT)

    def recognise(self, fault: ApiFault, endpoint: str) -> Refusal | None:
        return CODES.get(fault.code) if fault.code is not None else None


ERRORS = HeyGenErrors()
