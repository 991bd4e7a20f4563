"""LiveAvatar's request schemas and FastAPI's answers to bad requests (liveavatar-api.md §1).

The real service is FastAPI over pydantic, so the fake validates with pydantic too: a bad body
is HTTP 422 ``{"detail": [{"loc", "msg", "type", "input", "ctx"?}]}``.  Other refusals are
``{"code": <HTTP status>, "data": null, "message"}`` (the real codes are undocumented).

Two rules about what clients send:

* **Unknown fields are ignored**, as pydantic's default does and as the service does (a
  top-level field put inside ``avatar_persona`` "is silently ignored", §1.3).  The fake also
  names them (:func:`unknown_fields`) and the ledger keeps every body, so a misspelt
  ``context_id`` is caught by a test instead of quietly becoming "no context".
* **JSON null means "not given"** for every field that may be left out (issue 9): real clients
  send ``null`` for optional values they do not have.
"""

from __future__ import annotations

import json
import uuid
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from bridge.sim.service import Refusal

Quality = Literal["very_high", "high", "medium", "low"]


class EndReason(StrEnum):
    """``SessionEndReasonEnum`` (OA)."""

    UNKNOWN = "UNKNOWN"
    USER_DISCONNECTED = "USER_DISCONNECTED"
    SERVER_ERROR = "SERVER_ERROR"
    IDLE_TIMEOUT = "IDLE_TIMEOUT"
    NO_CREDITS = "NO_CREDITS"
    USER_CLOSED = "USER_CLOSED"
    AVATAR_DELETED = "AVATAR_DELETED"
    MAX_DURATION_REACHED = "MAX_DURATION_REACHED"
    ZOMBIE_SESSION_REAP = "ZOMBIE_SESSION_REAP"
    AGENT_HANG_UP = "AGENT_HANG_UP"


class LiveAvatarRefusal(Refusal):
    """Answer with this HTTP status: ``{code, data: null, message}``, or FastAPI's 422 body."""

    def __init__(
        self, status: int, message: str, *, detail: list[dict[str, Any]] | None = None
    ) -> None:
        self.status, self.message, self.detail = status, message, detail
        super().__init__(message)

    def response(self) -> web.Response:
        if self.detail is not None:
            return web.json_response({"detail": self.detail}, status=self.status)
        body = {"code": self.status, "data": None, "message": self.message}
        response = web.json_response(body, status=self.status)
        response["code"] = self.status  # for the ledger
        return response


# --- request schemas (the server's view: defaults filled, unknown fields ignored) ----------


