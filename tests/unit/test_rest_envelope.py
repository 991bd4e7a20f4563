"""Reading providers' answers: the error body whatever its shape, the success envelope, the
Retry-After header, and data that does not fit its model."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from bridge.errors import ApiFault, UnexpectedResponse
from bridge.providers.rest import envelope
from bridge.providers.rest.client import Reply


def reply(status: int, body: Any = None, *, text: str = "", **headers: str) -> Reply:
    return Reply(status=status, body=body, text=text, headers=headers, endpoint="things")


@pytest.mark.parametrize(
    ("body", "text", "fault"),
    [
        ({"code": 10007, "message": "Concurrent limit"}, "", (10007, "Concurrent limit")),
        (  # FastAPI's 422: the first fields, by where they are
            {"detail": [{"loc": ["body", "avatar_id"], "msg": "Field required"}, "odd item"]},
            "",
            (None, "avatar_id: Field required; odd item"),
        ),
        ({"detail": "Not Found"}, "", (None, "Not Found")),
        ({"error": {"code": 401, "message": "bad key"}}, "", (401, "bad key")),
        ({"error": "unauthorized"}, "", (None, "unauthorized")),
        ({"code": True, "message": "a bool is not a code"}, "", (None, "a bool is not a code")),
        (None, "<html>\n  Bad   Gateway\n</html>", (None, "<html> Bad Gateway </html>")),
        (None, "", (None, "")),
    ],
)
def test_the_code_and_message_are_read_from_any_error_shape(
    body: Any, text: str, fault: tuple[int | None, str]
) -> None:
    assert envelope.fault_of(reply(400, body, text=text)) == ApiFault(400, *fault)


def test_a_long_plain_text_error_is_cut() -> None:
    assert len(envelope.fault_of(reply(502, text="x " * 500)).message) == 200


@pytest.mark.parametrize(
    ("body", "failed"),
    [
        ({"code": 4000, "message": "nope", "data": None}, True),  # LiveAvatar's HTTP 200 failure
        ({"code": 4000, "message": "nope"}, True),
        ({"code": 1000, "data": None}, False),  # a success code without data
        ({"code": 4000, "data": {"id": "x"}}, False),  # data wins over a foreign code
        ({"error": None, "data": {"token": "t"}}, False),  # HeyGen's create_token shape
        ([1, 2], False),
        (None, False),
    ],
)
def test_envelope_failure_is_a_foreign_code_and_no_data(body: Any, failed: bool) -> None:
    assert envelope.is_envelope_failure(reply(200, body), (100, 1000)) is failed


def test_data_of_a_success() -> None:
    assert envelope.data_of(reply(200, {"code": 100, "data": {"a": 1}})) == {"a": 1}
    assert envelope.data_of(reply(200, {"code": 100})) is None
    assert envelope.data_of(reply(200, [1])) is None


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "2.5"}, 2.5),
        ({"retry-after": "3"}, 3.0),
        ({"Retry-After": "-4"}, 0.0),
        ({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, None),  # a date: not understood
        ({}, None),
    ],
)
def test_retry_after_in_seconds(headers: dict[str, str], seconds: float | None) -> None:
    assert envelope.retry_after(reply(429, **headers)) == seconds


class Thing(BaseModel):
    thing_id: str
    size: int


def test_parse_returns_the_model() -> None:
    parsed = envelope.parse(Thing, {"thing_id": "a", "size": 3}, provider="P", endpoint="things")
    assert parsed == Thing(thing_id="a", size=3)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (None, "P things: unexpected answer (no data in the answer)"),
        ({"size": 3}, "P things: unexpected answer (thing_id: Field required)"),
        ([{"thing_id": "a", "size": "big"}], "P things: unexpected answer (0.size: "),
    ],
)
def test_data_that_does_not_fit_names_the_field(data: Any, says: str) -> None:
    kind: Any = list[Thing] if isinstance(data, list) else Thing
    with pytest.raises(UnexpectedResponse) as caught:
        envelope.parse(kind, data, provider="P", endpoint="things")
    assert str(caught.value).startswith(says)
    assert caught.value.provider == "P" and caught.value.endpoint == "things"
