"""What the manager does after each kind of failure, decided from the errors the real error
maps raise (so a change in a provider's classification shows here)."""

from __future__ import annotations

import random

import pytest

from bridge.errors import RemoteError, TransportError, UnexpectedResponse
from bridge.providers.heygen.errors import ERRORS as HEYGEN
from bridge.providers.liveavatar.errors import ERRORS as LIVEAVATAR
from bridge.providers.liveavatar.errors import START, TOKEN
from bridge.providers.rest.client import Reply
from bridge.providers.rest.errors import ErrorMap
from bridge.session.policy import Kind, decide


def refusal(
    errors: ErrorMap, status: int, body: object, endpoint: str, **headers: str
) -> RemoteError:
    return errors.error_for(
        Reply(status=status, body=body, text="", headers=headers, endpoint=endpoint)
    )


def heygen(status: int, code: int) -> RemoteError:
    return refusal(HEYGEN, status, {"code": code, "message": "refused"}, "streaming.new")


def liveavatar(status: int, message: str, endpoint: str = TOKEN) -> RemoteError:
    return refusal(LIVEAVATAR, status, {"code": 4000, "message": message}, endpoint)


@pytest.mark.parametrize(
    ("error", "fix"),
    [
        (heygen(401, 400112), "HEYGEN_API_KEY"),
        (heygen(400, 10012), "heygen-bridge avatars"),
        (heygen(400, 10015), "Upgrade the HeyGen plan"),
        (liveavatar(401, "Unauthorized"), "LIVEAVATAR_API_KEY"),
        (liveavatar(404, "Avatar not found"), "heygen-bridge avatars"),
        (liveavatar(402, ""), "Add credits"),
        (liveavatar(400, "Not enough credits", START), "avatar.sandbox: true"),
    ],
)
def test_refusals_waiting_cannot_mend_are_not_retried_and_say_what_to_do(
    error: RemoteError, fix: str
) -> None:
    decision = decide(error, 1)
    assert (decision.kind, decision.retry) == (Kind.FATAL, False)
    assert fix in str(decision.fix) and "restart heygen-bridge" in str(decision.fix)
    assert decision.reason == str(error)


@pytest.mark.parametrize(
    "error", [heygen(400, 10007), liveavatar(400, "Concurrent session limit reached", START)]
)
def test_the_session_limit_waits_long_and_names_the_command_unless_the_bridge_holds_one(
    error: RemoteError,
) -> None:
    first = decide(error, 1, rng=random.Random(1))
    assert first.kind == Kind.LIMIT and first.delay is not None and first.delay >= 24
    assert "heygen-bridge sessions stop --all" in str(first.fix)
    later = decide(error, 10, rng=random.Random(1))
    assert later.delay is not None and 240 <= later.delay <= 360  # capped at five minutes
    own = decide(error, 1, holds_own_session=True)  # renewing: the limit is our own session
    assert own.kind == Kind.LIMIT and "sessions stop" not in str(own.fix)


@pytest.mark.parametrize(
    "error",
    [
        TransportError("connection refused", provider="HeyGen", endpoint="new", sent=False),
        heygen(503, 0),
        liveavatar(500, "internal"),
    ],
)
def test_transient_failures_retry_after_about_a_second_growing_to_a_minute(
    error: RemoteError,
) -> None:
    delays = [decide(error, n).delay for n in range(1, 12)]
    assert all(d is not None for d in delays)
    assert 0.8 <= delays[0] <= 1.2  # type: ignore[operator]
    assert all(48 <= d <= 72 for d in delays[7:])  # type: ignore[operator]
    assert {decide(error, 1).kind} == {Kind.TRANSIENT} and decide(error, 1).fix is None


def test_rate_limit_waits_at_least_what_the_server_asked() -> None:
    error = refusal(HEYGEN, 429, {"message": "slow down"}, "streaming.new", **{"Retry-After": "17"})
    decision = decide(error, 1)
    assert decision.kind == Kind.TRANSIENT and decision.delay == 17


def test_an_unreadable_answer_is_retried_slowly() -> None:
    error = UnexpectedResponse("not JSON", provider="HeyGen", endpoint="new")
    first = decide(error, 1)
    assert first.retry and first.delay is not None and first.delay >= 4