class _Schema(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _null_is_not_given(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        optional = {name for name, f in cls.model_fields.items() if not f.is_required()}
        return {k: v for k, v in data.items() if v is not None or k not in optional}


class _ElevenLabs(_Schema):
    provider: Literal["elevenLabs"]
    speed: float = Field(default=1.0, ge=0.8, le=1.2)
    stability: float = Field(default=0.75, ge=0, le=1)
    similarity_boost: float = Field(default=0.75, ge=0, le=1)
    style: float = Field(default=0.0, ge=0, le=1)
    use_speaker_boost: bool = True
    model: Literal["eleven_flash_v2_5", "eleven_multilingual_v2"] = "eleven_flash_v2_5"
    apply_language_text_normalization: bool = False


class _Fish(_Schema):
    provider: Literal["fish"]
    speed: float = Field(default=1.0, ge=0.8, le=1.2)
    model: Literal["s1", "s2"] = "s2"
    latency_mode: Literal["normal", "balanced"] = "balanced"


class _Stt(_Schema):
    provider: Literal["deepgram", "assembly_ai", "gladia", "elevenlabs"]


class Persona(_Schema):
    voice_id: uuid.UUID | None = None
    context_id: uuid.UUID | None = None
    language: str = "en"
    voice_settings: Annotated[_ElevenLabs | _Fish, Field(discriminator="provider")] | None = None
    stt_config: _Stt | None = None


class _VideoSettings(_Schema):
    quality: Quality = "high"
    encoding: Literal["VP8", "H264"] = "H264"


class FullBody(_Schema):
    mode: Literal["FULL"]
    avatar_id: uuid.UUID
    # Required in the OpenAPI we follow, optional in the newer revision: accepted missing.
    avatar_persona: Persona = Persona()
    is_sandbox: bool = False
    video_settings: _VideoSettings | None = None
    max_session_duration: int | None = Field(default=None, gt=0)
    interactivity_type: Literal["CONVERSATIONAL", "PUSH_TO_TALK"] = "CONVERSATIONAL"
    llm_configuration_id: uuid.UUID | None = None
    video_quality: str | None = None  # not in the schema; LiveKit's plugin sends it


class LiteBody(_Schema):
    mode: Literal["LITE"]
    avatar_id: uuid.UUID


TOKEN_BODY: TypeAdapter[FullBody | LiteBody] = TypeAdapter(
    Annotated[FullBody | LiteBody, Field(discriminator="mode")]
)


class StopBody(_Schema):
    session_id: uuid.UUID | None = None
    reason: EndReason = EndReason.UNKNOWN


class KeepAliveBody(_Schema):
    session_id: uuid.UUID | None = None


class Paging(_Schema):
    page: int = Field(default=1, ge=1)
    page_size: int = Field(default=20, ge=1, le=100)


class SessionsQuery(Paging):
    type: Literal["active", "historic"]
    avatar_id: uuid.UUID | None = None


class SessionPath(_Schema):
    session_id: uuid.UUID


def unknown_fields(model: BaseModel, raw: Any, prefix: str = "") -> list[str]:
    """The fields of ``raw`` that ``model`` ignored, as dotted paths (``avatar_persona.x``)."""
    if not isinstance(raw, dict):
        return []
    fields = type(model).model_fields
    found: list[str] = []
    for key, value in raw.items():
        if key not in fields:
            found.append(prefix + key)
            continue
        child = getattr(model, key)
        if isinstance(child, BaseModel):
            found += unknown_fields(child, value, f"{prefix}{key}.")
    return found


# --- reading requests the FastAPI way ---------------------------------------------------

MISSING: Any = object()  # no body at all
M = TypeVar("M", bound=BaseModel)


async def not_allowed(request: web.Request) -> web.StreamResponse:
    """FastAPI's answer to a method the path does not have."""
    return web.json_response({"detail": "Method Not Allowed"}, status=405)


async def read_body(request: web.Request) -> Any:
    """The JSON body, :data:`MISSING` when there is none; not JSON → FastAPI's 422."""
    if not request.body_exists:
        return MISSING
    text = await request.text()
    if not text.strip():
        return MISSING
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        detail = {
            "type": "json_invalid",
            "loc": ["body", exc.pos],
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": exc.msg},
        }
        raise LiveAvatarRefusal(422, "validation error", detail=[detail]) from None


def missing_body() -> LiveAvatarRefusal:
    detail = {"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}
    return LiveAvatarRefusal(422, "validation error", detail=[detail])


def validate(model: type[M], raw: Any, where: str) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise invalid(exc, where) from None


def invalid(exc: ValidationError, where: str) -> LiveAvatarRefusal:
    """FastAPI's ``HTTPValidationError``: one ``{type, loc, msg, input, ctx?}`` per problem."""
    detail: list[dict[str, Any]] = []
    for error in exc.errors(include_url=False):
        item: dict[str, Any] = {
            "type": error["type"],
            "loc": [where, *error["loc"]],
            "msg": error["msg"],
            "input": error.get("input"),
        }
        if "ctx" in error:
            item["ctx"] = error["ctx"]
        detail.append(item)
    safe: list[dict[str, Any]] = json.loads(json.dumps(detail, default=str))
    return LiveAvatarRefusal(422, "validation error", detail=safe)
