"""What a speak request asks for, read from whatever a client can send.

Clients label bodies loosely (``curl -d`` labels JSON as a form, Stream Deck's "Web
Requests" plugin as ``text/plain``; Companion's Content-Type is a dropdown), so:

- a body that starts with ``{``: a JSON object, whatever the Content-Type says;
- ``application/x-www-form-urlencoded`` and ``multipart/form-data``: a form with the fields;
- ``text/plain``: the text itself;
- anything else (``application/json``, none, ``application/octet-stream``, ...): JSON.

On ``POST`` the query string may carry fields too (Companion's URL field); on ``GET`` it is
the only place (Stream Deck's Website action cannot send a body).  ``token`` in the query is
the guard's.  The fields are ``text``, ``mode`` and ``priority``; any other is a 400, as is a
field given twice, a file in a form, or bytes that are not UTF-8.  The values themselves are
the queue's to judge (:meth:`SpeechQueue.submit`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from bridge.errors import BadInput

FIELDS = ("text", "mode", "priority")
GUARD_FIELDS = frozenset({"token"})
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
MAX_FIELDS = 20
EXAMPLE = '{"text": "Hello"}'


@dataclass(frozen=True, slots=True)
class SpeakFields:
    """A speak request's fields as sent (types unchecked: the queue validates them)."""

    text: object
    mode: object = "repeat"
    priority: object = "normal"


def query_fields(request: web.Request) -> dict[str, str]:
    """The query string's fields but ``token``, decoded strictly (bad UTF-8 is a 400)."""
    try:
        pairs = parse_qsl(
            request.rel_url.raw_query_string,
            keep_blank_values=True,
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeDecodeError:
        raise BadInput("query", "is not valid UTF-8 once percent-decoded") from None
    except ValueError:
        raise BadInput("query", f"has more than {MAX_FIELDS} fields") from None
    return _unique(((k, v) for k, v in pairs if k not in GUARD_FIELDS), "query")


async def body_fields(request: web.Request) -> dict[str, Any] | None:
    """The body's fields, read per the module docstring; None for no body (or blanks)."""
    media_type = request.content_type.lower()
    if media_type == "multipart/form-data":  # read as a stream: not through read()
        return await _multipart(request)
    raw = await request.read()
    if not raw.strip():
        return None
    if raw.lstrip().startswith(b"{"):
        return _json_object(raw)
    if media_type == "application/x-www-form-urlencoded":
        return _urlencoded(raw, request.charset)
    if media_type == "text/plain":
        return {"text": _decode(raw, request.charset, "body")}
    return _json_object(raw)


def speak_fields(fields: dict[str, Any]) -> SpeakFields:
    """The speak request in ``fields``; :class:`BadInput` for a missing text or another field."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise BadInput(unknown[0], f"unknown field (allowed: {', '.join(FIELDS)})")
    if "text" not in fields:
        raise BadInput("text", f"missing; send JSON like {EXAMPLE} or ?text=Hello")
    return SpeakFields(
        text=fields["text"],
        mode=fields.get("mode", "repeat"),
        priority=fields.get("priority", "normal"),
    )


async def read_speak(request: web.Request) -> SpeakFields:
    """The speak request of a ``GET`` (query) or a ``POST`` (query and body, each field in
    one of them only)."""
    fields: dict[str, Any] = query_fields(request)
    if request.method == "POST":
        body = await body_fields(request)
        if body is None and not fields:
            raise BadInput("body", f"is empty; send JSON like {EXAMPLE}")
        both = sorted(set(fields) & set(body or {}))
        if both:
            raise BadInput(both[0], "given both in the query string and in the body; give it once")
        fields |= body or {}
    return speak_fields(fields)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadInput("body", f"is not valid JSON; send JSON like {EXAMPLE}") from None
    if not isinstance(body, dict):
        raise BadInput("body", f"must be a JSON object like {EXAMPLE}")
    return body


def _decode(raw: bytes, charset: str | None, where: str) -> str:
    try:
        return raw.decode(charset or "utf-8")
    except LookupError:
        raise BadInput("Content-Type", f"charset {charset!r} is unknown; use utf-8") from None
    except UnicodeDecodeError:
        raise BadInput(where, f"is not valid {charset or 'utf-8'}") from None


def _urlencoded(raw: bytes, charset: str | None) -> dict[str, Any]:
    text = _decode(raw, "ascii", "body")  # a form is percent-encoded: plain ASCII
    try:
        pairs = parse_qsl(
            text.strip(),
            keep_blank_values=True,
            encoding=charset or "utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except LookupError:
        raise BadInput("Content-Type", f"charset {charset!r} is unknown; use utf-8") from None
    except UnicodeDecodeError:
        raise BadInput("body", "is not valid UTF-8 once percent-decoded") from None
    except ValueError:
        raise BadInput("body", f"has more than {MAX_FIELDS} form fields") from None
    return _unique(pairs, "body")


async def _multipart(request: web.Request) -> dict[str, Any]:
    try:
        form = await request.post()
    except web.HTTPException:
        raise
    except (ValueError, AssertionError, UnicodeDecodeError) as exc:
        # aiohttp's multipart reader raises these for a malformed body or boundary.
        raise BadInput("body", f"is not a readable multipart form ({type(exc).__name__})") from None
    pairs: list[tuple[str, str]] = []
    for name, value in form.items():
        if not isinstance(value, str):
            raise BadInput(name, "is a file; send it as a plain form field")
        pairs.append((name, value))
    return _unique(pairs, "body")


def _unique(pairs: Iterable[tuple[str, str]], where: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise BadInput(name, f"given twice in the {where}; give it once")
        fields[name] = value
    return fields
