"""Reading provider answers: the success envelope and the error body, whatever their shape.

Both providers wrap data as ``{"code": ..., "message": ..., "data": ...}`` (HeyGen's
create_token uses ``{"error": null, "data": ...}``); errors come as ``{"code", "message"}``,
FastAPI's ``{"detail": [...]}`` (LiveAvatar 422) or plain text.  Success is judged by the
HTTP status; a 2xx whose envelope carries a failure code and no data is a failure too
(LiveAvatar's SDK treats HTTP 200 + code != 1000 that way).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from bridge.errors import ApiFault, UnexpectedResponse
from bridge.providers.rest.client import Reply

T = TypeVar("T")


def fault_of(reply: Reply) -> ApiFault:
    """The provider's code and message from an error answer, as well as it can be read."""
    body = reply.body
    code: int | None = None
    message = ""
    if isinstance(body, dict):
        raw_code = body.get("code")
        if isinstance(raw_code, int) and not isinstance(raw_code, bool):
            code = raw_code
        detail = body.get("detail")
        error = body.get("error")
        if isinstance(body.get("message"), str):
            message = body["message"]
        elif isinstance(detail, list) and detail:
            message = "; ".join(_validation_line(item) for item in detail[:5])
        elif isinstance(detail, str):
            message = detail
        elif isinstance(error, dict) and isinstance(error.get("message"), str):
            message = error["message"]
            code = error.get("code") if isinstance(error.get("code"), int) else code
        elif isinstance(error, str):
            message = error
    elif reply.text.strip():
        message = " ".join(reply.text.split())[:200]
    return ApiFault(status=reply.status, code=code, message=message)


def _validation_line(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)[:120]
    loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
    msg = str(item.get("msg", "invalid"))
    return f"{loc}: {msg}" if loc else msg


def is_envelope_failure(reply: Reply, success_codes: Collection[int]) -> bool:
    """A 2xx answer whose envelope says it failed: a foreign code and no data."""
    body = reply.body
    if not isinstance(body, dict):
        return False
    code = body.get("code")
    if not isinstance(code, int) or code in success_codes:
        return False
    return body.get("data") is None


def data_of(reply: Reply) -> Any:
    """``data`` of a success envelope, or None (several endpoints answer without data)."""
    body = reply.body
    return body.get("data") if isinstance(body, dict) else None


def retry_after(reply: Reply) -> float | None:
    value = reply.headers.get("Retry-After") or reply.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def parse(kind: type[T], data: Any, *, provider: str, endpoint: str) -> T:
    """A successful answer's data as ``kind``, or :class:`UnexpectedResponse` naming the field."""
    if data is None:
        raise unexpected(provider, endpoint, "no data in the answer")
    try:
        return TypeAdapter(kind).validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "answer"
        raise unexpected(provider, endpoint, f"{where}: {first['msg']}") from None


def unexpected(provider: str, endpoint: str, what: str) -> UnexpectedResponse:
    return UnexpectedResponse(
        f"{provider} {endpoint}: unexpected answer ({what})", provider=provider, endpoint=endpoint
    )
