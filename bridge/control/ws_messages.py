"""The messages of the WebSocket ``/v1/ws``: reading what clients send, writing what they get.

Clients send JSON objects in text frames::

    {"type": "auth", "token": "..."}
    {"type": "speak", "text": "Hello", "mode": "repeat"|"chat", "priority": "normal"|"now"}
    {"type": "interrupt"}
    {"type": "clear"}
    {"type": "subscribe", "topics": ["speech.*", "session.*"]}   (default: every topic)
    {"type": "listen", "action": "start"|"stop"}   (listen mode: the avatar's ears)

Any of them may carry ``"ref"`` (any JSON value, echoed in the answer so a client can pair
them) and ``"token"``.  Every message gets one answer::

    {"type": "ack", "ref": ..., "items": [...]}          (subscribe: also "topics")
    {"type": "error", "ref": ..., "error": "bad_request", "detail": "text: is empty"}

``error`` is the HTTP API's code for the same refusal (bridge/control/problems.py); a
``busy`` error also carries ``retry_after`` (whole seconds, at least 1).  Events are pushed
as ``{"type": "event", "topic": ..., "at": ..., ...the event's data}``.

Everything here is pure: :class:`~bridge.errors.BadInput` names what is wrong, and nothing
is changed by a message that fails to read.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from bridge.errors import BadInput
from bridge.eventbus import Event

MessageType = Literal["auth", "speak", "interrupt", "clear", "subscribe", "listen"]
# The fields each type may carry beside the ones every message may (COMMON).
FIELDS: dict[str, frozenset[str]] = {
    "auth": frozenset(),
    "speak": frozenset({"text", "mode", "priority"}),
    "interrupt": frozenset(),
    "clear": frozenset(),
    "subscribe": frozenset({"topics"}),
    "listen": frozenset({"action"}),
}
COMMON = frozenset({"type", "ref", "token"})
MAX_TOPICS = 32
# Topic patterns: names and dots with ``*`` as the only wildcard (fnmatch's ``?`` and
# ``[...]`` are left out so a pattern reads the same to a person as to the filter).
TOPIC_PATTERN = re.compile(r"[A-Za-z0-9_.*-]{1,64}")
EXAMPLE = '{"type": "speak", "text": "Hello"}'


@dataclass(frozen=True, slots=True)
class Message:
    """A client message that read well; ``body`` holds its type's own fields."""

    type: MessageType
    ref: Any
    body: dict[str, Any]


def decode(frame: str) -> dict[str, Any]:
    """The JSON object of a text frame, or :class:`BadInput` (not JSON, not an object, a
    number JSON cannot carry back such as NaN or 1e999, nesting too deep to read)."""
    try:
        value = json.loads(frame, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise BadInput("message", "is nested too deeply") from None
    except ValueError:
        raise BadInput("message", f"is not valid JSON; send an object like {EXAMPLE}") from None
    if not isinstance(value, dict):
        raise BadInput("message", f"must be a JSON object like {EXAMPLE}")
    return value


def read(obj: dict[str, Any]) -> Message:
    """The message an object names, or :class:`BadInput` (no or unknown ``type``, a field
    that type does not take)."""
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in FIELDS:
        shown = repr(kind)[:60]
        raise BadInput("type", f"{shown} is not one of {', '.join(FIELDS)}")
    allowed = FIELDS[kind] | COMMON
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise BadInput(
            unknown[0][:60], f"unknown field for {kind} (allowed: {', '.join(sorted(allowed))})"
        )
    body = {name: obj[name] for name in FIELDS[kind] if name in obj}
    return Message(type=cast(MessageType, kind), ref=obj.get("ref"), body=body)


class TopicFilter:
    """Which event topics a client wants: ``*`` wildcards, e.g. ``speech.*``."""

    __slots__ = ("_match", "patterns")

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)
        joined = "|".join(fnmatch.translate(p) for p in self.patterns) or r"(?!)"
        self._match = re.compile(joined).match

    def __call__(self, topic: str) -> bool:
        return self._match(topic) is not None


def topic_filter(value: object) -> TopicFilter | None:
    """The filter a subscribe message's ``topics`` asks for; None means every topic (the
    default, or a list holding ``*``).  An empty list asks for none."""
    if not isinstance(value, list):
        raise BadInput("topics", 'must be a list of topic patterns like ["speech.*"]')
    if len(value) > MAX_TOPICS:
        raise BadInput("topics", f"has {len(value)} patterns; at most {MAX_TOPICS}")
    for pattern in value:
        if not isinstance(pattern, str) or not TOPIC_PATTERN.fullmatch(pattern):
            raise BadInput(
                "topics",
                f"{repr(pattern)[:70]} is not a topic pattern (letters, digits, '_', '-', "
                "'.' and '*', at most 64 characters)",
            )
    if "*" in value:
        return None
    return TopicFilter(list(dict.fromkeys(value)))


def ack(ref: Any, items: Sequence[dict[str, Any]] = (), **extra: Any) -> str:
    return encode({"type": "ack", "ref": ref, "items": list(items), **extra})


def error(ref: Any, code: str, detail: str, *, retry_after: int | None = None) -> str:
    message: dict[str, Any] = {"type": "error", "ref": ref, "error": code, "detail": detail}
    if retry_after is not None:
        message["retry_after"] = retry_after
    return encode(message)


def event_message(event: Event) -> str:
    message: dict[str, Any] = {"type": "event", **event.as_json()}
    message["type"] = "event"  # an event's own "type" field must not hide what this is
    return encode(message)


def encode(message: dict[str, Any]) -> str:
    """JSON text for a frame.  ASCII only: a lone surrogate a client sent in its ``ref``
    comes back escaped instead of failing the UTF-8 encoding of the frame; values JSON has
    no type for (enums, paths) are written as their ``str``."""
    return json.dumps(message, separators=(",", ":"), default=str)


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value
