"""Error answers → the bridge's error tree, for both providers: what a user reads, and whether
the bridge may try again."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.errors import (
    ApiError,
    InvalidRequest,
    OutOfCredits,
    RateLimited,
    SessionGone,
    SessionLimitReached,
    Unauthorized,
)
from bridge.providers.heygen.errors import ERRORS as HEYGEN
from bridge.providers.liveavatar.errors import ERRORS as LIVEAVATAR
from bridge.providers.rest.client import Reply
from bridge.providers.rest.errors import ErrorMap

BOTH = pytest.mark.parametrize("errors", [HEYGEN, LIVEAVATAR], ids=["heygen", "liveavatar"])


def reply(status: int, body: Any = None, endpoint: str = "things", **headers: str) -> Reply:
    return Reply(status=status, body=body, text="", headers=headers, endpoint=endpoint)


def error(errors: ErrorMap, status: int, body: Any = None, endpoint: str = "things") -> ApiError:
    with pytest.raises(ApiError) as caught:
        errors.interpret(reply(status, body, endpoint))
    return caught.value


@BOTH
def test_a_429_is_rate_limited_with_the_servers_wait(errors: ErrorMap) -> None:
    answer = reply(429, {"message": "slow down"}, **{"Retry-After": "7"})
    with pytest.raises(RateLimited) as caught:
        errors.interpret(answer)
    assert caught.value.retryable and caught.value.retry_after == 7.0
    assert "too many requests" in str(caught.value)


@BOTH
@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_5xx_is_an_internal_error_worth_a_retry(errors: ErrorMap, status: int) -> None:
    failed = error(errors, status, {"message": "upstream timeout"})
    assert type(failed) is ApiError and failed.retryable
    assert f"{errors.provider} refused things: internal error (HTTP {status})" == str(failed)


@BOTH
@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_a_4xx_is_final(errors: ErrorMap, status: int) -> None:
    assert not error(errors, status, {"message": "no"}).retryable


@pytest.mark.parametrize(
    ("errors", "variable"), [(HEYGEN, "HEYGEN_API_KEY"), (LIVEAVATAR, "LIVEAVATAR_API_KEY")]
)
@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_says_which_variable_to_check(
    errors: ErrorMap, variable: str, status: int
) -> None:
    refused = error(errors, status, {"message": "Unauthorized"})
    assert isinstance(refused, Unauthorized)
    assert "not accepted" in str(refused) and f"Check {variable}" in str(refused)


@pytest.mark.parametrize(("errors", "section"), [(HEYGEN, "heygen"), (LIVEAVATAR, "liveavatar")])
def test_an_unknown_endpoint_points_at_the_base_url(errors: ErrorMap, section: str) -> None:
    missing = error(errors, 404, {"detail": "Not Found"}, endpoint="avatars")
    assert isinstance(missing, InvalidRequest)
    assert f"no such endpoint (check {section}.base_url)" in str(missing)


@BOTH
def test_any_other_refusal_carries_the_providers_message(errors: ErrorMap) -> None:
    refused = error(errors, 400, {"code": 123456, "message": "voice is unknown"})
    assert isinstance(refused, InvalidRequest)
    assert str(refused).endswith("voice is unknown (code 123456)")


# --- success envelopes --------------------------------------------------------------------------


def test_heygen_success_is_code_100_or_the_token_shape() -> None:
    assert HEYGEN.interpret(reply(200, {"code": 100, "data": {"a": 1}})) == {"a": 1}
    assert HEYGEN.interpret(reply(200, {"error": None, "data": {"token": "t"}})) == {"token": "t"}
    assert HEYGEN.interpret(reply(200, {"code": 100, "message": "success"})) is None


@pytest.mark.parametrize("code", [100, 1000])
def test_liveavatar_success_is_code_100_or_1000(code: int) -> None:
    assert LIVEAVATAR.interpret(reply(200, {"code": code, "data": []})) == []


def test_a_200_carrying_a_failure_code_and_no_data_is_an_error() -> None:
    refused = error(LIVEAVATAR, 200, {"code": 4000, "message": "nope", "data": None})
    assert isinstance(refused, InvalidRequest) and "nope (code 4000)" in str(refused)


# --- HeyGen: its codes decide -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind", "says"),
    [
        (400112, Unauthorized, "HEYGEN_API_KEY"),
        (400599, Unauthorized, "plan with API access"),
        (10002, InvalidRequest, "still connecting"),
        (10005, SessionGone, "closed (stopped or timed out)"),
        (10007, SessionLimitReached, "heygen-bridge sessions stop --all"),
        (10013, InvalidRequest, "heygen-bridge avatars"),
        (10015, OutOfCredits, "trial allowance"),
    ],
)
def test_heygen_codes(code: int, kind: type[ApiError], says: str) -> None:
    refused = error(HEYGEN, 400, {"code": code, "message": "whatever"})
    assert type(refused) is kind and refused.code == code and says in str(refused)


def test_a_heygen_code_wins_over_a_5xx_status() -> None:
    gone = error(HEYGEN, 500, {"code": 10005, "message": "session closed"})
    assert isinstance(gone, SessionGone) and not gone.retryable


# --- LiveAvatar: status, endpoint and words decide ----------------------------------------------


@pytest.mark.parametrize(
    ("status", "message", "kind", "says"),
    [
        (400, "Concurrent session limit", SessionLimitReached, "sessions stop --all"),
        (500, "concurrent sessions exceeded", SessionLimitReached, "sessions stop --all"),
        (402, "", OutOfCredits, "Add credits"),
        (400, "Not enough credits", OutOfCredits, "avatar.sandbox: true"),
        (400, "sandbox sessions need Wayne", InvalidRequest, "avatar Wayne"),
        (400, "avatar is not active", InvalidRequest, "heygen-bridge avatars"),
    ],
)
def test_liveavatar_refusals_by_their_words(
    status: int, message: str, kind: type[ApiError], says: str
) -> None:
    refused = error(LIVEAVATAR, status, {"code": status, "message": message})
    assert type(refused) is kind and says in str(refused) and not refused.retryable


@pytest.mark.parametrize(
    "endpoint", ["sessions/start", "sessions/stop", "sessions/keep-alive", "sessions/{session_id}"]
)
def test_liveavatar_404_on_a_session_means_it_is_gone(endpoint: str) -> None:
    assert isinstance(error(LIVEAVATAR, 404, {"detail": "Not Found"}, endpoint), SessionGone)
    # A session the service ended for lack of credits is gone, not a refusal for credits.
    ended = {"code": 404, "message": "Session has already ended (NO_CREDITS)"}
    gone = error(LIVEAVATAR, 404, ended, endpoint)
    assert isinstance(gone, SessionGone) and "Add credits" not in str(gone)


def test_liveavatar_404_on_a_token_is_the_avatar() -> None:
    missing = error(LIVEAVATAR, 404, {"message": "Avatar not found"}, "sessions/token")
    assert isinstance(missing, InvalidRequest)
    assert "Avatar not found" in str(missing) and "heygen-bridge avatars" in str(missing)


def test_liveavatar_422_names_the_fields() -> None:
    body = {"detail": [{"loc": ["body", "avatar_id"], "msg": "Field required"}]}
    invalid = error(LIVEAVATAR, 422, body, "sessions/token")
    assert "invalid request: avatar_id: Field required" in str(invalid)
    assert "heygen-bridge avatars" in str(invalid)
