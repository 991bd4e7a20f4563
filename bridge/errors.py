"""The one error tree of heygen-bridge.

::

    BridgeError                      anything this package raises on purpose
    ├── ConfigError                  bad config file / environment (CLI exit code 2)
    ├── RemoteError                  an avatar provider's API answered or failed
    │   ├── TransportError           no usable answer: connection refused/reset, timeout   retryable
    │   ├── UnexpectedResponse       an answer we cannot read (not JSON, missing fields)
    │   └── ApiError                 the API answered with an error (status, code, message)
    │       ├── Unauthorized         bad/missing API key or session token (401)
    │       ├── RateLimited          429; carries retry_after                             retryable
    │       ├── SessionLimitReached  too many concurrent sessions
    │       │   └── OutOfCredits     no credits / trial allowance left: waiting will not help
    │       ├── SessionGone          the session is closed, expired or unknown
    │       └── InvalidRequest       the request was refused as malformed (400/422)
    ├── RefusedKey                   a provider refused the key; says whose key it is (CLI)
    ├── NotLive                      no live avatar session to speak with right now
    ├── DeviceUnavailable            a local device (camera, microphone) cannot be used now
    ├── BadInput                     a control request was malformed (HTTP 400)
    ├── NotFound                     a control request named something that is not there (404)
    ├── Busy                         the queue is full or a source is over its rate (429);
    │                                carries retry_after
    └── TwitchError                  Twitch refused or failed a request; ``fatal`` when
                                     retrying cannot help (a refused token, a missing scope)

Every error's ``str()`` is written for the person reading it: it names the cause and, where
there is one, the way out.  Secrets never enter an error: only what the remote said and
what we asked (never our headers).
"""

from __future__ import annotations

from dataclasses import dataclass


class BridgeError(Exception):
    """Base of every error raised on purpose by the bridge."""


class ConfigError(BridgeError):
    """The configuration is invalid; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class RemoteError(BridgeError):
    """Talking to an avatar provider failed."""

    retryable: bool = False

    def __init__(self, message: str, *, provider: str, endpoint: str) -> None:
        self.provider = provider
        self.endpoint = endpoint
        super().__init__(message)


class TransportError(RemoteError):
    """No usable answer (connection refused/reset, timeout, garbled body)."""

    retryable = True

    def __init__(self, message: str, *, provider: str, endpoint: str, sent: bool) -> None:
        # ``sent`` is False when the request provably never reached the server
        # (connection refused, DNS): only then is a non-idempotent call safe to retry.
        self.sent = sent
        super().__init__(message, provider=provider, endpoint=endpoint)


class UnexpectedResponse(RemoteError):
    """The provider answered 2xx with a body we cannot read (not JSON, fields missing)."""


@dataclass(frozen=True, slots=True)
class ApiFault:
    """What the remote API said: HTTP status, provider code and message."""

    status: int
    code: int | None
    message: str


class ApiError(RemoteError):
    """The API answered with an error.  ``hint`` is the way out, when there is one."""

    def __init__(
        self,
        fault: ApiFault,
        *,
        provider: str,
        endpoint: str,
        cause: str | None = None,
        hint: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.fault = fault
        self.status = fault.status
        self.code = fault.code
        self.remote_message = fault.message
        self.hint = hint
        if retryable is not None:
            self.retryable = retryable
        what = cause or fault.message or f"HTTP {fault.status}"
        ref = f"code {fault.code}" if fault.code is not None else f"HTTP {fault.status}"
        text = f"{provider} refused {endpoint}: {what} ({ref})"
        if hint:
            text += f". {hint}"
        super().__init__(text, provider=provider, endpoint=endpoint)


class Unauthorized(ApiError):
    """Bad or missing API key / session token."""


class RateLimited(ApiError):
    """Too many requests; ``retry_after`` seconds is the server's advice, if given."""

    retryable = True

    def __init__(
        self,
        fault: ApiFault,
        *,
        provider: str,
        endpoint: str,
        retry_after: float | None,
        cause: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(fault, provider=provider, endpoint=endpoint, cause=cause, hint=hint)


class SessionLimitReached(ApiError):
    """The account's concurrent-session limit is reached."""


class OutOfCredits(SessionLimitReached):
    """The account has no credits (or trial allowance) left for a session: unlike the
    concurrency limit, trying again soon will not help; the user must act."""


class SessionGone(ApiError):
    """The session is closed, expired or unknown to the provider."""


class InvalidRequest(ApiError):
    """The provider refused the request as malformed."""


class DeviceUnavailable(BridgeError):
    """A local device cannot be used; ``fix`` is the command or step that fixes it."""

    def __init__(self, device: str, reason: str, fix: str) -> None:
        self.device = device
        self.reason = reason
        self.fix = fix
        super().__init__(f"{device} unavailable: {reason}. Fix: {fix}")


class BadInput(BridgeError):
    """A control request was malformed; ``field`` names what was wrong."""

    def __init__(self, field: str, detail: str) -> None:
        self.field = field
        self.detail = detail
        super().__init__(f"{field}: {detail}")


class RefusedKey(BridgeError):
    """A provider refused the key; the message says whose key it is, when that is known."""


class NotLive(BridgeError):
    """There is no live avatar session to speak with right now."""


class NotFound(BridgeError):
    """A control request named something that does not exist (a preset, a queue item)."""

    def __init__(self, what: str, name: str) -> None:
        self.what, self.name = what, name
        super().__init__(f"{what} {name!r}: not found")


class Busy(BridgeError):
    """The request was fine but cannot be taken now (HTTP 429); try after ``retry_after`` s."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class TwitchError(BridgeError):
    """Twitch refused or failed a request; ``fatal`` when retrying cannot help."""

    def __init__(self, message: str, *, fatal: bool, status: int | None = None) -> None:
        self.fatal = fatal
        self.status = status
        super().__init__(message)
