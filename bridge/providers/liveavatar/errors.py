"""LiveAvatar error answers → the bridge's error tree, with causes and ways out a user can act on.

LiveAvatar's error codes are not documented (reference/liveavatar-api.md §6 q2), so errors are
told apart by HTTP status, by endpoint and, for the two refusals a user must act on (concurrent
sessions, credits), by the words of the message.  Success is judged by the HTTP status: the
OpenAPI says code 100, the official SDK insists on 1000 (§5); both are success, and a 2xx
carrying any other code and no data is a failure (the SDK's "HTTP 200 + code 4000").
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

# Endpoint names, as they appear in messages.
TOKEN = "sessions/token"
START = "sessions/start"
STOP = "sessions/stop"
KEEP_ALIVE = "sessions/keep-alive"
SESSIONS = "sessions"
SESSION = "sessions/{session_id}"
AVATARS = "avatars"
PUBLIC_AVATARS = "avatars/public"
# A 404 here means the session is unknown or over.
_SESSION_ENDPOINTS = {START, STOP, KEEP_ALIVE, SESSION}

KEY_HINT = (
    "Check LIVEAVATAR_API_KEY (create a key at app.liveavatar.com/developers). HeyGen API keys "
    "do not work on LiveAvatar; for a HeyGen key set provider: heygen"
)
TOKEN_HINT = (
    "The session token is valid for one session only; the bridge opens a new session when "
    "this one is over"
)
STOP_HINT = "Stop sessions you no longer need with: heygen-bridge sessions stop --all"
CREDITS_HINT = (
    "Add credits at app.liveavatar.com, or try the bridge for free with avatar.sandbox: true "
    "(avatar Wayne only, one-minute sessions)"
)
AVATAR_HINT = "List the avatars you can use with: heygen-bridge avatars"
SANDBOX_HINT = (
    "Sandbox sessions can only use the avatar Wayne: remove avatar.avatar_id, or set "
    "avatar.sandbox: false"
)


class LiveAvatarErrors(ErrorMap):
    """LiveAvatar's answers: no documented codes, so words, statuses and endpoints decide."""

    provider = "LiveAvatar"
    # The OpenAPI says 100, the official SDK insists on 1000 (§5): both are success.
    success_codes = frozenset({100, 1000})
    config_section = "liveavatar"
    key_refused = (Unauthorized, "the API key was not accepted", KEY_HINT)

    def recognise(self, fault: ApiFault, endpoint: str) -> Refusal | None:
        """The two refusals a user must act on, told by their words (or 402)."""
        if fault.status == 404 and endpoint in _SESSION_ENDPOINTS:
            return None  # the session is over, whatever words say why ("ended (NO_CREDITS)")
        words = fault.message.lower()
        if "concurrent" in words:
            return SessionLimitReached, "concurrent session limit reached", STOP_HINT
        if fault.status == 402 or "credit" in words:
            return OutOfCredits, "not enough credits", CREDITS_HINT
        return None

    def refusal(self, fault: ApiFault, endpoint: str) -> Refusal:
        """404 by endpoint, 422 with the fields, other refusals with a hint from their words."""
        if fault.status == 404 and endpoint in _SESSION_ENDPOINTS:
            return SessionGone, "the session does not exist or has ended", None
        if fault.status == 404 and endpoint == TOKEN:
            return InvalidRequest, fault.message or "avatar not found", AVATAR_HINT
        if fault.status == 422:
            hint = AVATAR_HINT if "avatar_id" in fault.message else None
            return InvalidRequest, f"invalid request: {fault.message or 'no details given'}", hint
        if fault.status in (401, 403, 404):
            return super().refusal(fault, endpoint)
        words = fault.message.lower()
        hint = SANDBOX_HINT if "sandbox" in words else AVATAR_HINT if "avatar" in words else None
        return InvalidRequest, fault.message or "request refused", hint


ERRORS = LiveAvatarErrors()


def token_refused(exc: Unauthorized) -> Unauthorized:
    """The same refusal, explained for a call made with a session token instead of the key."""
    return Unauthorized(
        exc.fault,
        provider=ERRORS.provider,
        endpoint=exc.endpoint,
        cause="the session token was not accepted (expired, or for another session)",
        hint=TOKEN_HINT,
    )
