"""The HeyGen Streaming API fake: endpoints, credentials and the session state machine.

Follows reference/heygen-api.md §1–2 and §7.  Both credentials work on every endpoint:
``x-api-key`` and ``Authorization: Bearer`` (an API key, or a one-time session token bound to
the session it created).

Session states: new → connecting (start) → connected (avatar joined) → closed (stop, idle
timeout, duration limit).  Limits: concurrent sessions per key (10007), ``activity_idle_timeout``
(reset by task, keep_alive, interrupt, listening, voice input), ``session_duration_limit`` from
start.  Voice chat (a user audio track in the room: the avatar answers) is in heygen/voice.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Unpack

from aiohttp import web

from bridge.sim.clock import sleep_until_or
from bridge.sim.heygen import bodies, voice
from bridge.sim.heygen.bodies import json_body
from bridge.sim.heygen.wire import (
    AVATAR_NOT_FOUND,
    CLOSED,
    CONCURRENT_LIMIT,
    DEFAULT_AVATARS,
    NOT_FOUND,
    QUALITY_SIZES,
    STATE_CODES,
    HeyGenDialect,
    HeyGenRefusal,
    fake_offer,
    invalid,
    missing,
    ok,
    unauthorized,
)
from bridge.sim.media import AvatarLink, Heard, Hooks, JoinFailed, RoomSpec
from bridge.sim.service import Backdrop, FakeService, SimSession
from bridge.synthetic.reply import chat_reply

SessionState = Literal["new", "connecting", "connected", "closed"]
ACTIVE: tuple[SessionState, ...] = ("new", "connecting", "connected")
VOICE_INBOX = 64  # utterances heard and not yet answered, per session


@dataclass
class HeyGenLimits:
    max_concurrent: int = 3
    session_duration_limit: int = 600
    time_scale: float = 1.0  # < 1 shrinks every timeout (rehearsals on the wall clock)
    max_text: int = 1000
    state_error_status: int = 400


@dataclass(kw_only=True)
class HeyGenSession(SimSession):
    avatar_id: str
    quality: str
    encoding: str
    version: str | None
    voice_rate: float
    idle_timeout: float | None
    duration_limit: int
    own_livekit: dict[str, str] | None
    state: SessionState = "new"
    listening: bool = False
    bound_token: str | None = None
    ice_candidates: list[dict[str, Any]] = field(default_factory=list)
    # Set when speech is cut short (interrupt, close): sync tasks stop waiting.
    speech_cut: asyncio.Event = field(default_factory=asyncio.Event)
    # Voice chat (heygen/voice.py): push-to-talk once the client asked for it, its window,
    # and the utterances heard, waiting for their answer.
    push_to_talk: bool = False
    talk_window: bool = False
    heard: asyncio.Queue[Heard] = field(default_factory=lambda: asyncio.Queue(maxsize=VOICE_INBOX))


class HeyGenSim(FakeService[HeyGenSession]):
    """State and handlers of the fake.  Mount with :meth:`routes`; run :meth:`watch` for expiry."""

    SERVICE: ClassVar[str] = "heygen"
    JOINING: ClassVar[str] = "connecting"
    SHUTDOWN_REASON: ClassVar[str] = "simulator shut down"

    def __init__(
        self,
        *,
        public_url: Callable[[], str],
        limits: HeyGenLimits | None = None,
        avatars: tuple[dict[str, Any], ...] = DEFAULT_AVATARS,
        **backdrop: Unpack[Backdrop],
    ) -> None:
        super().__init__(**backdrop)
        self.limits = limits or HeyGenLimits()
        self.avatars = avatars
        self.tokens: dict[str, HeyGenSession | None] = {}
        self._token_owner: dict[str, str] = {}
        self._public_url = public_url  # http://host:port of the simulator, once it listens

    # --- wiring ------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        post = {
            "streaming.create_token": self._create_token,
            "streaming.new": self._new,
            "streaming.start": self._start,
            "streaming.task": self._task,
            "streaming.interrupt": self._interrupt,
            "streaming.keep_alive": self._keep_alive,
            "streaming.start_listening": self._start_listening,
            "streaming.stop_listening": self._stop_listening,
            "streaming.stop": self._stop,
            "streaming.ice": self._ice,
        }
        table = [web.post(f"/v1/{name}", self.guard(fn)) for name, fn in post.items()]
        table += [
            web.get("/v1/streaming.list", self.guard(self._list)),
            web.get("/v2/streaming.list", self.guard(self._history)),
            web.get("/v1/streaming/avatar.list", self.guard(self._avatar_list)),
        ]
        return table

    def owns(self, path: str) -> bool:
        return path.startswith(("/v1/streaming", "/v2/streaming"))

    @property
    def time_scale(self) -> float:
        return self.limits.time_scale

    # --- the skeleton's questions ------------------------------------------------------

    def expiry(self, session: HeyGenSession, now: float) -> str | None:
        if session.state not in ACTIVE:
            return None
        idle = session.idle_timeout
        busy = session.speaking_until > now
        if idle is not None and not busy and now - session.last_activity > self.scaled(idle):
            return "idle timeout"
        if session.started is not None and now - session.started > self.scaled(
            session.duration_limit
        ):
            return "session duration limit"
        return None

    def room_spec(self, session: HeyGenSession) -> RoomSpec:
        width, height = QUALITY_SIZES[session.quality]
        if session.own_livekit is not None:
            url, room = session.own_livekit["url"], session.own_livekit["room"]
            token = session.own_livekit["token"]
        else:
            url, room = self.media.livekit_url or "", session.room
            token = self.media.token(session.room, "heygen", publish=True)
        return RoomSpec(
            url=url, room=room, token=token, width=width, height=height, codec=session.encoding
        )

    def hooks(self, session: HeyGenSession) -> Hooks:
        return Hooks(
            dialect=HeyGenDialect(),
            on_data=functools.partial(voice.take, session),
            on_heard=functools.partial(voice.hear, session, self.now),
            gate=functools.partial(voice.gate, session),
        )

    def joined(self, session: HeyGenSession, link: AvatarLink) -> None:
        session.worker = self.spawn(session, "voice", voice.converse(session, self.now))

    def join_failed(self, session: HeyGenSession, error: JoinFailed) -> str:
        return f"avatar failed to join: {error}"

    def ended(self, session: HeyGenSession, reason: str) -> None:
        session.speech_cut.set()

    def closes_room(self, session: HeyGenSession, was: str) -> bool:
        return session.own_livekit is None and session.version == "v2"

    # --- auth --------------------------------------------------------------------------

    def _principal(self, request: web.Request) -> tuple[str, str | None]:
        """(owner API key, session token or None); refuses unknown credentials with 401."""
        key = request.headers.get("x-api-key")
        if key is not None:
            if key in self.api_keys:
                return key, None
            raise unauthorized()
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            bearer = auth.removeprefix("Bearer ").strip()
            if bearer in self.api_keys:
                return bearer, None
            if bearer in self._token_owner:
                return self._token_owner[bearer], bearer
        raise unauthorized()

    def _session_for(self, request: web.Request, body: dict[str, Any]) -> HeyGenSession:
        """The session the body names, if the caller may use it."""
        owner, token = self._principal(request)
        session_id = body.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            raise missing("session_id is required")
        session = self.sessions.get(session_id)
        if session is None or session.owner != owner:
            raise HeyGenRefusal(400, NOT_FOUND, "Session not found")
        if token is not None and self.tokens.get(token) is not session:
            raise unauthorized("Unauthorized: the token belongs to another session")
        return session

    def _require_state(self, session: HeyGenSession, *allowed: str) -> None:
        if session.state in allowed:
            return
        code = CLOSED if session.state == "closed" else STATE_CODES[session.state]
        status = self.limits.state_error_status
        raise HeyGenRefusal(status, code, f"session state wrong: {session.state}")

    async def _target(self, request: web.Request, *allowed: str) -> HeyGenSession:
        """The session named by a ``{session_id}`` body, in one of the ``allowed`` states."""
        session = self._session_for(request, await json_body(request))
        self._require_state(session, *allowed)
        return session

    # --- session endpoints -------------------------------------------------------------

    async def _create_token(self, request: web.Request) -> web.StreamResponse:
        owner, token = self._principal(request)
        if token is not None:
            raise unauthorized("a session token cannot create tokens")
        new_token = "sim-tok-" + secrets.token_urlsafe(24)
        self.tokens[new_token] = None
        self._token_owner[new_token] = owner
        return web.json_response({"error": None, "data": {"token": new_token}})

    async def _new(self, request: web.Request) -> web.StreamResponse:
        owner, token = self._principal(request)
        if token is not None and self.tokens.get(token) is not None:
            raise unauthorized("the session token was already used")
        ask = bodies.new_session(await json_body(request))
        if not any(a["avatar_id"] == ask.avatar_id for a in self.avatars):
            raise HeyGenRefusal(400, AVATAR_NOT_FOUND, f"Avatar {ask.avatar_id} not found")
        active = [s for s in self.sessions.values() if s.owner == owner and s.state in ACTIVE]
        if len(active) >= self.limits.max_concurrent:
            raise HeyGenRefusal(400, CONCURRENT_LIMIT, "Concurrent limit reached")
        session_id = str(uuid.uuid4())
        session = self.add(
            HeyGenSession(
                session_id=session_id,
                owner=owner,
                room=ask.own_livekit["room"] if ask.own_livekit else f"heygen-{session_id}",
                created=time.time(),
                last_activity=self.now(),
                duration_limit=self.limits.session_duration_limit,
                bound_token=token,
                **dataclasses.asdict(ask),  # what streaming.new asked for, field by field
            )
        )
        if token is not None:
            self.tokens[token] = session
        return ok(self._new_session_data(session))

    def _new_session_data(self, session: HeyGenSession) -> dict[str, Any]:
        realtime = self._public_url().replace("http://", "ws://", 1)
        data: dict[str, Any] = {
            "session_id": session.session_id,
            "is_paid": True,
            "session_duration_limit": session.duration_limit,
            "realtime_endpoint": f"{realtime}/v1-alpha/realtime/{session.session_id}",
        }
        if session.version is None:  # legacy v1: raw WebRTC offer, no LiveKit
            return data | {
                "sdp": {"type": "offer", "sdp": fake_offer(session.session_id)},
                "ice_servers": None,
                "ice_servers2": [{"urls": ["stun:stun.l.google.com:19302"]}],
                "url": None,
                "access_token": None,
                "livekit_agent_token": None,
            }
        if session.own_livekit is not None:
            url, access, agent = session.own_livekit["url"], None, None
        else:
            url = self.media.livekit_url or "ws://127.0.0.1:7880"
            client = f"client-{session.session_id[:8]}"
            access = self.media.token(session.room, client, publish=True)
            agent = self.media.token(session.room, "agent", publish=True)
        return data | {
            "url": url,
            "access_token": access,
            "livekit_agent_token": agent,
            "sdp": None,
            "ice_servers": None,
            "ice_servers2": None,
        }

    async def _start(self, request: web.Request) -> web.StreamResponse:
        body = await json_body(request)
        session = self._session_for(request, body)
        self._require_state(session, "new")
        if session.version is None and not isinstance(bodies.given(body, "sdp"), dict):
            raise missing("sdp answer is required for v1 sessions")
        self.begin(session, join=session.version == "v2")
        return ok(None)

    async def _task(self, request: web.Request) -> web.StreamResponse:
        body = await json_body(request)
        session = self._session_for(request, body)
        ask = bodies.task(body, max_text=self.limits.max_text)
        self._require_state(session, "connected")
        spoken = ask.text if ask.task_type == "repeat" else chat_reply(ask.text)
        task_id = str(uuid.uuid4())
        assert session.link is not None  # connected
        duration = await session.link.say(spoken, task_id)
        now = self.now()
        session.speaking_until = max(session.speaking_until, now) + duration
        session.last_activity = now
        session.history.append(spoken)
        if ask.task_mode == "sync":
            session.speech_cut.clear()
            await sleep_until_or(self.clock, session.speaking_until, session.speech_cut)
        return ok({"task_id": task_id, "duration_ms": round(duration * 1000, 1)})

    async def _interrupt(self, request: web.Request) -> web.StreamResponse:
        session = await self._target(request, "connecting", "connected")
        if session.link is not None:
            session.link.interrupt()
        session.speaking_until = 0.0
        session.speech_cut.set()
        session.last_activity = self.now()
        return ok(None)

    async def _keep_alive(self, request: web.Request) -> web.StreamResponse:
        session = await self._target(request, *ACTIVE)
        session.last_activity = self.now()
        return ok(None)

    async def _start_listening(self, request: web.Request) -> web.StreamResponse:
        return await self._listening(request, listening=True)

    async def _stop_listening(self, request: web.Request) -> web.StreamResponse:
        return await self._listening(request, listening=False)

    async def _listening(self, request: web.Request, *, listening: bool) -> web.StreamResponse:
        session = await self._target(request, "connected")
        session.listening = listening
        session.last_activity = self.now()
        return ok(None)

    async def _stop(self, request: web.Request) -> web.StreamResponse:
        session = await self._target(request, *ACTIVE)
        await self.close(session, "stopped", "stopped by client")
        return ok(None)

    async def _ice(self, request: web.Request) -> web.StreamResponse:
        body = await json_body(request)
        session = self._session_for(request, body)
        candidate = bodies.ice_candidate(body)
        self._require_state(session, *ACTIVE)
        session.ice_candidates.append(candidate)
        return ok(None)

    # --- listings ----------------------------------------------------------------------

    async def _list(self, request: web.Request) -> web.StreamResponse:
        owner, _ = self._principal(request)
        sessions = [
            {"session_id": s.session_id, "status": s.state, "created_at": int(s.created)}
            for s in self.sessions.values()
            if s.owner == owner and s.state in ACTIVE
        ]
        return ok({"sessions": sessions})

    async def _history(self, request: web.Request) -> web.StreamResponse:
        owner, _ = self._principal(request)
        mine = [s for s in self.sessions.values() if s.owner == owner]
        page_size = 10
        try:
            start = int(request.query.get("token", "0"))
        except ValueError:
            raise invalid("invalid pagination token") from None
        rows = mine[start : start + page_size]
        next_token = str(start + page_size) if start + page_size < len(mine) else None
        return ok(
            {
                "total": len(mine),
                "page": start // page_size + 1,
                "page_size": page_size,
                "next_pagination_token": next_token,
                "data": [_historic(s) for s in rows],
            }
        )

    async def _avatar_list(self, request: web.Request) -> web.StreamResponse:
        self._principal(request)
        return ok(list(self.avatars))


def _historic(session: HeyGenSession) -> dict[str, Any]:
    return {
        "session_id": session.session_id,
        "status": session.state,
        "created_at": int(session.created),
        "api_key_type": "trial",
        "duration": round(session.duration_s),
        "avatar_id": session.avatar_id,
        "voice_name": "sim-voice-1",
    }
