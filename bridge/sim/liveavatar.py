"""A faithful fake of LiveAvatar: REST API and FULL-mode data protocol (liveavatar-api.md).

Envelope ``{"code": 1000, "data": ..., "message": "success"}`` (the code the official SDK
insists on; configurable, the OpenAPI says 100).  Bodies are validated like the real FastAPI
service: a bad body is HTTP 422 ``{"detail": [{"loc", "msg", "type", ...}]}``.  Other refusals
are ``{"code": <HTTP status>, "data": null, "message"}`` (the real codes are undocumented).

Auth per endpoint, as in the OpenAPI: ``X-API-KEY`` mints tokens and lists; the session token
(``Authorization: Bearer``) starts its one session; stop and keep-alive take either; public
avatars take nothing.

Session states: token_issued → started (``/start``, 201, once per token) → connected (the
avatar joined the room) → closed (stop, idle timeout, duration limit, sandbox minute).  A token
never started is reaped after the idle timeout.  ``time_scale`` < 1 shrinks every timeout.

In the room (topic ``agent-control``) the avatar takes ``avatar.speak_text``,
``avatar.speak_response`` (answered with a canned reply), ``avatar.interrupt``, listening and
push-to-talk commands, and publishes its events on ``agent-response``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import secrets
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from bridge.sim.ledger import Ledger
from bridge.sim.media import AvatarLink, MediaHost, Packets, RoomSpec
from bridge.synthetic.performer import SpeechEvent
from bridge.synthetic.reply import chat_reply

log = logging.getLogger(__name__)

SERVICE = "liveavatar"
CONTROL_TOPIC = "agent-control"
EVENT_TOPIC = "agent-response"
AVATAR_IDENTITY = "heygen"
WAYNE = "dd73ea75-1218-4ef3-92ce-606d5f7fbc0a"  # the only sandbox avatar

QUALITY_SIZES = {
    "very_high": (1920, 1080),
    "high": (1280, 720),
    "medium": (854, 480),
    "low": (640, 360),
}
CREDITS_PER_MINUTE = 2.0  # FULL mode (D:faq/credits)
INBOX_SIZE = 256  # commands waiting for the avatar, per session

SessionState = Literal["token_issued", "started", "connected", "closed"]
ACTIVE: tuple[SessionState, ...] = ("token_issued", "started", "connected")
EndReason = Literal[
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
Quality = Literal["very_high", "high", "medium", "low"]


def _avatar(
    avatar_id: str, name: str, *, status: str = "ACTIVE", voice: str = "Sim voice"
) -> dict[str, Any]:
    return {
        "id": avatar_id,
        "space_id": None,
        "name": name,
        "preview_url": f"https://example.invalid/{avatar_id}.png",
        "type": "VIDEO",
        "status": status,
        "is_expired": False,
        "default_voice": {"id": "5f0f2c8e-0c6b-4a86-9a3e-5f6d7a1b2c3d", "name": voice},
        "is_1080p": False,
        "created_at": "2025-08-01T12:00:00Z",
        "updated_at": "2025-08-01T12:00:00Z",
        "error_message": None,
    }


PUBLIC_AVATARS: tuple[dict[str, Any], ...] = (
    _avatar(WAYNE, "Wayne"),
    _avatar("0930fd59-c8ad-434d-ad53-b391a1768720", "Ann Therapist"),
    _avatar("7b888024-f8c9-4205-95e1-78ce01497bda", "Shawn Therapist"),
)
USER_AVATARS: tuple[dict[str, Any], ...] = (
    _avatar("4f3c2b1a-9d8e-4c7b-a6f5-e4d3c2b1a098", "My presenter"),
    _avatar("a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d", "Still training", status="INIT"),
)


class Refusal(Exception):
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


@dataclass
class LiveAvatarLimits:
    max_concurrent: int = 20  # not documented by LiveAvatar; a generous stand-in
    max_session_duration: int = 1200  # the plan's cap, and the default when none is asked
    idle_timeout: float = 300.0
    sandbox_duration: int = 60
    time_scale: float = 1.0
    success_code: int = 1000  # the SDK's SUCCESS_CODE; the OpenAPI says 100


@dataclass
class SimSession:
    session_id: str
    owner: str
    token: str
    avatar_id: str
    quality: Quality
    encoding: str
    is_sandbox: bool
    max_duration: int
    interactivity: str
    persona: dict[str, Any]
    room: str
    created: float
    dialect: LiveAvatarDialect
    last_activity: float
    state: SessionState = "token_issued"
    updated: float = 0.0
    started: float | None = None
    ended: float | None = None
    end_reason: EndReason | None = None
    duration_s: float = 0.0
    speaking_until: float = 0.0
    listening: bool = False
    lost: bool = False
    link: AvatarLink | None = None
    join_task: asyncio.Task[None] | None = None
    worker: asyncio.Task[None] | None = None
    inbox: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=INBOX_SIZE)
    )
    # The last commands received and texts spoken, for tests and rehearsals.
    commands: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=INBOX_SIZE))
    history: deque[str] = field(default_factory=lambda: deque(maxlen=INBOX_SIZE))


class LiveAvatarDialect:
    """FULL-mode server events on ``agent-response``: ``{event_id, event_type, session_id,
    source_event_id, ...}`` where ``source_event_id`` is the command that caused the event."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self._announced: set[str] = set()

    def announce(self, task_id: str) -> None:
        """The reply text of this task was already published (``speak_response``)."""
        self._announced.add(task_id)

    def event(self, event_type: str, source_event_id: str | None, **fields: Any) -> bytes:
        body = {
            "event_id": str(uuid.uuid4()),
            "event_type": event_type,
            "session_id": self.session_id,
            "source_event_id": source_event_id,
            **fields,
        }
        return json.dumps(body).encode()

    def packets(self, event: SpeechEvent) -> Packets:
        task = event.task_id
        if event.kind == "started":
            return [(self.event("avatar.speak_started", task), EVENT_TOPIC)]
        if event.kind == "words":
            return [(self.event("avatar.transcription.chunk", task, text=event.text), EVENT_TOPIC)]
        if event.kind == "finished":
            if task in self._announced:
                self._announced.discard(task)
                return []
            if not event.text:
                return []
            return [(self.event("avatar.transcription", task, text=event.text), EVENT_TOPIC)]
        return [(self.event("avatar.speak_ended", task), EVENT_TOPIC)]


