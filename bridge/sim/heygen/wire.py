"""What the HeyGen fake says on the wire: codes, envelopes, avatars, data-channel events.

Envelopes (reference/heygen-api.md §1.1): ``{"code": 100, "message": "success", "data": ...}``;
create_token answers ``{"error": null, "data": {"token": ...}}``; errors are non-2xx with
``{"code", "message"}`` (§1.4).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from bridge.sim.faults import error_response
from bridge.sim.media import Packets
from bridge.sim.service import Refusal
from bridge.synthetic.performer import SpeechEvent

SUCCESS = 100
UNAUTHORIZED = 400112
MISSING_PARAMS = 40001
INVALID_PARAMETER = 400175
STATE_CODES = {"new": 10001, "connecting": 10002, "connected": 10003, "closing": 10004}
CLOSED = 10005
NOT_FOUND = 10006
CONCURRENT_LIMIT = 10007
AVATAR_NOT_FOUND = 10012

QUALITY_SIZES = {"high": (1280, 720), "medium": (854, 480), "low": (640, 360)}
EMOTIONS = {"excited", "serious", "friendly", "soothing", "broadcaster"}

DEFAULT_AVATARS: tuple[dict[str, Any], ...] = (
    {
        "avatar_id": "default",
        "created_at": 1700000000,
        "default_voice": "sim-voice-1",
        "is_public": True,
        "normal_preview": "https://example.invalid/default.png",
        "pose_name": "Demo presenter",
        "status": "ACTIVE",
    },
    {
        "avatar_id": "Wayne_20240711",
        "created_at": 1720656000,
        "default_voice": "sim-voice-2",
        "is_public": True,
        "normal_preview": "https://example.invalid/wayne.png",
        "pose_name": "Wayne",
        "status": "ACTIVE",
    },
    {
        "avatar_id": "Anna_legacy_v1",
        "created_at": 1690000000,
        "default_voice": "sim-voice-1",
        "is_public": True,
        "normal_preview": "https://example.invalid/anna.png",
        "pose_name": "Anna (inactive)",
        "status": "INACTIVE",
    },
)


class HeyGenRefusal(Refusal):
    """Answer the request with this HTTP status and HeyGen code."""

    def __init__(self, status: int, code: int, message: str) -> None:
        self.status, self.code, self.message = status, code, message
        super().__init__(message)

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message)


def invalid(message: str) -> HeyGenRefusal:
    return HeyGenRefusal(400, INVALID_PARAMETER, message)


def missing(message: str) -> HeyGenRefusal:
    return HeyGenRefusal(400, MISSING_PARAMS, message)


def unauthorized(message: str = "Unauthorized") -> HeyGenRefusal:
    return HeyGenRefusal(401, UNAUTHORIZED, message)


def ok(data: Any) -> web.Response:
    return web.json_response({"code": SUCCESS, "message": "success", "data": data})


class HeyGenDialect:
    """HeyGen's data-channel events (reference §3.1): JSON with ``type``, no topic."""

    def packets(self, event: SpeechEvent) -> Packets:
        kinds = {
            "started": "avatar_start_talking",
            "words": "avatar_talking_message",
            "finished": "avatar_end_message",
            "ended": "avatar_stop_talking",
        }
        body: dict[str, Any] = {"type": kinds[event.kind], "task_id": event.task_id}
        if event.kind == "words":
            body["message"] = event.text
        if event.kind == "ended":
            body["duration_ms"] = event.duration_ms
        return [(json.dumps(body).encode(), "")]


def fake_offer(session_id: str) -> str:
    """The SDP offer of a legacy v1 (raw WebRTC) session; nothing ever answers it."""
    return (
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\n"
        f"s=heygen-sim-{session_id[:8]}\r\nt=0 0\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\n"
    )
