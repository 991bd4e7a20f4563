"""Typed requests and answers of the HeyGen Streaming API (reference/heygen-api.md §1.2–1.3).

Requests are strict and answers lenient (:mod:`bridge.providers.rest.models`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bridge.providers.rest.models import Answer, Request

Quality = Literal["high", "medium", "low"]
TaskType = Literal["repeat", "chat", "talk"]
TaskMode = Literal["sync", "async"]
SessionStatus = Literal["new", "connecting", "connected", "closing", "closed"]


class ElevenLabsSettings(Request):
    stability: float | None = Field(default=None, ge=0, le=1)
    similarity_boost: float | None = Field(default=None, ge=0, le=1)
    style: float | None = Field(default=None, ge=0, le=1)
    use_speaker_boost: bool | None = None
    model_id: Literal["eleven_flash_v2_5", "eleven_multilingual_v2"] | None = None


class Voice(Request):
    voice_id: str | None = None
    rate: float | None = Field(default=None, ge=0.5, le=1.5)
    # HeyGen's SDK sends emotions in lower case (the docs capitalise them).
    emotion: Literal["excited", "serious", "friendly", "soothing", "broadcaster"] | None = None
    elevenlabs_settings: ElevenLabsSettings | None = None


class SttSettings(Request):
    provider: Literal["deepgram", "gladia"] | None = None
    confidence: float | None = Field(default=None, ge=0, le=1)


class LiveKitSettings(Request):
    """Your own LiveKit room; ``token`` is the JWT the *avatar* joins it with."""

    url: str
    room: str
    token: str


class NewSessionRequest(Request):
    quality: Quality | None = None
    avatar_id: str | None = None
    voice: Voice | None = None
    video_encoding: Literal["H264", "VP8"] | None = None
    knowledge_base: str | None = None
    knowledge_base_id: str | None = None
    version: Literal["v2"] | None = "v2"
    language: str | None = None
    activity_idle_timeout: int | None = Field(default=None, ge=30, le=3600)
    disable_idle_timeout: bool | None = None
    stt_settings: SttSettings | None = None
    livekit_settings: LiveKitSettings | None = None


class IceServer(Answer):
    """A STUN/TURN server of a v1 (raw WebRTC) session (``ice_servers2``)."""

    urls: list[str] = Field(default_factory=list)
    username: str | None = None
    credential: str | None = None


class NewSessionData(Answer):
    """``streaming.new``: the LiveKit room (v2) or the SDP offer (v1) of the new session."""

    session_id: str
    url: str | None = None
    access_token: str | None = None
    livekit_agent_token: str | None = None
    realtime_endpoint: str | None = None
    is_paid: bool | None = None
    session_duration_limit: int | None = None
    sdp: dict[str, str] | None = None  # v1 (raw WebRTC) offer
    ice_servers2: list[IceServer] | None = None


class TaskData(Answer):
    task_id: str
    duration_ms: float = 0.0


class SessionSummary(Answer):
    """An active session (``GET /v1/streaming.list``)."""

    session_id: str
    status: str
    created_at: float | None = None


class HistoricSession(SessionSummary):
    """A past session (``GET /v2/streaming.list``): the summary and what it cost."""

    api_key_type: str | None = None
    duration: float | None = None
    avatar_id: str | None = None
    voice_name: str | None = None


class SessionHistoryPage(Answer):
    total: int = 0
    page: int = 1
    page_size: int = 0
    next_pagination_token: str | None = None
    data: list[HistoricSession] = Field(default_factory=list)


class StreamingAvatar(Answer):
    """An avatar the account can stream (``GET /v1/streaming/avatar.list``)."""

    avatar_id: str
    created_at: float | None = None
    default_voice: str | None = None
    is_public: bool | None = None
    normal_preview: str | None = None
    pose_name: str | None = None
    status: str | None = None


class IceCandidate(Request):
    """A local ICE candidate for ``streaming.ice`` (legacy v1), as the browser names it."""

    candidate: str
    sdpMid: str | None = None
    sdpMLineIndex: int | None = None
    usernameFragment: str | None = None