# --- request schemas (the server's view: defaults filled, unknown fields ignored) ----------


class _Schema(BaseModel):
    model_config = ConfigDict(extra="ignore")


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


class _Persona(_Schema):
    voice_id: uuid.UUID | None = None
    context_id: uuid.UUID | None = None
    language: str = "en"
    voice_settings: Annotated[_ElevenLabs | _Fish, Field(discriminator="provider")] | None = None
    stt_config: _Stt | None = None


class _VideoSettings(_Schema):
    quality: Quality = "high"
    encoding: Literal["VP8", "H264"] = "H264"


class _FullBody(_Schema):
    mode: Literal["FULL"]
    avatar_id: uuid.UUID
    # Required in the OpenAPI we follow, optional in the newer revision: accepted missing.
    avatar_persona: _Persona = _Persona()
    is_sandbox: bool = False
    video_settings: _VideoSettings | None = None
    max_session_duration: int | None = Field(default=None, gt=0)
    interactivity_type: Literal["CONVERSATIONAL", "PUSH_TO_TALK"] = "CONVERSATIONAL"
    llm_configuration_id: uuid.UUID | None = None
    video_quality: str | None = None  # not in the schema; LiveKit's plugin sends it


class _LiteBody(_Schema):
    mode: Literal["LITE"]
    avatar_id: uuid.UUID


_TOKEN_BODY: TypeAdapter[_FullBody | _LiteBody] = TypeAdapter(
    Annotated[_FullBody | _LiteBody, Field(discriminator="mode")]
)


class _StopBody(_Schema):
    session_id: uuid.UUID | None = None
    reason: EndReason = "UNKNOWN"


