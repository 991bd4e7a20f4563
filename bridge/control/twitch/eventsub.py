"""EventSub WebSocket frames (dev.twitch.tv/docs/eventsub/handling-websocket-events), read
without I/O.

Every frame is ``{"metadata": {"message_id", "message_type", "message_timestamp", ...},
"payload": {...}}``.  :func:`parse_frame` gives one of :class:`Welcome`, :class:`Keepalive`,
:class:`Notification`, :class:`Reconnect`, :class:`Revocation` or :class:`Unknown` (a type
this code does not know: counted, not fatal), or raises :class:`MalformedFrame`.
:func:`chat_message` reads a notification's event: ``channel.chat.message`` (its fragments
without emotes and cheermotes) or ``channel.channel_points_custom_reward_redemption.add``
(the viewer's ``user_input``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, TypeGuard

from bridge.control.twitch.chat import LOGIN, ChatMessage

__all__ = [
    "CHAT",
    "REDEMPTION",
    "Frame",
    "Keepalive",
    "MalformedFrame",
    "Notification",
    "Reconnect",
    "Revocation",
    "Unknown",
    "Welcome",
    "chat_message",
    "parse_frame",
]

CHAT = "channel.chat.message"
REDEMPTION = "channel.channel_points_custom_reward_redemption.add"
# Fragments that are pictures, not words.
_SILENT_FRAGMENTS = frozenset({"emote", "cheermote"})
_SPACES = re.compile(r"\s+")
MAX_FRAME = 256 * 1024


class MalformedFrame(ValueError):
    """Not an EventSub frame, or a frame without the fields its type requires."""


@dataclass(frozen=True, slots=True)
class Welcome:
    message_id: str
    session_id: str
    keepalive_s: int | None


@dataclass(frozen=True, slots=True)
class Keepalive:
    message_id: str


@dataclass(frozen=True, slots=True)
class Notification:
    message_id: str
    subscription_type: str
    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Reconnect:
    message_id: str
    url: str


@dataclass(frozen=True, slots=True)
class Revocation:
    message_id: str
    subscription_type: str
    status: str


@dataclass(frozen=True, slots=True)
class Unknown:
    message_id: str
    message_type: str


Frame = Welcome | Keepalive | Notification | Reconnect | Revocation | Unknown


def parse_frame(text: str) -> Frame:
    if len(text) > MAX_FRAME:
        raise MalformedFrame(f"longer than {MAX_FRAME} characters")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise MalformedFrame("not JSON") from None
    metadata = _object(data, "metadata") if isinstance(data, dict) else None
    if metadata is None or not isinstance(data, dict):
        raise MalformedFrame("no metadata")
    message_id = _string(metadata, "message_id")
    kind = _string(metadata, "message_type")
    payload = _object(data, "payload")
    if payload is None:
        raise MalformedFrame("no payload")
    if kind == "session_welcome":
        session = _required_object(payload, "session")
        keepalive = session.get("keepalive_timeout_seconds")
        return Welcome(
            message_id,
            _string(session, "id"),
            keepalive if _is_int(keepalive) and 0 < keepalive <= 3600 else None,
        )
    if kind == "session_keepalive":
        return Keepalive(message_id)
    if kind == "session_reconnect":
        url = _string(_required_object(payload, "session"), "reconnect_url")
        if not url.startswith(("ws://", "wss://")):
            raise MalformedFrame("reconnect_url is not a WebSocket URL")
        return Reconnect(message_id, url)
    if kind == "notification":
        subscription = _required_object(payload, "subscription")
        return Notification(
            message_id, _string(subscription, "type"), _required_object(payload, "event")
        )
    if kind == "revocation":
        subscription = _required_object(payload, "subscription")
        return Revocation(
            message_id, _string(subscription, "type"), _string(subscription, "status")
        )
    return Unknown(message_id, kind[:64])


def chat_message(notification: Notification) -> ChatMessage | None:
    """The chat message of a chat or redemption notification; None for other types."""
    event = notification.event
    if notification.subscription_type == CHAT:
        message = _required_object(event, "message")
        said = _fragments_text(message)
        cheer = event.get("cheer")
        bits = cheer.get("bits") if isinstance(cheer, dict) else 0
        reward = event.get("channel_points_custom_reward_id")
        return ChatMessage(
            channel=_login(event, "broadcaster_user_login"),
            user=_login(event, "chatter_user_login"),
            text=said,
            display_name=_optional_string(event, "chatter_user_name"),
            badges=_badges(event.get("badges")),
            bits=bits if _is_int(bits) and bits > 0 else 0,
            first=event.get("message_type") == "user_intro",
            reward_id=reward if isinstance(reward, str) and reward else None,
            message_id=_optional_string(event, "message_id") or None,
            emote_only=not said and bool(_optional_string(message, "text").strip()),
        )
    if notification.subscription_type == REDEMPTION:
        reward = _required_object(event, "reward")
        return ChatMessage(
            channel=_login(event, "broadcaster_user_login"),
            user=_login(event, "user_login"),
            text=_SPACES.sub(" ", _optional_string(event, "user_input")).strip(),
            display_name=_optional_string(event, "user_name"),
            reward_id=_string(reward, "id"),
            redemption=True,
        )
    return None


def _fragments_text(message: dict[str, Any]) -> str:
    fragments = message.get("fragments")
    if not isinstance(fragments, list):
        return _SPACES.sub(" ", _string(message, "text")).strip()
    words = []
    for fragment in fragments:
        if not isinstance(fragment, dict):
            raise MalformedFrame("a fragment is not an object")
        if fragment.get("type") not in _SILENT_FRAGMENTS:
            words.append(_string(fragment, "text"))
    return _SPACES.sub(" ", " ".join(words)).strip()


def _badges(badges: object) -> frozenset[str]:
    if not isinstance(badges, list):
        return frozenset()
    return frozenset(
        b["set_id"] for b in badges if isinstance(b, dict) and isinstance(b.get("set_id"), str)
    )


def _object(data: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = data.get(key)
    return value if isinstance(value, dict) else None


def _required_object(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = _object(data, key)
    if value is None:
        raise MalformedFrame(f"{key} is not an object")
    return value


def _string(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedFrame(f"{key} is not a string")
    return value


def _optional_string(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _login(data: dict[str, Any], key: str) -> str:
    value = _string(data, key)
    if LOGIN.fullmatch(value) is None:
        raise MalformedFrame(f"{key} is not a Twitch login")
    return value


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
