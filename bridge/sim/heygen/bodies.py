"""Reading HeyGen request bodies as the real service does.

JSON ``null`` means "not given" for every optional field: pipecat's client sends ``null`` for
each optional field it has no value for, and HeyGen takes that as the field left out (issue 9).
Fields the fake does not know are ignored, as HeyGen ignores the JS SDK's ``source``,
``ia_is_livekit_transport`` or pipecat's ``knowledge_id``; the ledger keeps every body whole,
so a test catches a misspelt field there.  Values that are wrong answer 400 with code 400175
(INVALID_PARAMETER), missing ones 40001 (MISSING_PARAMS), as in reference §1.3–1.4.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from bridge.sim.heygen.wire import EMOTIONS, QUALITY_SIZES, invalid, missing

TaskType = Literal["repeat", "chat", "talk"]
TaskMode = Literal["sync", "async"]


async def json_body(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object; none at all is an empty one."""
    if not request.body_exists:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise invalid("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise invalid("the body must be a JSON object")
    return body


def given(body: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """``body[key]``, or ``default`` when the client left it out or sent null."""
    value = body.get(key)
    return default if value is None else value


@dataclass(frozen=True, slots=True)
class NewSession:
    """What ``streaming.new`` asked for, defaults filled in (reference §1.3)."""

    quality: str
    avatar_id: str
    voice_rate: float
    encoding: str
    idle_timeout: float | None  # None: disabled
    version: str | None  # "v2" = LiveKit; None = legacy v1 (raw WebRTC)
    own_livekit: dict[str, str] | None


def new_session(body: Mapping[str, Any]) -> NewSession:
    quality = given(body, "quality", "medium")
    if quality not in QUALITY_SIZES:
        raise invalid("quality must be one of high, medium, low")
    encoding = given(body, "video_encoding", "VP8")
    if encoding not in ("H264", "VP8"):
        raise invalid("video_encoding must be H264 or VP8")
    version = given(body, "version")
    if version not in (None, "v2"):
        raise invalid("version must be v2")
    return NewSession(
        quality=quality,
        # The docs say avatar_id; the JS SDK sends avatar_name.
        avatar_id=given(body, "avatar_id") or given(body, "avatar_name") or "default",
        voice_rate=_voice_rate(given(body, "voice")),
        encoding=encoding,
        idle_timeout=_idle_timeout(body),
        version=version,
        own_livekit=_livekit_settings(given(body, "livekit_settings")),
    )


def _voice_rate(voice: Any) -> float:
    if voice is None:
        return 1.0
    if not isinstance(voice, dict):
        raise invalid("voice must be an object")
    rate = given(voice, "rate", 1.0)
    if not isinstance(rate, int | float) or not 0.5 <= rate <= 1.5:
        raise invalid("voice.rate must be between 0.5 and 1.5")
    emotion = given(voice, "emotion")
    if emotion is not None and str(emotion).lower() not in EMOTIONS:
        raise invalid(f"voice.emotion {emotion!r} is not supported")
    return float(rate)


def _idle_timeout(body: Mapping[str, Any]) -> float | None:
    if given(body, "disable_idle_timeout") is True:
        return None
    idle = given(body, "activity_idle_timeout", 120)
    if not isinstance(idle, int) or isinstance(idle, bool) or not 30 <= idle <= 3600:
        raise invalid("activity_idle_timeout must be an integer from 30 to 3600")
    return float(idle)


def _livekit_settings(raw: Any) -> dict[str, str] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not all(
        isinstance(raw.get(k), str) and raw[k] for k in ("url", "room", "token")
    ):
        raise missing("livekit_settings needs url, room and token")
    return {k: raw[k] for k in ("url", "room", "token")}


@dataclass(frozen=True, slots=True)
class Task:
    """What ``streaming.task`` asked for (``task_type`` repeat by default, ``task_mode`` sync)."""

    text: str
    task_type: TaskType
    task_mode: TaskMode


def task(body: Mapping[str, Any], *, max_text: int) -> Task:
    text = given(body, "text")
    if not isinstance(text, str) or not text.strip():
        raise missing("text is required")
    if len(text) > max_text:
        raise invalid(f"text is longer than {max_text} characters")
    task_type = given(body, "task_type", "repeat")
    if task_type not in ("repeat", "chat", "talk"):
        raise invalid("task_type must be repeat or chat")
    task_mode = given(body, "task_mode", "sync")
    if task_mode not in ("sync", "async"):
        raise invalid("task_mode must be sync or async")
    return Task(text=text, task_type=task_type, task_mode=task_mode)


def ice_candidate(body: Mapping[str, Any]) -> dict[str, Any]:
    """The ``candidate`` object of a legacy ``streaming.ice`` call."""
    candidate = given(body, "candidate")
    if not isinstance(candidate, dict) or not isinstance(candidate.get("candidate"), str):
        raise missing("candidate.candidate is required")
    return candidate
