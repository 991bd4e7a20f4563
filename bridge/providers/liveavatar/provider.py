"""LiveAvatar as an avatar provider (reference/liveavatar-api.md §2–3, FULL mode).

``sessions/token`` (API key) → ``sessions/start`` (session token) → the bridge joins the LiveKit
room LiveAvatar made; text goes out as JSON commands on the data topic ``agent-control`` and the
avatar's events come back on ``agent-response``.  Keep-alive and stop are REST calls made with
the session token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from bridge.config import AvatarConfig, Secret
from bridge.errors import (
    BadInput,
    ConfigError,
    SessionGone,
    TransportError,
    Unauthorized,
)
from bridge.providers.base import (
    NO_RECORD,
    AvatarInfo,
    LiveKitMedia,
    PublishData,
    SessionInfo,
    SessionRecorder,
    SpeakMode,
    discard,
)
from bridge.providers.events import AvatarEvent
from bridge.providers.liveavatar.client import LiveAvatarClient
from bridge.providers.liveavatar.models import (
    MAX_SPEED,
    MIN_SPEED,
    SANDBOX_AVATAR_ID,
    Avatar,
    AvatarPage,
    AvatarPersona,
    ElevenLabsVoiceSettings,
    FullTokenRequest,
    VideoSettings,
)

log = logging.getLogger(__name__)

PROVIDER = "LiveAvatar"
CONTROL_TOPIC = "agent-control"  # commands the client publishes
EVENT_TOPIC = "agent-response"  # events LiveAvatar publishes
AVATAR_IDENTITY = "heygen"  # the participant whose tracks are the avatar (SDK, pipecat)

# LiveAvatar documents no length limit for speak commands.  1000 characters is HeyGen's limit
# per task (the same speech backend), about a minute of speech, and keeps a command far below
# LiveKit's ~15 KiB advice for one reliable data packet even in 4-byte UTF-8.
MAX_TEXT = 1000
# The idle timeout is 5 minutes; LiveKit's plugin keeps sessions alive every 60 s.
KEEP_ALIVE_EVERY = 60.0
MAX_PAGES = 10  # listings: at most this many pages of 100
_TEXT_MEMORY = 256  # speak commands (and transcript styles) decode() remembers


class LiveAvatarProvider:
    name = PROVIDER

    def __init__(self, *, client: LiveAvatarClient, avatar: AvatarConfig) -> None:
        self._client = client
        self._avatar = avatar
        self.account: str | None = f"{self.name} {client.base_url}"
        if avatar.knowledge_base or avatar.knowledge_base_id:
            log.warning(
                "avatar.knowledge_base is not used by LiveAvatar; set avatar.context_id "
                "(a context made at app.liveavatar.com) instead"
            )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def list_avatars(self) -> list[AvatarInfo]:
        """The account's own avatars, then LiveAvatar's public ones (``public=True``)."""
        own = await _all_pages(self._client.list_avatars)
        public = await _all_pages(self._client.list_public_avatars)
        return [
            AvatarInfo(
                avatar_id=a.id,
                name=a.name,
                status="expired" if a.is_expired else (a.status or "unknown").lower(),
                public=is_public,
            )
            for avatars, is_public in ((own, False), (public, True))
            for a in avatars
        ]

    async def list_sessions(self) -> list[SessionInfo]:
        sessions: list[SessionInfo] = []
        for page in range(1, MAX_PAGES + 1):
            answer = await self._client.list_sessions("active", page=page, page_size=100)
            sessions += [
                SessionInfo(session_id=s.id, status="active", created_at=s.created_at)
                for s in answer.results
            ]
            if not answer.results or len(sessions) >= answer.count:
                break
        return sessions

    async def stop_session(self, session_id: str) -> None:
        await self._client.stop(session_id)

    def token_request(self) -> FullTokenRequest:
        """The FULL-mode session this config asks for; ConfigError when LiveAvatar cannot."""
        a = self._avatar
        avatar_id = a.avatar_id or (SANDBOX_AVATAR_ID if a.sandbox else None)
        problems: list[str] = []
        if avatar_id is None:
            problems.append(
                "avatar.avatar_id: not set; LiveAvatar needs one (list them with: "
                "heygen-bridge avatars), or set avatar.sandbox: true for the free sandbox avatar"
            )
        elif a.sandbox and avatar_id != SANDBOX_AVATAR_ID:
            problems.append(
                f"avatar.avatar_id: sandbox sessions can only use the avatar Wayne "
                f"({SANDBOX_AVATAR_ID}); remove avatar.avatar_id or set avatar.sandbox: false"
            )
        if not MIN_SPEED <= a.voice_rate <= MAX_SPEED:
            problems.append(
                f"avatar.voice_rate: {a.voice_rate:g} is outside LiveAvatar's range "
                f"{MIN_SPEED:g} to {MAX_SPEED:g}"
            )
        if problems or avatar_id is None:
            raise ConfigError(problems)
        voice_settings = None
        if a.voice_rate != 1.0:
            voice_settings = ElevenLabsVoiceSettings(speed=a.voice_rate)
        return FullTokenRequest(
            avatar_id=avatar_id,
            avatar_persona=AvatarPersona(
                voice_id=a.voice_id,
                context_id=a.context_id,
                language=a.language,
                voice_settings=voice_settings,
            ),
            video_settings=VideoSettings(quality=a.quality, encoding=a.video_encoding),
            is_sandbox=a.sandbox,
            max_session_duration=a.max_session_duration,
        )

    async def open_session(self, recorder: SessionRecorder = NO_RECORD) -> LiveAvatarSession:
        request = self.token_request()
        if request.avatar_persona.context_id is None:
            log.info("no avatar.context_id: the LiveAvatar avatar repeats text but cannot chat")
        token = await self._client.create_session_token(request)
        await recorder.created(token.session_id)
        try:
            start = await self._client.start_session(token.session_token)
        except BaseException:
            # Never leave a created session behind.  The API key, not the session token:
            # the token may be what was refused.
            await asyncio.shield(discard(self.stop_session, token.session_id, recorder))
            raise
        return LiveAvatarSession(
            client=self._client,
            session_id=token.session_id,
            token=token.session_token,
            media=LiveKitMedia(
                url=start.livekit_url,
                token=start.livekit_client_token,
                avatar_identity=AVATAR_IDENTITY,
            ),
        )


class LiveAvatarSession:
    provider = PROVIDER
    max_text = MAX_TEXT

    def __init__(
        self,
        *,
        client: LiveAvatarClient,
        session_id: str,
        token: Secret,
        media: LiveKitMedia,
        keep_alive_every: float = KEEP_ALIVE_EVERY,
    ) -> None:
        self._client = client
        self._token = token
        self.session_id = session_id
        self.media: LiveKitMedia = media
        self.keep_alive_every: float | None = keep_alive_every
        self._publish: PublishData | None = None
        # Task ids for events that carry no source_event_id: speak commands in the order sent.
        self._pending: deque[str] = deque(maxlen=_TEXT_MEMORY)
        self._current: str | None = None
        self._text_style: dict[str, Literal["chunks", "full"]] = {}
        self._interrupted: set[str] = set()

    # --- commands (data channel) -------------------------------------------------------

    def attach(self, publish: PublishData) -> None:
        self._publish = publish

    async def speak(self, text: str, mode: SpeakMode) -> str:
        """Publish ``avatar.speak_text`` (repeat) or ``avatar.speak_response`` (chat).

        The task id is the command's ``event_id``: LiveAvatar answers no id of its own.
        """
        if not text.strip():
            raise BadInput("text", "is empty")
        if len(text) > MAX_TEXT:
            raise BadInput("text", f"is longer than {MAX_TEXT} characters")
        event_type = "avatar.speak_text" if mode == "repeat" else "avatar.speak_response"
        event_id = str(uuid.uuid4())
        self._pending.append(event_id)
        try:
            await self._send(event_type, event_id, text=text)
        except BaseException:
            with contextlib.suppress(ValueError):
                self._pending.remove(event_id)
            raise
        return event_id

    async def interrupt(self) -> None:
        """Stop speaking; LiveAvatar also drops every queued command."""
        await self._send("avatar.interrupt", str(uuid.uuid4()))
        # LiveAvatar's events say nothing of interruption: the ends still to come are ours.
        self._interrupted = {t for t in (self._current, *self._pending) if t is not None}
        self._pending.clear()

    async def start_listening(self) -> None:
        await self._send("avatar.start_listening", str(uuid.uuid4()))

    async def stop_listening(self) -> None:
        await self._send("avatar.stop_listening", str(uuid.uuid4()))

    async def _send(self, event_type: str, event_id: str, **fields: str) -> None:
        if self._publish is None:
            raise TransportError(
                f"{PROVIDER} {event_type}: not in the avatar's room yet",
                provider=PROVIDER,
                endpoint=CONTROL_TOPIC,
                sent=False,
            )
        body = {
            "event_id": event_id,
            "event_type": event_type,
            "session_id": self.session_id,
            **fields,
        }
        try:
            await self._publish(json.dumps(body).encode(), CONTROL_TOPIC)
        except ConnectionError as exc:  # the room is gone (the source's publish contract)
            raise TransportError(
                f"{PROVIDER} {event_type}: the avatar's room is not connected ({exc})",
                provider=PROVIDER,
                endpoint=CONTROL_TOPIC,
                sent=False,
            ) from exc

    # --- REST --------------------------------------------------------------------------

    async def keep_alive(self) -> None:
        await self._client.keep_alive(self.session_id, token=self._token)

    async def stop(self) -> None:
        try:
            await self._client.stop(self.session_id, "USER_CLOSED", token=self._token)
        except SessionGone:
            return
        except Unauthorized:
            # The token may have lapsed with the session; the account key can still stop it.
            with contextlib.suppress(SessionGone):
                await self._client.stop(self.session_id, "USER_CLOSED")

    # --- events (data channel) ---------------------------------------------------------

    def decode(self, payload: bytes, topic: str | None) -> list[AvatarEvent]:
        """``agent-response`` events (reference §3.2) → bridge events; anything else → nothing."""
        if topic != EVENT_TOPIC:
            return []
        try:
            message: Any = json.loads(payload)
        except ValueError:
            return []
        if not isinstance(message, dict):
            return []
        kind = message.get("event_type")
        raw_source = message.get("source_event_id")
        source = raw_source if isinstance(raw_source, str) and raw_source else None
        raw_text = message.get("text")
        text = raw_text if isinstance(raw_text, str) else ""
        if kind == "avatar.speak_started":
            return [AvatarEvent("speak_started", self._started(source))]
        if kind == "avatar.speak_ended":
            task = self._ended(source)
            interrupted = task in self._interrupted
            self._interrupted.discard(task or "")
            return [AvatarEvent("speak_ended", task, interrupted=interrupted)]
        if kind in ("avatar.transcription", "avatar.transcription_ended") and text:
            return self._avatar_text(source, text, "full")
        if kind == "avatar.transcription.chunk" and text:
            return self._avatar_text(source, text, "chunks")
        if kind in ("user.transcription", "user.transcription_ended") and text:
            return [AvatarEvent("user_text", text=text)]
        if kind == "session.stopped":
            reason = message.get("end_reason")
            return [AvatarEvent("session_stopped", text=reason if isinstance(reason, str) else "")]
        return []

    def _started(self, source: str | None) -> str | None:
        if source is not None:
            with contextlib.suppress(ValueError):
                self._pending.remove(source)
            self._current = source
        else:
            self._current = self._pending.popleft() if self._pending else None
        return self._current

    def _ended(self, source: str | None) -> str | None:
        task: str | None
        if source is not None:
            with contextlib.suppress(ValueError):
                self._pending.remove(source)
            task = source
            if self._current == source:
                self._current = None
        else:  # the utterance that started last; an end never consumes a pending command
            task, self._current = self._current, None
        if task is not None:
            self._text_style.pop(task, None)
        return task

    def _avatar_text(
        self, source: str | None, text: str, style: Literal["chunks", "full"]
    ) -> list[AvatarEvent]:
        """A transcript piece; one style per task, since the full text repeats the chunks."""
        task = source or self._current or (self._pending[0] if self._pending else None)
        if task is not None:
            seen = self._text_style.setdefault(task, style)
            if seen != style:
                return []
            while len(self._text_style) > _TEXT_MEMORY:
                del self._text_style[next(iter(self._text_style))]
        return [AvatarEvent("speak_text", task, text=text)]


async def _all_pages(fetch: Callable[[int, int], Awaitable[AvatarPage]]) -> list[Avatar]:
    found: list[Avatar] = []
    for page in range(1, MAX_PAGES + 1):
        answer = await fetch(page, 100)
        found += answer.results
        if not answer.results or len(found) >= answer.count:
            break
    return found
