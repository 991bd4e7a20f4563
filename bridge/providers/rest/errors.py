"""A provider's answers → data or the bridge's error tree: the rules every provider shares.

An answer is data when its HTTP status is 2xx and its envelope carries no failure code
(:func:`~bridge.providers.rest.envelope.is_envelope_failure`).  Otherwise it becomes an
:class:`~bridge.errors.ApiError`, decided in this order:

1. 429: :class:`~bridge.errors.RateLimited`, with the server's ``Retry-After`` (retryable);
2. what the provider recognises in the answer itself, whatever the status (its error codes,
   the words of its messages): :meth:`ErrorMap.recognise`;
3. 5xx: an ``ApiError`` that is retryable ("internal error");
4. any other status: :meth:`ErrorMap.refusal`; by default 401/403 is the key, 404 a wrong
   ``base_url``, anything else the provider's own message.  A provider overrides it to tell
   its statuses apart by endpoint.

A provider's ``errors`` module subclasses :class:`ErrorMap` with its name, success codes and
messages; that is all a provider has to say about errors.
"""

from __future__ import annotations

from typing import Any, ClassVar

from bridge.errors import ApiError, ApiFault, InvalidRequest, RateLimited
from bridge.providers.rest.client import Reply
from bridge.providers.rest.envelope import data_of, fault_of, is_envelope_failure, retry_after

# An error class, the cause in the user's words, and the way out (if there is one).
Refusal = tuple[type[ApiError], str, str | None]


class ErrorMap:
    """How one provider's answers read; subclasses set the class attributes."""

    provider: ClassVar[str]  # the name in messages: "HeyGen"
    success_codes: ClassVar[frozenset[int]]  # envelope codes that mean success
    config_section: ClassVar[str]  # the config section holding its base_url: "heygen"
    key_refused: ClassVar[Refusal]  # what a 401/403 means, with the fix

    def interpret(self, reply: Reply) -> Any:
        """Data of a successful answer (None when it has none); else raises its ApiError."""
        if reply.ok and not is_envelope_failure(reply, self.success_codes):
            return data_of(reply)
        raise self.error_for(reply)

    def error_for(self, reply: Reply) -> ApiError:
        """The error an answer that is not a success stands for (the order in the docstring)."""
        fault, endpoint = fault_of(reply), reply.endpoint
        if fault.status == 429:
            return RateLimited(
                fault,
                provider=self.provider,
                endpoint=endpoint,
                retry_after=retry_after(reply),
                cause="too many requests",
            )
        refusal = self.recognise(fault, endpoint)
        if refusal is None and fault.status >= 500:
            return ApiError(
                fault,
                provider=self.provider,
                endpoint=endpoint,
                cause="internal error",
                retryable=True,
            )
        cls, cause, hint = refusal or self.refusal(fault, endpoint)
        return cls(fault, provider=self.provider, endpoint=endpoint, cause=cause, hint=hint)

    def recognise(self, fault: ApiFault, endpoint: str) -> Refusal | None:
        """A refusal the provider's code or words name, whatever the HTTP status; else None."""
        return None

    def refusal(self, fault: ApiFault, endpoint: str) -> Refusal:
        """A refusal (not 429, not 5xx) that :meth:`recognise` did not name."""
        if fault.status in (401, 403):
            return self.key_refused
        if fault.status == 404:
            return InvalidRequest, f"no such endpoint (check {self.config_section}.base_url)", None
        return InvalidRequest, fault.message or "request refused", None
