"""The HeyGen provider's own logic: reading the avatar's data packets, building streaming.new."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest

from bridge.config import AvatarConfig, Secret
from bridge.providers.events import AvatarEvent
from bridge.providers.heygen.client import HeyGenClient
from bridge.providers.heygen.own_room import OwnRoom
from bridge.providers.heygen.provider import HeyGenProvider, HeyGenSession, decode_event
from bridge.source.room import RoomAddress


def packet(kind: str, **fields: Any) -> bytes:
    return json.dumps({"type": kind, **fields}).encode()


def test_decode_maps_every_speech_event() -> None:
    """reference/heygen-api.md §3.1: one utterance, then the user's transcript."""
    assert decode_event(packet("avatar_start_talking", task_id="t1")) == [
        AvatarEvent("speak_started", "t1")
    ]
    assert decode_event(packet("avatar_talking_message", task_id="t1", message="Hi ")) == [
        AvatarEvent("speak_text", "t1", text="Hi ")
    ]
    assert decode_event(packet("avatar_stop_talking", task_id="t1", duration_ms=1520)) == [
        AvatarEvent("speak_ended", "t1", duration_ms=1520.0)
    ]
    assert decode_event(packet("avatar_stop_talking", task_id="t2")) == [  # before SDK 1.0.15
        AvatarEvent("speak_ended", "t2")
    ]
    assert decode_event(packet("user_talking_message", message="hello avatar")) == [
        AvatarEvent("user_text", text="hello avatar")
    ]
    assert decode_event(packet("user_end_message")) == [AvatarEvent("user_ended")]


def test_a_session_hears_one_utterance_whole() -> None:
    """The user's transcript comes in chunks; the session makes one ``user_text`` of them at
    their end, as LiveAvatar's ``user.transcription`` is one."""
    session = HeyGenSession(
        client=HeyGenClient(base_url="http://127.0.0.1:9", credential=Secret("unused")),
        session_id="s1",
        media=RoomAddress(url="ws://127.0.0.1:9", token="t"),
        keep_alive_every=60.0,
    )
    assert session.decode(packet("user_talking_message", message="What time "), None) == []
    assert session.decode(packet("user_talking_message", message="is it?"), None) == []
    assert session.decode(packet("user_end_message"), None) == [
        AvatarEvent("user_text", text="What time is it?")
    ]
    assert session.decode(packet("user_end_message"), None) == []  # nothing heard since


@pytest.mark.parametrize(
    "payload",
    [
        packet("avatar_end_message", task_id="t1"),  # the transcript went out word by word
        packet("user_start"),
        packet("something_new", task_id="t1"),
        packet("avatar_talking_message", task_id="t1"),  # no message
        packet("user_talking_message", message=7),
        b'"push_to_talk:start"',  # what the SDK publishes (a JSON string)
        b"[1, 2]",
        b"not json",
        b"\xff\xfe",
    ],
)
def test_decode_ignores_what_it_does_not_know(payload: bytes) -> None:
    assert decode_event(payload) == []


def test_decode_drops_a_task_id_that_is_not_a_string() -> None:
    assert decode_event(packet("avatar_start_talking", task_id=5)) == [
        AvatarEvent("speak_started", None)
    ]


def provider(own_room: OwnRoom | None = None, **avatar: Any) -> HeyGenProvider:
    client = HeyGenClient(base_url="http://127.0.0.1:9", credential=Secret("unused"))
    return HeyGenProvider(client=client, avatar=AvatarConfig(**avatar), own_room=own_room)


def test_new_session_request_from_config() -> None:
    request = provider(
        avatar_id="Wayne_20240711",
        quality="medium",
        voice_id="voice-1",
        voice_rate=1.2,
        voice_emotion="friendly",
        language="de",
        video_encoding="VP8",
        knowledge_base="You are a helpful guide.",
        knowledge_base_id="kb-1",
        activity_idle_timeout=300,
    ).new_session_request()
    assert request.model_dump(exclude_none=True) == {
        "quality": "medium",
        "avatar_id": "Wayne_20240711",
        "voice": {"voice_id": "voice-1", "rate": 1.2, "emotion": "friendly"},
        "video_encoding": "VP8",
        "knowledge_base": "You are a helpful guide.",
        "knowledge_base_id": "kb-1",
        "version": "v2",
        "language": "de",
        "activity_idle_timeout": 300,
    }


def test_new_session_request_leaves_out_what_is_not_set() -> None:
    dumped = provider().new_session_request().model_dump(exclude_none=True)
    assert dumped == {
        "quality": "high",
        "version": "v2",
        "video_encoding": "H264",
        "language": "en",
        "activity_idle_timeout": 120,
    }


def test_own_room_gives_the_avatar_a_publishing_token_as_heygen() -> None:
    room = OwnRoom(
        url="wss://lk.example", room="stage", api_key=Secret("key"), api_secret=Secret("s" * 32)
    )
    settings = provider(own_room=room).new_session_request().livekit_settings
    assert settings is not None
    assert (settings.url, settings.room) == ("wss://lk.example", "stage")
    claims = jwt.decode(settings.token, "s" * 32, algorithms=["HS256"])
    assert claims["sub"] == "heygen"
    assert claims["video"]["room"] == "stage" and claims["video"]["canPublish"] is True
