"""LiveAvatar error answers → the bridge's error tree, with causes and ways out a user can act on.

LiveAvatar's error codes are not documented (reference/liveavatar-api.md §6 q2), so errors are
told apart by HTTP status, by endpoint and, for the two refusals a user must act on (concurrent
sessions, credits), by the words of the message.  Success is judged by the HTTP status: the
OpenAPI says code 100, the official SDK insists on 1000 (§5); both are success, and a 2xx
carrying any other code and no data is a failure (the SDK's "HTTP 200 + code 4000").
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

PROVIDER = "LiveAvatar"
SUCCESS_CODES = (100, 1000)

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


def interpret(reply: Reply) -> Any:
    """Data of a successful answer, or the matching :class:`ApiError`."""
    if reply.ok and not is_envelope_failure(reply, SUCCESS_CODES):
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
    words = fault.message.lower()
    cls: type[ApiError]
    hint: str | None = None
    if "concurrent" in words:
        cls, cause, hint = SessionLimitReached, "concurrent session limit reached", STOP_HINT
    elif fault.status == 402 or "credit" in words:
        cls, cause, hint = SessionLimitReached, "not enough credits", CREDITS_HINT
    elif fault.status in (401, 403):
        cls, cause, hint = Unauthorized, "the API key was not accepted", KEY_HINT
    elif fault.status >= 500:
        return ApiError(
            fault, provider=PROVIDER, endpoint=endpoint, cause="internal error", retryable=True
        )
    elif fault.status == 404 and endpoint in _SESSION_ENDPOINTS:
        cls, cause = SessionGone, "the session does not exist or has ended"
    elif fault.status == 404 and endpoint == TOKEN:
        cls, cause, hint = InvalidRequest, fault.message or "avatar not found", AVATAR_HINT
    elif fault.status == 404:
        cls, cause = InvalidRequest, "no such endpoint (check liveavatar.base_url)"
    elif fault.status == 422:
        cls, cause = InvalidRequest, f"invalid request: {fault.message or 'no details given'}"
        if "avatar_id" in fault.message:
            hint = AVATAR_HINT
    else:
        cls, cause = InvalidRequest, fault.message or "request refused"
        if "sandbox" in words:
            hint = SANDBOX_HINT
        elif "avatar" in words:
            hint = AVATAR_HINT
    return cls(fault, provider=PROVIDER, endpoint=endpoint, cause=cause, hint=hint)


def token_refused(exc: Unauthorized) -> Unauthorized:
    """The same refusal, explained for a call made with a session token instead of the key."""
    return Unauthorized(
        exc.fault,
        provider=PROVIDER,
        endpoint=exc.endpoint,
        cause="the session token was not accepted (expired, or for another session)",
        hint=TOKEN_HINT,
    )
