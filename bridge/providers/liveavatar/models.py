"""Typed requests and answers of the LiveAvatar API (reference/liveavatar-api.md §1).

Requests are strict and answers lenient (:mod:`bridge.providers.rest.models`).  Only FULL
mode is modelled: the bridge needs LiveAvatar's own room, LLM and voice, not a LITE session
driving our own audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from pydantic import Field

from bridge.config import Secret
from bridge.providers.rest.models import Answer, Request

VideoQuality = Literal["very_high", "high", "medium", "low"]
VideoEncoding = Literal["H264", "VP8"]
InteractivityType = Literal["CONVERSATIONAL", "PUSH_TO_TALK"]
SessionKind = Literal["active", "historic"]
ElevenLabsModel = Literal["eleven_flash_v2_5", "eleven_multilingual_v2"]
SessionEndReason = Literal[
    "UNKNOWN",
    "USER_DISCONNECTED",
    "SERVER_ERROR",
    "IDLE_TIMEOUT",
    "NO_CREDITS",
    "USER_CLOSED",
    "AVATAR_DELETED",
    "MAX_DURATION_REACHED",
    "ZOMBIE_SESSION_REAP",
    "AGENT_HANG_UP",
]
SESSION_END_REASONS: tuple[str, ...] = get_args(SessionEndReason)

# The only avatar a sandbox session may use (D:sandbox-mode).
SANDBOX_AVATAR_ID = "dd73ea75-1218-4ef3-92ce-606d5f7fbc0a"
# ElevenLabs speed range LiveAvatar accepts (OA: 0.8–1.2).
MIN_SPEED, MAX_SPEED = 0.8, 1.2


# --- create a session token (FULL mode) ---------------------------------------------------


class ElevenLabsVoiceSettings(Request):
    """The ``elevenLabs`` variant of ``avatar_persona.voice_settings`` (picked by ``provider``)."""

    provider: Literal["elevenLabs"] = "elevenLabs"
    speed: float = Field(default=1.0, ge=MIN_SPEED, le=MAX_SPEED)
    stability: float | None = Field(default=None, ge=0, le=1)
    similarity_boost: float | None = Field(default=None, ge=0, le=1)
    style: float | None = Field(default=None, ge=0, le=1)
    use_speaker_boost: bool | None = None
    model: ElevenLabsModel | None = None


class AvatarPersona(Request):
    voice_id: str | None = None  # None: the avatar's default voice
    context_id: str | None = None  # None: "restricted mode", the avatar does not answer
    language: str | None = None  # LiveAvatar's default is "en"
    voice_settings: ElevenLabsVoiceSettings | None = None


class VideoSettings(Request):
    quality: VideoQuality = "high"
    encoding: VideoEncoding = "H264"


class FullTokenRequest(Request):
    """``FullSDKSessionTokenConfigDataSchema``: the body of ``POST /v1/sessions/token``."""

    mode: Literal["FULL"] = "FULL"
    avatar_id: str
    # Required by the OpenAPI we follow (a newer revision makes it optional); always sent.
    avatar_persona: AvatarPersona = AvatarPersona()
    video_settings: VideoSettings | None = None
    is_sandbox: bool = False
    max_session_duration: int | None = Field(default=None, gt=0)
    interactivity_type: InteractivityType | None = None


@dataclass(frozen=True, slots=True)
class SessionToken:
    session_id: str
    session_token: Secret


class SessionTokenData(Answer):
    session_id: str
    session_token: str


# --- start -------------------------------------------------------------------------------


class StartSession(Answer):
    """``StartSessionResponseSchema``: where the avatar's LiveKit room is."""

    session_id: str
    livekit_url: str
    livekit_client_token: str
    livekit_agent_token: str | None = None
    max_session_duration: int | None = None
    ws_url: str | None = None  # LITE only


# --- listings ----------------------------------------------------------------------------


class SessionEntry(Answer):
    """``ListSessionEntrySchema`` / ``ListHistoricEntrySchema`` (the latter adds end_*)."""

    id: str
    created_at: datetime
    updated_at: datetime
    duration: float  # seconds; an int in the OpenAPI
    source: str  # DEMO | APP | API | EMBED
    mode: str  # FULL | LITE
    is_sandbox: bool
    credits_consumed: float
    end_at: datetime | None = None
    end_reason: str | None = None  # a SessionEndReason; kept open for new values


class SessionPage(Answer):
    count: int
    next: str | None = None
    previous: str | None = None
    results: list[SessionEntry]


class DefaultVoice(Answer):
    id: str
    name: str | None = None


class Avatar(Answer):
    """``AvatarSchema``."""

    id: str
    name: str
    space_id: str | None = None
    preview_url: str | None = None
    type: str | None = None  # IMAGE | VIDEO
    status: str | None = None  # ACTIVE | INIT | DEPLOYING | FAILED
    is_expired: bool = False
    default_voice: DefaultVoice | None = None
    is_1080p: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None
    error_message: str | None = None


class AvatarPage(Answer):
    count: int
    next: str | None = None
    previous: str | None = None
    results: list[Avatar]
