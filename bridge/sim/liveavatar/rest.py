"""The LiveAvatar REST fake: session and avatar endpoints, per-endpoint auth, the state machine.

Envelope ``{"code": 1000, "data": ..., "message": "success"}`` (the code the official SDK
insists on; configurable, the OpenAPI says 100).  Auth per endpoint, as in the OpenAPI:
``X-API-KEY`` mints tokens and lists; the session token (``Authorization: Bearer``) starts its
one session; stop and keep-alive take either; public avatars take nothing.  A token never
started is reaped after the idle timeout.
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Unpack

from aiohttp import web
from pydantic import ValidationError

from bridge.sim.liveavatar import room
from bridge.sim.liveavatar.catalog import PUBLIC_AVATARS, USER_AVATARS, WAYNE
from bridge.sim.liveavatar.room import EVENT_TOPIC, LiveAvatarDialect
from bridge.sim.liveavatar.schemas import (
    MISSING,
    TOKEN_BODY,
    EndReason,
    FullBody,
    KeepAliveBody,
    LiteBody,
    LiveAvatarRefusal,
    Paging,
    Quality,
    SessionPath,
    SessionsQuery,
    StopBody,
    invalid,
    missing_body,
    not_allowed,
    read_body,
    unknown_fields,
    validate,
)
from bridge.sim.liveavatar.session import (
    ACTIVE,
    QUALITY_SIZES,
    LiveAvatarLimits,
    LiveAvatarSession,
)
from bridge.sim.media import AVATAR_IDENTITY, AvatarLink, Hooks, JoinFailed, RoomSpec
from bridge.sim.service import Backdrop, FakeService

log = logging.getLogger(__name__)

CREDITS_PER_MINUTE = 2.0  # FULL mode (D:faq/credits)


class LiveAvatarSim(FakeService[LiveAvatarSession]):
    """State and handlers of the fake.  Mount with :meth:`routes`; run :meth:`watch` for expiry."""

    SERVICE: ClassVar[str] = "liveavatar"
    JOINING: ClassVar[str] = "started"
    SHUTDOWN_REASON: ClassVar[str] = EndReason.SERVER_ERROR.value

    def __init__(
        self,
        *,
        limits: LiveAvatarLimits | None = None,
        public_avatars: tuple[dict[str, Any], ...] = PUBLIC_AVATARS,
        user_avatars: tuple[dict[str, Any], ...] = USER_AVATARS,
        **backdrop: Unpack[Backdrop],
    ) -> None:
        super().__init__(**backdrop)
        self.limits = limits or LiveAvatarLimits()
        self.public_avatars = public_avatars
        self.user_avatars = user_avatars
        self.tokens: dict[str, LiveAvatarSession] = {}

    # --- wiring ------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/sessions/token", self.guard(self._token)),
            web.post("/v1/sessions/start", self.guard(self._start)),
            web.post("/v1/sessions/stop", self.guard(self._stop)),
            web.post("/v1/sessions/keep-alive", self.guard(self._keep_alive)),
            web.get("/v1/sessions", self.guard(self._list_sessions)),
            web.get("/v1/sessions/{session_id}", self.guard(self._get_session)),
            web.get("/v1/avatars", self.guard(self._avatars)),
            web.get("/v1/avatars/public", self.guard(self._public)),
            # Not routes of the OpenAPI, though clients try them (DEMO, 3P): FastAPI's 405.
            web.delete("/v1/sessions", not_allowed),
            web.delete("/v1/sessions/{session_id}", not_allowed),
        ]

    def owns(self, path: str) -> bool:
        return path.startswith(("/v1/sessions", "/v1/avatars"))

    @property
    def time_scale(self) -> float:
        return self.limits.time_scale

    def _ok(self, data: Any, *, status: int = 200) -> web.Response:
        body = {"code": self.limits.success_code, "data": data, "message": "success"}
        return web.json_response(body, status=status)

    # --- the skeleton's questions ------------------------------------------------------

    def expiry(self, session: LiveAvatarSession, now: float) -> str | None:
        if session.state == "closed":
            return None
        idle = self.scaled(self.limits.idle_timeout)
        if session.started is None:  # a token nobody started
            return EndReason.ZOMBIE_SESSION_REAP if now - session.last_activity > idle else None
        if session.lost:
            return EndReason.SERVER_ERROR
        if now - session.started > self.scaled(session.max_duration):
            return EndReason.MAX_DURATION_REACHED
        if now - max(session.last_activity, session.speaking_until) > idle:
            return EndReason.IDLE_TIMEOUT
        return None

    def room_spec(self, session: LiveAvatarSession) -> RoomSpec:
        width, height = QUALITY_SIZES[session.quality]
        return RoomSpec(
            url=self.media.livekit_url or "",
            room=session.room,
            token=self.media.token(session.room, AVATAR_IDENTITY, publish=True),
            width=width,
            height=height,
            identity=AVATAR_IDENTITY,
            codec=session.encoding,
        )

    def hooks(self, session: LiveAvatarSession) -> Hooks:
        return Hooks(
            dialect=session.dialect,
            on_data=functools.partial(room.take, session, self.now),
            on_lost=functools.partial(_lost, session),
            on_heard=functools.partial(room.hear, session, self.now),
            gate=functools.partial(room.gate, session),
        )

    def join_failed(self, session: LiveAvatarSession, error: JoinFailed) -> str:
        return EndReason.SERVER_ERROR.value

    def joined(self, session: LiveAvatarSession, link: AvatarLink) -> None:
        session.updated = time.time()
        session.worker = self.spawn(session, "commands", room.work(session, self.now))

    def ended(self, session: LiveAvatarSession, reason: str) -> None:
        session.end_reason = reason
        session.ended = session.updated = time.time()

    async def farewell(self, session: LiveAvatarSession, link: AvatarLink) -> None:
        """``session.stopped`` into the room, unless the room is what was lost."""
        if not session.lost:
            stopped = session.dialect.event("session.stopped", None, end_reason=session.end_reason)
            await link.publish(stopped, EVENT_TOPIC)

    def closes_room(self, session: LiveAvatarSession, was: str) -> bool:
        return was != "token_issued"  # a token never started has no room

    # --- auth --------------------------------------------------------------------------

    def _api_key(self, request: web.Request) -> str:
        key = request.headers.get("X-API-KEY")
        if key is None:
            if _bearer(request) is not None:
                raise LiveAvatarRefusal(
                    401, "This endpoint needs the API key (X-API-KEY), not a session token"
                )
            raise LiveAvatarRefusal(
                401, "Not authenticated: send the API key in the X-API-KEY header"
            )
        if key not in self.api_keys:
            raise LiveAvatarRefusal(401, "Invalid API key")
        return key

    def _token_session(self, request: web.Request) -> LiveAvatarSession:
        token = _bearer(request)
        if token is None:
            if request.headers.get("X-API-KEY") is not None:
                raise LiveAvatarRefusal(
                    401,
                    "This endpoint needs the session token (Authorization: Bearer), not X-API-KEY",
                )
            raise LiveAvatarRefusal(
                401, "Not authenticated: send Authorization: Bearer <session_token>"
            )
        session = self.tokens.get(token)
        if session is None:
            raise LiveAvatarRefusal(401, "Invalid session token")
        return session

    def _either(self, request: web.Request) -> tuple[str, LiveAvatarSession | None]:
        """(owner, the session of the token or None when the API key was used)."""
        if request.headers.get("X-API-KEY") is not None or _bearer(request) is None:
            return self._api_key(request), None
        session = self._token_session(request)
        return session.owner, session

    def _target(
        self, owner: str, bound: LiveAvatarSession | None, session_id: uuid.UUID | None
    ) -> LiveAvatarSession:
        """The open session a stop or keep-alive is for (the token's own, or named by id)."""
        if bound is not None:
            if session_id is not None and str(session_id) != bound.session_id:
                raise LiveAvatarRefusal(403, "The session token belongs to another session")
            session = bound
        elif session_id is None:
            raise LiveAvatarRefusal(
                400, "session_id is required when authenticating with X-API-KEY"
            )
        else:
            found = self.sessions.get(str(session_id))
            if found is None or found.owner != owner:
                raise LiveAvatarRefusal(404, "Session not found")
            session = found
        if session.state == "closed":
            raise LiveAvatarRefusal(404, f"Session has already ended ({session.end_reason})")
        return session

    # --- session endpoints -------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.StreamResponse:
        owner = self._api_key(request)
        raw = await read_body(request)
        if raw is MISSING:
            raise missing_body()
        try:
            body = TOKEN_BODY.validate_python(raw)
        except ValidationError as exc:
            raise invalid(exc, "body") from None
        if isinstance(body, LiteBody):
            raise LiveAvatarRefusal(400, "LITE mode is not simulated; ask for mode FULL")
        duration = self._admit(owner, body)
        session = self.add(self._new_session(owner, body, duration))
        session.ignored = unknown_fields(body, raw)
        if session.ignored:
            log.info("sim liveavatar: unknown fields ignored: %s", ", ".join(session.ignored))
        self.tokens[session.token] = session
        return self._ok({"session_id": session.session_id, "session_token": session.token})

    def _admit(self, owner: str, body: FullBody) -> int:
        """Refuse what the service refuses; the session's duration limit in seconds."""
        avatar_id = str(body.avatar_id)
        if body.is_sandbox and avatar_id != WAYNE:
            raise LiveAvatarRefusal(
                400,
                f"Sandbox mode only supports the avatar Wayne ({WAYNE}); "
                f"avatar {avatar_id} needs a non-sandbox session",
            )
        avatar = self._find_avatar(avatar_id)
        if avatar is None:
            raise LiveAvatarRefusal(404, f"Avatar {avatar_id} not found")
        if avatar.get("status") != "ACTIVE" or avatar.get("is_expired"):
            status = avatar.get("status")
            raise LiveAvatarRefusal(400, f"Avatar {avatar_id} is not ready (status {status})")
        cap = self.limits.max_session_duration
        if body.max_session_duration is not None and body.max_session_duration > cap:
            raise LiveAvatarRefusal(
                400,
                f"max_session_duration {body.max_session_duration} exceeds the limit of "
                f"your plan ({cap} seconds)",
            )
        active = [s for s in self.sessions.values() if s.owner == owner and s.state in ACTIVE]
        if len(active) >= self.limits.max_concurrent:
            raise LiveAvatarRefusal(
                400,
                f"Concurrent session limit reached ({len(active)} active sessions); "
                "stop a session first",
            )
        duration = body.max_session_duration or cap
        return min(duration, self.limits.sandbox_duration) if body.is_sandbox else duration

    def _new_session(self, owner: str, body: FullBody, duration: int) -> LiveAvatarSession:
        quality: Quality = "high"
        if body.video_settings is not None:
            quality = body.video_settings.quality
        elif body.video_quality in QUALITY_SIZES:
            quality = body.video_quality  # type: ignore[assignment]  # checked just above
        session_id = str(uuid.uuid4())
        created = time.time()
        return LiveAvatarSession(
            session_id=session_id,
            owner=owner,
            token="sim-la." + secrets.token_urlsafe(32),
            avatar_id=str(body.avatar_id),
            quality=quality,
            encoding=body.video_settings.encoding if body.video_settings else "H264",
            is_sandbox=body.is_sandbox,
            max_duration=duration,
            interactivity=body.interactivity_type,
            persona=body.avatar_persona.model_dump(mode="json"),
            room=f"liveavatar-{session_id}",
            created=created,
            updated=created,
            dialect=LiveAvatarDialect(session_id),
            last_activity=self.now(),
        )

    async def _start(self, request: web.Request) -> web.StreamResponse:
        # No body in the OpenAPI: none, {}, {session_id} (real clients send all three) or
        # anything else is ignored, as FastAPI ignores a body the route does not declare.
        session = self._token_session(request)
        if session.state == "closed":
            raise LiveAvatarRefusal(404, f"Session has already ended ({session.end_reason})")
        if session.state != "token_issued":
            raise LiveAvatarRefusal(
                400, "Session already started: a session token starts one session"
            )
        session.updated = time.time()
        self.begin(session, join=True)
        client = f"client-{session.session_id[:8]}"
        data = {
            "session_id": session.session_id,
            "livekit_url": self.media.livekit_url or "ws://127.0.0.1:7880",
            "livekit_client_token": self.media.token(session.room, client, publish=True),
            "livekit_agent_token": self.media.token(session.room, "liveavatar-agent", publish=True),
            "max_session_duration": session.max_duration,
            "ws_url": None,
        }
        return self._ok(data, status=201)

    async def _stop(self, request: web.Request) -> web.StreamResponse:
        owner, bound = self._either(request)
        raw = await read_body(request)
        if raw is MISSING:  # the OpenAPI's body default is {"reason": "USER_CLOSED"}
            body = StopBody(reason=EndReason.USER_CLOSED)
        else:
            body = validate(StopBody, raw, "body")
        session = self._target(owner, bound, body.session_id)
        await self.close(session, "stopped", body.reason.value)
        return self._ok(None)

    async def _keep_alive(self, request: web.Request) -> web.StreamResponse:
        owner, bound = self._either(request)
        raw = await read_body(request)
        body = KeepAliveBody() if raw is MISSING else validate(KeepAliveBody, raw, "body")
        session = self._target(owner, bound, body.session_id)
        session.last_activity = self.now()
        return self._ok(None)

    # --- listings ----------------------------------------------------------------------

    async def _list_sessions(self, request: web.Request) -> web.StreamResponse:
        owner = self._api_key(request)
        query = validate(SessionsQuery, dict(request.query), "query")
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
        path = validate(SessionPath, dict(request.match_info), "path")
        session = self.sessions.get(str(path.session_id))
        if session is None or session.owner != owner:
            raise LiveAvatarRefusal(404, "Session not found")
        return self._ok(self._entry(session))

    def _entry(self, session: LiveAvatarSession) -> dict[str, Any]:
        if session.state == "closed":
            seconds = session.duration_s
        elif session.started is not None:
            seconds = self.now() - session.started
        else:
            seconds = 0.0
        credits = 0.0 if session.is_sandbox else round(CREDITS_PER_MINUTE * seconds / 60, 2)
        entry: dict[str, Any] = {
            "id": session.session_id,
            "created_at": _iso(session.created),
            "updated_at": _iso(session.updated),
            "duration": round(seconds),
            "source": "API",
            "mode": "FULL",
            "is_sandbox": session.is_sandbox,
            "credits_consumed": credits,
        }
        if session.state == "closed":
            entry["end_at"] = _iso(session.ended or session.updated)
            entry["end_reason"] = session.end_reason
        return entry

    def _find_avatar(self, avatar_id: str) -> dict[str, Any] | None:
        for avatar in (*self.user_avatars, *self.public_avatars):
            if avatar["id"] == avatar_id:
                return avatar
        return None

    async def _avatars(self, request: web.Request) -> web.StreamResponse:
        self._api_key(request)
        query = validate(Paging, dict(request.query), "query")
        return self._ok(_page(request, list(self.user_avatars), query))

    async def _public(self, request: web.Request) -> web.StreamResponse:
        query = validate(Paging, dict(request.query), "query")
        return self._ok(_page(request, list(self.public_avatars), query))


def _lost(session: LiveAvatarSession) -> None:
    session.lost = True  # watch() ends the session


def _bearer(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        return None
    return auth.removeprefix("Bearer ").strip() or None


def _page(request: web.Request, rows: list[dict[str, Any]], paging: Paging) -> dict[str, Any]:
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
