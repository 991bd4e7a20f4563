"""How the fakes read request bodies: null means "not given"; unknown fields are named."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bridge.sim.heygen import bodies
from bridge.sim.heygen.wire import HeyGenRefusal
from bridge.sim.liveavatar.schemas import TOKEN_BODY, FullBody, StopBody, unknown_fields

ANN = "0930fd59-c8ad-434d-ad53-b391a1768720"


def test_heygen_new_session_takes_null_as_left_out() -> None:
    nulls = {
        "quality": None,
        "avatar_id": None,
        "avatar_name": None,
        "voice": {"voice_id": None, "rate": None, "emotion": None, "elevenlabs_settings": None},
        "video_encoding": None,
        "version": None,
        "activity_idle_timeout": None,
        "disable_idle_timeout": None,
        "livekit_settings": None,
    }
    assert bodies.new_session(nulls) == bodies.new_session({})
    assert bodies.new_session({}) == bodies.NewSession(
        quality="medium",
        avatar_id="default",
        voice_rate=1.0,
        encoding="VP8",
        idle_timeout=120.0,
        version=None,
        own_livekit=None,
    )
    assert bodies.new_session({"voice": None}).voice_rate == 1.0


def test_heygen_task_takes_null_as_left_out() -> None:
    ask = bodies.task({"text": "hi", "task_type": None, "task_mode": None}, max_text=10)
    assert (ask.task_type, ask.task_mode) == ("repeat", "sync")


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ({"quality": "ultra"}, 400175, "quality"),
        ({"voice": {"rate": 2}}, 400175, "voice.rate"),
        ({"voice": "fast"}, 400175, "voice must be an object"),
        ({"activity_idle_timeout": 10}, 400175, "activity_idle_timeout"),
        ({"version": "v3"}, 400175, "version"),
        ({"livekit_settings": {"url": "ws://x"}}, 40001, "livekit_settings"),
    ],
)
def test_heygen_wrong_values_are_still_refused(body: dict[str, Any], code: int, words: str) -> None:
    with pytest.raises(HeyGenRefusal) as caught:
        bodies.new_session(body)
    assert caught.value.code == code and words in caught.value.message


def test_liveavatar_null_is_left_out_but_required_stays_required() -> None:
    body = TOKEN_BODY.validate_python(
        {
            "mode": "FULL",
            "avatar_id": ANN,
            "avatar_persona": {"language": None, "voice_settings": None},
            "is_sandbox": None,
            "interactivity_type": None,
        }
    )
    assert isinstance(body, FullBody)
    assert (body.avatar_persona.language, body.is_sandbox) == ("en", False)
    assert body.interactivity_type == "CONVERSATIONAL"
    assert StopBody.model_validate({"reason": None}).reason == "UNKNOWN"
    with pytest.raises(ValidationError):
        TOKEN_BODY.validate_python({"mode": "FULL", "avatar_id": None})


def test_liveavatar_names_the_fields_it_ignored() -> None:
    raw = {
        "mode": "FULL",
        "avatar_id": ANN,
        "avatar_persona": {"contex_id": "x", "language": "de"},
        "video_setings": {"quality": "low"},
        "video_quality": "low",  # not in the OpenAPI, but LiveKit's plugin sends it: known
    }
    body = TOKEN_BODY.validate_python(raw)
    assert unknown_fields(body, raw) == ["avatar_persona.contex_id", "video_setings"]