class _KeepAliveBody(_Schema):
    session_id: uuid.UUID | None = None


class _Paging(_Schema):
    page: int = Field(default=1, ge=1)
    page_size: int = Field(default=20, ge=1, le=100)


class _SessionsQuery(_Paging):
    type: Literal["active", "historic"]
    avatar_id: uuid.UUID | None = None


class _SessionPath(_Schema):
    session_id: uuid.UUID


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class LiveAvatarSim:
    """State and handlers of the fake.  Mount with :meth:`routes`; run :meth:`watch` for expiry."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        media: MediaHost,
        api_keys: set[str],
        limits: LiveAvatarLimits | None = None,
        public_avatars: tuple[dict[str, Any], ...] = PUBLIC_AVATARS,
        user_avatars: tuple[dict[str, Any], ...] = USER_AVATARS,
    ) -> None:
        self.ledger = ledger
        self.media = media
        self.api_keys = api_keys
        self.limits = limits or LiveAvatarLimits()
        self.public_avatars = public_avatars
        self.user_avatars = user_avatars
        self.sessions: dict[str, SimSession] = {}
        self.tokens: dict[str, SimSession] = {}

    # --- wiring ------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/sessions/token", self._guard(self._token)),
            web.post("/v1/sessions/start", self._guard(self._start)),
            web.post("/v1/sessions/stop", self._guard(self._stop)),
            web.post("/v1/sessions/keep-alive", self._guard(self._keep_alive)),
            web.get("/v1/sessions", self._guard(self._list_sessions)),
            web.get("/v1/sessions/{session_id}", self._guard(self._get_session)),
            web.get("/v1/avatars", self._guard(self._avatars)),
            web.get("/v1/avatars/public", self._guard(self._public)),
            # Not routes of the OpenAPI, though clients try them (DEMO, 3P): FastAPI's 405.
            web.delete("/v1/sessions", _not_allowed),
            web.delete("/v1/sessions/{session_id}", _not_allowed),
        ]

    @staticmethod
    def owns(path: str) -> bool:
        return path.startswith(("/v1/sessions", "/v1/avatars"))

    def _guard(self, fn: Handler) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                return await fn(request)
            except Refusal as refusal:
                return refusal.response()

        return handler

    def _ok(self, data: Any, *, status: int = 200) -> web.Response:
        body = {"code": self.limits.success_code, "data": data, "message": "success"}
        return web.json_response(body, status=status)

    # --- time --------------------------------------------------------------------------

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _scaled(self, seconds: float) -> float:
        return seconds * self.limits.time_scale

    async def watch(self) -> None:
        """End sessions on idle timeout and duration limit (runs for the simulator's life)."""
        while True:
            now = self._now()
            for session in list(self.sessions.values()):
                reason = self._expiry(session, now)
                if reason is not None:
                    await self.close(session, "expired", reason)
            await asyncio.sleep(0.05)

    def _expiry(self, session: SimSession, now: float) -> EndReason | None:
        if session.state == "closed":
            return None
        idle = self._scaled(self.limits.idle_timeout)
        if session.started is None:  # a token nobody started
            return "ZOMBIE_SESSION_REAP" if now - session.last_activity > idle else None
        if session.lost:
            return "SERVER_ERROR"
        if now - session.started > self._scaled(session.max_duration):
            return "MAX_DURATION_REACHED"
        if now - max(session.last_activity, session.speaking_until) > idle:
            return "IDLE_TIMEOUT"
        return None

    # --- auth --------------------------------------------------------------------------

    def _api_key(self, request: web.Request) -> str:
        key = request.headers.get("X-API-KEY")
        if key is None:
            if _bearer(request) is not None:
                raise Refusal(
                    401, "This endpoint needs the API key (X-API-KEY), not a session token"
                )
            raise Refusal(401, "Not authenticated: send the API key in the X-API-KEY header")
        if key not in self.api_keys:
            raise Refusal(401, "Invalid API key")
        return key

    def _token_session(self, request: web.Request) -> SimSession:
        token = _bearer(request)
        if token is None:
            if request.headers.get("X-API-KEY") is not None:
                raise Refusal(
                    401,
                    "This endpoint needs the session token (Authorization: Bearer), not X-API-KEY",
                )
            raise Refusal(401, "Not authenticated: send Authorization: Bearer <session_token>")
        session = self.tokens.get(token)
        if session is None:
            raise Refusal(401, "Invalid session token")
        return session

    def _either(self, request: web.Request) -> tuple[str, SimSession | None]:
        """(owner, the session of the token or None when the API key was used)."""
        if request.headers.get("X-API-KEY") is not None or _bearer(request) is None:
            return self._api_key(request), None
        session = self._token_session(request)
        return session.owner, session

    def _target(
        self, owner: str, bound: SimSession | None, session_id: uuid.UUID | None
    ) -> SimSession:
        if bound is not None:
            if session_id is not None and str(session_id) != bound.session_id:
                raise Refusal(403, "The session token belongs to another session")
            return bound
        if session_id is None:
            raise Refusal(400, "session_id is required when authenticating with X-API-KEY")
        session = self.sessions.get(str(session_id))
        if session is None or session.owner != owner:
            raise Refusal(404, "Session not found")
        return session

    # --- session endpoints -------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.StreamResponse:
        owner = self._api_key(request)
        raw = await _read_body(request)
        if raw is _MISSING:
            raise Refusal(422, "validation error", detail=[_missing_body()])
        try:
            body = _TOKEN_BODY.validate_python(raw)
        except ValidationError as exc:
            raise _invalid(exc, "body") from None
        if isinstance(body, _LiteBody):
            raise Refusal(400, "LITE mode is not simulated; ask for mode FULL")
        avatar_id = str(body.avatar_id)
        if body.is_sandbox and avatar_id != WAYNE:
            raise Refusal(
                400,
                f"Sandbox mode only supports the avatar Wayne ({WAYNE}); "
                f"avatar {avatar_id} needs a non-sandbox session",
            )
        avatar = self._find_avatar(avatar_id)
        if avatar is None:
            raise Refusal(404, f"Avatar {avatar_id} not found")
        if avatar.get("status") != "ACTIVE" or avatar.get("is_expired"):
            raise Refusal(400, f"Avatar {avatar_id} is not ready (status {avatar.get('status')})")
        cap = self.limits.max_session_duration
        if body.max_session_duration is not None and body.max_session_duration > cap:
            raise Refusal(
                400,
                f"max_session_duration {body.max_session_duration} exceeds the limit of "
                f"your plan ({cap} seconds)",
            )
        duration = body.max_session_duration or cap
        if body.is_sandbox:
            duration = min(duration, self.limits.sandbox_duration)
        active = [s for s in self.sessions.values() if s.owner == owner and s.state in ACTIVE]
        if len(active) >= self.limits.max_concurrent:
            raise Refusal(
                400,
                f"Concurrent session limit reached ({len(active)} active sessions); "
                "stop a session first",
            )
        quality: Quality = "high"
        if body.video_settings is not None:
            quality = body.video_settings.quality
        elif body.video_quality in QUALITY_SIZES:
            quality = body.video_quality  # type: ignore[assignment]  # checked just above
        session_id = str(uuid.uuid4())
        token = "sim-la." + secrets.token_urlsafe(32)
        now = time.time()
        session = SimSession(
            session_id=session_id,
            owner=owner,
            token=token,
            avatar_id=avatar_id,
            quality=quality,
            encoding=body.video_settings.encoding if body.video_settings else "H264",
            is_sandbox=body.is_sandbox,
            max_duration=duration,
            interactivity=body.interactivity_type,
            persona=body.avatar_persona.model_dump(mode="json"),
            room=f"liveavatar-{session_id}",
            created=now,
            updated=now,
            dialect=LiveAvatarDialect(session_id),
            last_activity=self._now(),
        )
        self.sessions[session_id] = session
        self.tokens[token] = session
        self.ledger.record_session(SERVICE, session_id, "created")
        return self._ok({"session_id": session_id, "session_token": token})

    async def _start(self, request: web.Request) -> web.StreamResponse:
        # No body in the OpenAPI: none, {}, {session_id} (real clients send all three) or
        # anything else is ignored, as FastAPI ignores a body the route does not declare.
        session = self._token_session(request)
        if session.state == "closed":
            raise Refusal(404, f"Session has already ended ({session.end_reason})")
        if session.state != "token_issued":
            raise Refusal(400, "Session already started: a session token starts one session")
        session.state = "started"
        session.started = self._now()
        session.last_activity = session.started
        session.updated = time.time()
        self.ledger.record_session(SERVICE, session.session_id, "started")
        session.join_task = asyncio.create_task(
            self._join(session), name=f"sim-liveavatar-join-{session.session_id[:8]}"
        )
        return self._ok(
            {
                "session_id": session.session_id,
                "livekit_url": self.media.livekit_url or "ws://127.0.0.1:7880",
                "livekit_client_token": self.media.token(
                    session.room, f"client-{session.session_id[:8]}", publish=True
                ),
                "livekit_agent_token": self.media.token(
                    session.room, "liveavatar-agent", publish=True
                ),
                "max_session_duration": session.max_duration,
                "ws_url": None,
            },
            status=201,
        )

    async def _stop(self, request: web.Request) -> web.StreamResponse:
        owner, bound = self._either(request)
        raw = await _read_body(request)
        if raw is _MISSING:  # the OpenAPI's body default is {"reason": "USER_CLOSED"}
            body = _StopBody(reason="USER_CLOSED")
        else:
            body = _validate(_StopBody, raw, "body")
        session = self._target(owner, bound, body.session_id)
        if session.state == "closed":
            raise Refusal(404, f"Session has already ended ({session.end_reason})")
        await self.close(session, "stopped", body.reason)
        return self._ok(None)

    async def _keep_alive(self, request: web.Request) -> web.StreamResponse:
        owner, bound = self._either(request)
        raw = await _read_body(request)
        body = _KeepAliveBody() if raw is _MISSING else _validate(_KeepAliveBody, raw, "body")
        session = self._target(owner, bound, body.session_id)
        if session.state == "closed":
            raise Refusal(404, f"Session has already ended ({session.end_reason})")
        session.last_activity = self._now()
        return self._ok(None)

    async def _list_sessions(self, request: web.Request) -> web.StreamResponse:
        owner = self._api_key(request)
        query = _validate(_SessionsQuery, dict(request.query), "query")
        rows = [
            s
            for s in self.sessions.values()
            if s.owner == owner
            and ((s.state in ACTIVE) if query.type == "active" else (s.state == "closed"))
            and (query.avatar_id is None or s.avatar_id == str(query.avatar_id))
        ]
        rows.sort(key=lambda s: s.created, reverse=True)
        return self._ok(_page(request, [self._entry(s) for s in rows], query))

    async def _get_session(self, request: web.Request) -> web.StreamResponse:
        owner = self._api_key(request)
        path = _validate(_SessionPath, dict(request.match_info), "path")
        session = self.sessions.get(str(path.session_id))
        if session is None or session.owner != owner:
            raise Refusal(404, "Session not found")
        return self._ok(self._entry(session))

    def _entry(self, session: SimSession) -> dict[str, Any]:
        if session.state == "closed":
            seconds = session.duration_s
        elif session.started is not None:
            seconds = self._now() - session.started
        else:
            seconds = 0.0
        entry: dict[str, Any] = {
            "id": session.session_id,
            "created_at": _iso(session.created),
            "updated_at": _iso(session.updated),
            "duration": round(seconds),
            "source": "API",
            "mode": "FULL",
            "is_sandbox": session.is_sandbox,
            "credits_consumed": (
                0.0 if session.is_sandbox else round(CREDITS_PER_MINUTE * seconds / 60, 2)
            ),
        }
        if session.state == "closed":
            entry["end_at"] = _iso(session.ended or session.updated)
            entry["end_reason"] = session.end_reason
        return entry

    # --- avatars -----------------------------------------------------------------------

    def _find_avatar(self, avatar_id: str) -> dict[str, Any] | None:
        for avatar in (*self.user_avatars, *self.public_avatars):
            if avatar["id"] == avatar_id:
                return avatar
        return None

    async def _avatars(self, request: web.Request) -> web.StreamResponse:
        self._api_key(request)
        query = _validate(_Paging, dict(request.query), "query")
        return self._ok(_page(request, list(self.user_avatars), query))

    async def _public(self, request: web.Request) -> web.StreamResponse:
        query = _validate(_Paging, dict(request.query), "query")
        return self._ok(_page(request, list(self.public_avatars), query))

    # --- the avatar in the room --------------------------------------------------------

    async def _join(self, session: SimSession) -> None:
        width, height = QUALITY_SIZES[session.quality]
        spec = RoomSpec(
            url=self.media.livekit_url or "",
            room=session.room,
            token=self.media.token(session.room, AVATAR_IDENTITY, publish=True),
            width=width,
            height=height,
            identity=AVATAR_IDENTITY,
            codec=session.encoding,
        )
        try:
            link = await self.media.join(
                spec,
                dialect=session.dialect,
                on_data=functools.partial(self._on_data, session),
                on_lost=functools.partial(self._on_lost, session),
            )
        except Exception as exc:  # the avatar could not join: the session fails, as it would
            log.warning("simulated avatar failed to join %s: %s", session.room, exc)
            await self.close(session, "expired", "SERVER_ERROR")
            return
        if session.state != "started":  # stopped while joining
            await link.leave()
            return
        session.link = link
        session.state = "connected"
        session.updated = time.time()
        self.ledger.record_session(SERVICE, session.session_id, "connected")
        session.worker = asyncio.create_task(
            self._work(session), name=f"sim-liveavatar-commands-{session.session_id[:8]}"
        )

    async def bounce_avatar(self, session_id: str, away: float) -> None:
        """Make the avatar leave the room and come back ``away`` seconds later (tests)."""
        session = self.sessions[session_id]
        if session.worker is not None:
            session.worker.cancel()
            await asyncio.gather(session.worker, return_exceptions=True)
            session.worker = None
        if session.link is not None:
            link, session.link = session.link, None
            session.state = "started"
            await link.leave()
        await asyncio.sleep(away)
        if session.state == "started":
            await self._join(session)

    def _on_lost(self, session: SimSession) -> None:
        session.lost = True  # watch() ends the session

    def _on_data(self, session: SimSession, payload: bytes, topic: str | None) -> None:
        """A data packet from the room: commands on ``agent-control``; garbage is ignored."""
        if topic != CONTROL_TOPIC or session.state == "closed":
            return
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if not isinstance(message, dict) or not isinstance(message.get("event_type"), str):
            return
        session.last_activity = self._now()
        session.commands.append(message)
        try:
            session.inbox.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("sim liveavatar %s: command inbox full", session.session_id[:8])

    async def _work(self, session: SimSession) -> None:
        """Carry out the commands in order (the avatar speaks one thing after another)."""
        while True:
            message = await session.inbox.get()
            link = session.link
            if link is None:
                return
            await self._command(session, link, message)

    async def _command(
        self, session: SimSession, link: AvatarLink, message: dict[str, Any]
    ) -> None:
        kind = message["event_type"]
        raw_id = message.get("event_id")
        event_id = raw_id if isinstance(raw_id, str) and raw_id else None
        text = message.get("text")
        spoken = text if isinstance(text, str) and text.strip() else None
        if kind == "avatar.speak_text" and spoken is not None:
            await self._say(session, link, spoken, event_id or str(uuid.uuid4()))
        elif kind == "avatar.speak_response" and spoken is not None:
            task_id = event_id or str(uuid.uuid4())
            reply = chat_reply(spoken)  # the "LLM" answers at once
            session.dialect.announce(task_id)
            packet = session.dialect.event("avatar.transcription", task_id, text=reply)
            await link.publish(packet, EVENT_TOPIC)
            await self._say(session, link, reply, task_id)
        elif kind == "avatar.interrupt":
            link.interrupt()
            session.speaking_until = 0.0
        elif kind in ("avatar.start_listening", "avatar.stop_listening"):
            session.listening = kind == "avatar.start_listening"
        elif kind in ("user.start_push_to_talk", "user.stop_push_to_talk"):
            start = kind == "user.start_push_to_talk"
            if session.interactivity == "PUSH_TO_TALK":
                answer = "user.push_to_talk_started" if start else "user.push_to_talk_stopped"
            else:
                answer = (
                    "user.push_to_talk_start_failed" if start else "user.push_to_talk_stop_failed"
                )
            await link.publish(session.dialect.event(answer, event_id), EVENT_TOPIC)
        # Anything else (session.stop, undeclared commands) is ignored, as far as we know.

    async def _say(self, session: SimSession, link: AvatarLink, text: str, task_id: str) -> None:
        duration = await link.say(text, task_id)
        now = self._now()
        session.speaking_until = max(session.speaking_until, now) + duration
        session.last_activity = now
        session.history.append(text)

    # --- closing -----------------------------------------------------------------------

    async def close(
        self, session: SimSession, kind: Literal["stopped", "expired"], reason: EndReason
    ) -> None:
        """End a session: ``session.stopped`` into the room, the avatar leaves, the room closes."""
        if session.state == "closed":
            return
        was = session.state
        session.state = "closed"
        session.end_reason = reason
        session.ended = session.updated = time.time()
        if session.started is not None:
            session.duration_s = self._now() - session.started
        self.ledger.record_session(SERVICE, session.session_id, kind, reason)
        log.info("sim liveavatar session %s closed: %s", session.session_id[:8], reason)
        current = asyncio.current_task()
        for task in (session.join_task, session.worker):
            if task is not None and task is not current and not task.done():
                task.cancel()
                await asyncio.wait([task])
        if session.link is not None:
            link, session.link = session.link, None
            if not session.lost:
                stopped = session.dialect.event("session.stopped", None, end_reason=reason)
                await link.publish(stopped, EVENT_TOPIC)
            await link.leave()
        if was != "token_issued":
            await self.media.close_room(session.room)

    async def aclose(self) -> None:
        for session in list(self.sessions.values()):
            await self.close(session, "stopped", "SERVER_ERROR")


# --- request parsing ---------------------------------------------------------------------

_MISSING: Any = object()
M = TypeVar("M", bound=BaseModel)


async def _not_allowed(request: web.Request) -> web.StreamResponse:
    return web.json_response({"detail": "Method Not Allowed"}, status=405)


def _bearer(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        return None
    return auth.removeprefix("Bearer ").strip() or None


async def _read_body(request: web.Request) -> Any:
    """The JSON body, ``_MISSING`` when there is none; not JSON → FastAPI's 422."""
    if not request.can_read_body:
        return _MISSING
    text = await request.text()
    if not text.strip():
        return _MISSING
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
        raise Refusal(422, "validation error", detail=[detail]) from None


def _missing_body() -> dict[str, Any]:
    return {"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}


def _validate(model: type[M], raw: Any, where: str) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise _invalid(exc, where) from None


def _invalid(exc: ValidationError, where: str) -> Refusal:
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
    return Refusal(422, "validation error", detail=safe)


def _page(request: web.Request, rows: list[dict[str, Any]], paging: _Paging) -> dict[str, Any]:
    """``PaginatedResponse``: ``{count, next, previous, results}`` with page links."""
    start = (paging.page - 1) * paging.page_size
    more = start + paging.page_size < len(rows)

    def link(page: int) -> str:
        return str(request.url.update_query(page=page, page_size=paging.page_size))

    return {
        "count": len(rows),
        "next": link(paging.page + 1) if more else None,
        "previous": link(paging.page - 1) if paging.page > 1 else None,
        "results": rows[start : start + paging.page_size],
    }


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
