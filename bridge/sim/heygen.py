"""A faithful fake of HeyGen's Streaming API (reference/heygen-api.md §1–2, §7).

Envelopes: ``{"code": 100, "message": "success", "data": ...}``; create_token answers
``{"error": null, "data": {"token": ...}}``; errors are non-2xx with ``{"code", "message"}``.
Both credentials work on every endpoint: ``x-api-key`` and ``Authorization: Bearer`` (an API
key, or a one-time session token bound to the session it created).

Session states: new → connecting (start) → connected (avatar joined) → closed (stop, idle
timeout, duration limit).  Limits: concurrent sessions per key (10007), ``activity_idle_timeout``
(reset by task, keep_alive, interrupt, listening), ``session_duration_limit`` from start.
``time_scale`` < 1 shrinks every timeout so tests need not wait minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bridge.sim.faults import error_response
from bridge.sim.ledger import Ledger
from bridge.sim.media import AvatarLink, MediaHost, Packets, RoomSpec
from bridge.synthetic.performer import SpeechEvent
from bridge.synthetic.reply import chat_reply

log = logging.getLogger(__name__)

SERVICE = "heygen"
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
ACTIVE = ("new", "connecting", "connected")

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


class Refusal(Exception):
    """Answer the request with this HTTP status and HeyGen code."""

    def __init__(self, status: int, code: int, message: str) -> None:
        self.status, self.code, self.message = status, code, message
        super().__init__(message)


@dataclass
class HeyGenLimits:
    max_concurrent: int = 3
    session_duration_limit: int = 600
    time_scale: float = 1.0
    max_text: int = 1000
    state_error_status: int = 400


@dataclass
class SimSession:
    session_id: str
    owner: str
    avatar_id: str
    quality: str
    encoding: str
    version: str | None
    voice_rate: float
    idle_timeout: float | None
    duration_limit: int
    created: float
    room: str
    own_livekit: dict[str, str] | None
    state: str = "new"
    started: float | None = None
    last_activity: float = 0.0
    speaking_until: float = 0.0
    # Set when speech is cut short (interrupt, close): sync tasks stop waiting.
    speech_cut: asyncio.Event = field(default_factory=asyncio.Event)
    link: AvatarLink | None = None
    join_task: asyncio.Task[None] | None = None
    duration_s: float = 0.0
    bound_token: str | None = None
    history: list[str] = field(default_factory=list)


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


class HeyGenSim:
    """State and handlers of the fake.  Mount with :meth:`routes`; run :meth:`watch` for expiry."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        media: MediaHost,
        api_keys: set[str],
        limits: HeyGenLimits | None = None,
        avatars: tuple[dict[str, Any], ...] = DEFAULT_AVATARS,
        public_host: str = "127.0.0.1",
    ) -> None:
        self.ledger = ledger
        self.media = media
        self.api_keys = api_keys
        self.limits = limits or HeyGenLimits()
        self.avatars = avatars
        self.sessions: dict[str, SimSession] = {}
        self.tokens: dict[str, SimSession | None] = {}
        self._token_owner: dict[str, str] = {}
        self._public_host = public_host

    # --- wiring ------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        post = {
            "streaming.create_token": self._create_token,
            "streaming.new": self._new,
            "streaming.start": self._start,
            "streaming.task": self._task,
            "streaming.interrupt": self._interrupt,
            "streaming.keep_alive": self._keep_alive,
            "streaming.start_listening": self._listening,
            "streaming.stop_listening": self._listening,
            "streaming.stop": self._stop,
            "streaming.ice": self._ice,
        }
        table = [web.post(f"/v1/{name}", self._guard(fn)) for name, fn in post.items()]
        table += [
            web.get("/v1/streaming.list", self._guard(self._list)),
            web.get("/v2/streaming.list", self._guard(self._history)),
            web.get("/v1/streaming/avatar.list", self._guard(self._avatar_list)),
        ]
        return table

    @staticmethod
    def owns(path: str) -> bool:
        return path.startswith(("/v1/streaming", "/v2/streaming"))

    def _guard(self, fn: Any) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                result: web.StreamResponse = await fn(request)
            except Refusal as refusal:
                return error_response(refusal.status, refusal.code, refusal.message)
            return result

        return handler

    # --- time --------------------------------------------------------------------------

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _scaled(self, seconds: float) -> float:
        return seconds * self.limits.time_scale

    async def watch(self) -> None:
        """Expire sessions on idle timeout and duration limit (runs for the simulator's life)."""
        while True:
            now = self._now()
            for session in list(self.sessions.values()):
                if session.state not in ACTIVE:
                    continue
                idle = session.idle_timeout
                busy = session.speaking_until > now
                if (
                    idle is not None
                    and not busy
                    and now - session.last_activity > self._scaled(idle)
                ):
                    await self.close(session, "expired", "idle timeout")
                elif session.started is not None and now - session.started > self._scaled(
                    session.duration_limit
                ):
                    await self.close(session, "expired", "session duration limit")
            await asyncio.sleep(0.05)

    # --- auth --------------------------------------------------------------------------

    def _principal(self, request: web.Request) -> tuple[str, str | None]:
        """(owner API key, session token or None); refuses unknown credentials with 401."""
        key = request.headers.get("x-api-key")
        if key is not None:
            if key in self.api_keys:
                return key, None
            raise Refusal(401, UNAUTHORIZED, "Unauthorized")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            bearer = auth.removeprefix("Bearer ").strip()
            if bearer in self.api_keys:
                return bearer, None
            if bearer in self._token_owner:
                return self._token_owner[bearer], bearer
        raise Refusal(401, UNAUTHORIZED, "Unauthorized")

    def _session_for(self, request: web.Request, body: dict[str, Any]) -> SimSession:
        owner, token = self._principal(request)
        session_id = body.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            raise Refusal(400, MISSING_PARAMS, "session_id is required")
        session = self.sessions.get(session_id)
        if session is None or session.owner != owner:
            raise Refusal(400, NOT_FOUND, "Session not found")
        if token is not None and self.tokens.get(token) is not session:
            raise Refusal(401, UNAUTHORIZED, "Unauthorized: the token belongs to another session")
        return session

    def _require_state(self, session: SimSession, *allowed: str) -> None:
        if session.state in allowed:
            return
        if session.state == "closed":
            raise Refusal(self.limits.state_error_status, CLOSED, "session state wrong: closed")
        raise Refusal(
            self.limits.state_error_status,
            STATE_CODES[session.state],
            f"session state wrong: {session.state}",
        )

    # --- endpoints ---------------------------------------------------------------------

    async def _create_token(self, request: web.Request) -> web.StreamResponse:
        owner, token = self._principal(request)
        if token is not None:
            raise Refusal(401, UNAUTHORIZED, "a session token cannot create tokens")
        new_token = "sim-tok-" + secrets.token_urlsafe(24)
        self.tokens[new_token] = None
        self._token_owner[new_token] = owner
        return web.json_response({"error": None, "data": {"token": new_token}})

    async def _new(self, request: web.Request) -> web.StreamResponse:
        owner, token = self._principal(request)
        if token is not None and self.tokens.get(token) is not None:
            raise Refusal(401, UNAUTHORIZED, "the session token was already used")
        body = await _json_body(request)
        quality = body.get("quality", "medium")
        if quality not in QUALITY_SIZES:
            raise Refusal(400, INVALID_PARAMETER, "quality must be one of high, medium, low")
        avatar_id = body.get("avatar_id") or body.get("avatar_name") or "default"
        if not any(a["avatar_id"] == avatar_id for a in self.avatars):
            raise Refusal(400, AVATAR_NOT_FOUND, f"Avatar {avatar_id} not found")
        voice = _voice(body.get("voice"))
        encoding = body.get("video_encoding", "VP8")
        if encoding not in ("H264", "VP8"):
            raise Refusal(400, INVALID_PARAMETER, "video_encoding must be H264 or VP8")
        idle = _idle_timeout(body)
        version = body.get("version")
        if version not in (None, "v2"):
            raise Refusal(400, INVALID_PARAMETER, "version must be v2")
        own = _livekit_settings(body.get("livekit_settings"))
        active = [s for s in self.sessions.values() if s.owner == owner and s.state in ACTIVE]
        if len(active) >= self.limits.max_concurrent:
            raise Refusal(400, CONCURRENT_LIMIT, "Concurrent limit reached")
        session_id = str(uuid.uuid4())
        session = SimSession(
            session_id=session_id,
            owner=owner,
            avatar_id=avatar_id,
            quality=quality,
            encoding=encoding,
            version=version,
            voice_rate=voice,
            idle_timeout=idle,
            duration_limit=self.limits.session_duration_limit,
            created=time.time(),
            room=own["room"] if own else f"heygen-{session_id}",
            own_livekit=own,
            last_activity=self._now(),
        )
        self.sessions[session_id] = session
        if token is not None:
            self.tokens[token] = session
            session.bound_token = token
        self.ledger.record_session(SERVICE, session_id, "created")
        return _ok(self._new_session_data(session))

    def _new_session_data(self, session: SimSession) -> dict[str, Any]:
        data: dict[str, Any] = {
            "session_id": session.session_id,
            "is_paid": True,
            "session_duration_limit": session.duration_limit,
            "realtime_endpoint": (
                f"ws://{self._public_host}/v1-alpha/realtime/{session.session_id}"
            ),
        }
        if session.version is None:  # legacy v1: raw WebRTC offer, no LiveKit
            data.update(
                sdp={"type": "offer", "sdp": _fake_offer(session.session_id)},
                ice_servers=None,
                ice_servers2=[{"urls": ["stun:stun.l.google.com:19302"]}],
                url=None,
                access_token=None,
                livekit_agent_token=None,
            )
            return data
        if session.own_livekit is not None:
            url, access, agent = session.own_livekit["url"], None, None
        else:
            url = self.media.livekit_url or "ws://127.0.0.1:7880"
            access = self.media.token(
                session.room, f"client-{session.session_id[:8]}", publish=True
            )
            agent = self.media.token(session.room, "agent", publish=True)
        data.update(
            url=url,
            access_token=access,
            livekit_agent_token=agent,
            sdp=None,
            ice_servers=None,
            ice_servers2=None,
        )
        return data

    async def _start(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        session = self._session_for(request, body)
        self._require_state(session, "new")
        if session.version is None and not isinstance(body.get("sdp"), dict):
            raise Refusal(400, MISSING_PARAMS, "sdp answer is required for v1 sessions")
        session.state = "connecting"
        session.started = self._now()
        session.last_activity = session.started
        self.ledger.record_session(SERVICE, session.session_id, "started")
        if session.version == "v2":
            session.join_task = asyncio.create_task(
                self._join(session), name=f"sim-heygen-join-{session.session_id[:8]}"
            )
        else:
            session.state = "connected"
        return _ok(None)

    async def _join(self, session: SimSession) -> None:
        width, height = QUALITY_SIZES[session.quality]
        if session.own_livekit is not None:
            spec = RoomSpec(
                url=session.own_livekit["url"],
                room=session.own_livekit["room"],
                token=session.own_livekit["token"],
                width=width,
                height=height,
                codec=session.encoding,
            )
        else:
            url = self.media.livekit_url or ""
            token = self.media.token(session.room, "heygen", publish=True)
            spec = RoomSpec(
                url=url,
                room=session.room,
                token=token,
                width=width,
                height=height,
                codec=session.encoding,
            )
        try:
            link = await self.media.join(spec, dialect=HeyGenDialect())
        except Exception as exc:  # the avatar could not join: the session fails, as on HeyGen
            log.warning("simulated avatar failed to join %s: %s", session.room, exc)
            await self.close(session, "expired", f"avatar failed to join: {exc}")
            return
        if session.state != "connecting":  # stopped while joining
            await link.leave()
            return
        session.link = link
        session.state = "connected"
        self.ledger.record_session(SERVICE, session.session_id, "connected")

    async def _task(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        session = self._session_for(request, body)
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise Refusal(400, MISSING_PARAMS, "text is required")
        if len(text) > self.limits.max_text:
            raise Refusal(
                400, INVALID_PARAMETER, f"text is longer than {self.limits.max_text} characters"
            )
        task_type = body.get("task_type", "repeat")
        if task_type not in ("repeat", "chat", "talk"):
            raise Refusal(400, INVALID_PARAMETER, "task_type must be repeat or chat")
        task_mode = body.get("task_mode", "sync")
        if task_mode not in ("sync", "async"):
            raise Refusal(400, INVALID_PARAMETER, "task_mode must be sync or async")
        self._require_state(session, "connected")
        spoken = text if task_type == "repeat" else chat_reply(text)
        task_id = str(uuid.uuid4())
        assert session.link is not None
        duration = await session.link.say(spoken, task_id)
        now = self._now()
        session.speaking_until = max(session.speaking_until, now) + duration
        session.last_activity = now
        session.history.append(spoken)
        if task_mode == "sync":
            session.speech_cut.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(session.speaking_until - now):
                    await session.speech_cut.wait()
        return _ok({"task_id": task_id, "duration_ms": round(duration * 1000, 1)})

    async def _interrupt(self, request: web.Request) -> web.StreamResponse:
        session = self._session_for(request, await _json_body(request))
        self._require_state(session, "connecting", "connected")
        if session.link is not None:
            session.link.interrupt()
        session.speaking_until = 0.0
        session.speech_cut.set()
        session.last_activity = self._now()
        return _ok(None)

    async def _keep_alive(self, request: web.Request) -> web.StreamResponse:
        session = self._session_for(request, await _json_body(request))
        self._require_state(session, *ACTIVE)
        session.last_activity = self._now()
        return _ok(None)

    async def _listening(self, request: web.Request) -> web.StreamResponse:
        session = self._session_for(request, await _json_body(request))
        self._require_state(session, "connected")
        session.last_activity = self._now()
        return _ok(None)

    async def _stop(self, request: web.Request) -> web.StreamResponse:
        session = self._session_for(request, await _json_body(request))
        self._require_state(session, *ACTIVE)
        await self.close(session, "stopped", "stopped by client")
        return _ok(None)

    async def _ice(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        session = self._session_for(request, body)
        candidate = body.get("candidate")
        if not isinstance(candidate, dict) or not isinstance(candidate.get("candidate"), str):
            raise Refusal(400, MISSING_PARAMS, "candidate.candidate is required")
        self._require_state(session, *ACTIVE)
        return _ok(None)

    async def _list(self, request: web.Request) -> web.StreamResponse:
        owner, _ = self._principal(request)
        sessions = [
            {"session_id": s.session_id, "status": s.state, "created_at": int(s.created)}
            for s in self.sessions.values()
            if s.owner == owner and s.state in ACTIVE
        ]
        return _ok({"sessions": sessions})

    async def _history(self, request: web.Request) -> web.StreamResponse:
        owner, _ = self._principal(request)
        mine = [s for s in self.sessions.values() if s.owner == owner]
        page_size = 10
        try:
            start = int(request.query.get("token", "0"))
        except ValueError:
            raise Refusal(400, INVALID_PARAMETER, "invalid pagination token") from None
        rows = mine[start : start + page_size]
        next_token = str(start + page_size) if start + page_size < len(mine) else None
        return _ok(
            {
                "total": len(mine),
                "page": start // page_size + 1,
                "page_size": page_size,
                "next_pagination_token": next_token,
                "data": [
                    {
                        "session_id": s.session_id,
                        "status": s.state,
                        "created_at": int(s.created),
                        "api_key_type": "trial",
                        "duration": round(s.duration_s),
                        "avatar_id": s.avatar_id,
                        "voice_name": "sim-voice-1",
                    }
                    for s in rows
                ],
            }
        )

    async def _avatar_list(self, request: web.Request) -> web.StreamResponse:
        self._principal(request)
        return _ok(list(self.avatars))

    async def bounce_avatar(self, session_id: str, away: float) -> None:
        """Make the avatar leave the room and come back ``away`` seconds later (tests)."""
        session = self.sessions[session_id]
        if session.link is not None:
            link, session.link = session.link, None
            session.state = "connecting"
            await link.leave()
        await asyncio.sleep(away)
        if session.state == "connecting":
            await self._join(session)

    # --- closing -----------------------------------------------------------------------

    async def close(self, session: SimSession, kind: str, reason: str) -> None:
        if session.state == "closed":
            return
        session.state = "closed"
        session.speech_cut.set()
        if session.started is not None:
            session.duration_s = self._now() - session.started
        self.ledger.record_session(
            SERVICE, session.session_id, "stopped" if kind == "stopped" else "expired", reason
        )
        log.info("sim heygen session %s closed: %s", session.session_id[:8], reason)
        if session.join_task is not None and not session.join_task.done():
            session.join_task.cancel()
        if session.link is not None:
            link, session.link = session.link, None
            await link.leave()
        if session.own_livekit is None and session.version == "v2":
            await self.media.close_room(session.room)

    async def aclose(self) -> None:
        for session in list(self.sessions.values()):
            await self.close(session, "stopped", "simulator shut down")


# --- request parsing ---------------------------------------------------------------------


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise Refusal(400, INVALID_PARAMETER, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise Refusal(400, INVALID_PARAMETER, "the body must be a JSON object")
    return body


def _voice(raw: Any) -> float:
    if raw is None:
        return 1.0
    if not isinstance(raw, dict):
        raise Refusal(400, INVALID_PARAMETER, "voice must be an object")
    rate = raw.get("rate", 1.0)
    if not isinstance(rate, int | float) or not 0.5 <= rate <= 1.5:
        raise Refusal(400, INVALID_PARAMETER, "voice.rate must be between 0.5 and 1.5")
    emotion = raw.get("emotion")
    if emotion is not None and str(emotion).lower() not in EMOTIONS:
        raise Refusal(400, INVALID_PARAMETER, f"voice.emotion {emotion!r} is not supported")
    return float(rate)


def _idle_timeout(body: dict[str, Any]) -> float | None:
    if body.get("disable_idle_timeout") is True:
        return None
    idle = body.get("activity_idle_timeout", 120)
    if not isinstance(idle, int) or isinstance(idle, bool) or not 30 <= idle <= 3600:
        raise Refusal(
            400, INVALID_PARAMETER, "activity_idle_timeout must be an integer from 30 to 3600"
        )
    return float(idle)


def _livekit_settings(raw: Any) -> dict[str, str] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not all(
        isinstance(raw.get(k), str) and raw[k] for k in ("url", "room", "token")
    ):
        raise Refusal(400, MISSING_PARAMS, "livekit_settings needs url, room and token")
    return {k: raw[k] for k in ("url", "room", "token")}


def _fake_offer(session_id: str) -> str:
    return (
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\n"
        f"s=heygen-sim-{session_id[:8]}\r\nt=0 0\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\n"
    )


def _ok(data: Any) -> web.Response:
    return web.json_response({"code": SUCCESS, "message": "success", "data": data})
