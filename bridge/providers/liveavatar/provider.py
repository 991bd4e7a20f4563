"""LiveAvatar as an avatar provider (reference/liveavatar-api.md §2–3, FULL mode).

``sessions/token`` (API key) → ``sessions/start`` (session token) → the bridge joins the LiveKit
room LiveAvatar made; text goes out as JSON commands on the data topic ``agent-control``,
through the room link the session manager hands each command, and the avatar's events come
back on ``agent-response`` (decoded and matched to their commands in :mod:`.events`).
Keep-alive and stop are REST calls made with the session token.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable

from bridge.config import AvatarConfig, Secret
from bridge.errors import ConfigError, SessionGone, TransportError, Unauthorized
from bridge.providers.base import (
    NO_RECORD,
    AvatarInfo,
    SessionInfo,
    SessionRecorder,
    SpeakMode,
    start_or_discard,
)
from bridge.providers.events import AvatarEvent
from bridge.providers.liveavatar.client import LiveAvatarClient
from bridge.providers.liveavatar.events import SpeechEvents
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
from bridge.source.base import DataChannel
from bridge.source.room import RoomAddress

log = logging.getLogger(__name__)

PROVIDER = "LiveAvatar"
CONTROL_TOPIC = "agent-control"  # commands the client publishes (events: events.py)

# LiveAvatar documents no length limit for speak commands.  1000 characters is HeyGen's limit
# per task (the same speech backend), about a minute of speech, and keeps a command far below
# LiveKit's ~15 KiB advice for one reliable data packet even in 4-byte UTF-8.
MAX_TEXT = 1000
# The idle timeout is 5 minutes; LiveKit's plugin keeps sessions alive every 60 s.
KEEP_ALIVE_EVERY = 60.0
MAX_PAGES = 10  # listings: at most this many pages of 100


class LiveAvatarProvider:
    name = PROVIDER
    max_text = MAX_TEXT

    def __init__(
        self, *, client: LiveAvatarClient, avatar: AvatarConfig, push_to_talk: bool = False
    ) -> None:
        """``push_to_talk``: sessions hear the user only inside push-to-talk windows
        (``listen.mode: push-to-talk``); otherwise whenever the user's audio arrives."""
        self._client = client
        self._avatar = avatar
        self._push_to_talk = push_to_talk
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
            interactivity_type="PUSH_TO_TALK" if self._push_to_talk else None,
        )

    async def open_session(self, recorder: SessionRecorder = NO_RECORD) -> LiveAvatarSession:
        request = self.token_request()
        if request.avatar_persona.context_id is None:
            log.info("no avatar.context_id: the LiveAvatar avatar repeats text but cannot chat")
        token = await self._client.create_session_token(request)
        # Should starting fail, the session is stopped with the API key, not the session
        # token: the token may be what was refused.
        start = await start_or_discard(
            token.session_id,
            lambda: self._client.start_session(token.session_token),
            stop_session=self.stop_session,
            recorder=recorder,
        )
        return LiveAvatarSession(
            client=self._client,
            session_id=token.session_id,
            token=token.session_token,
            media=RoomAddress(url=start.livekit_url, token=start.livekit_client_token),
            duration_limit=start.max_session_duration or request.max_session_duration,
        )


class LiveAvatarSession:
    """One LiveAvatar session: commands through its room link, keep-alive and stop over REST,
    events decoded by :class:`~bridge.providers.liveavatar.events.SpeechEvents`."""

    provider = PROVIDER

    def __init__(
        self,
        *,
        client: LiveAvatarClient,
        session_id: str,
        token: Secret,
        media: RoomAddress,
        keep_alive_every: float = KEEP_ALIVE_EVERY,
        duration_limit: float | None = None,
    ) -> None:
        self._client = client
        self._token = token
        self.session_id = session_id
        self.media: RoomAddress = media
        self.keep_alive_every: float | None = keep_alive_every
        self.duration_limit = duration_limit
        self._events = SpeechEvents()

    # --- commands (through the room link) --------------------------------------------------

    async def speak(self, text: str, mode: SpeakMode, room: DataChannel | None) -> str:
        """Publish ``avatar.speak_text`` (repeat) or ``avatar.speak_response`` (chat).

        The task id is the command's ``event_id``: LiveAvatar answers no id of its own.
        """
        event_type = "avatar.speak_text" if mode == "repeat" else "avatar.speak_response"
        event_id = str(uuid.uuid4())
        self._events.speaking(event_id)
        try:
            await self._send(room, event_type, event_id, text=text)
        except BaseException:
            self._events.not_sent(event_id)
            raise
        return event_id

    async def interrupt(self, room: DataChannel | None) -> None:
        """Stop speaking; LiveAvatar also drops every queued command."""
        await self._send(room, "avatar.interrupt", str(uuid.uuid4()))
        self._events.interrupted()

    async def start_listening(self, room: DataChannel | None) -> None:
        await self._send(room, "avatar.start_listening", str(uuid.uuid4()))

    async def stop_listening(self, room: DataChannel | None) -> None:
        await self._send(room, "avatar.stop_listening", str(uuid.uuid4()))

    async def listen(self, on: bool, push_to_talk: bool, room: DataChannel | None) -> None:
        """Push-to-talk: open or close the capture window (audio outside it is ignored);
        conversational: the listening state, and back."""
        if push_to_talk:
            kind = "user.start_push_to_talk" if on else "user.stop_push_to_talk"
        else:
            kind = "avatar.start_listening" if on else "avatar.stop_listening"
        await self._send(room, kind, str(uuid.uuid4()))

    async def _send(
        self, room: DataChannel | None, event_type: str, event_id: str, **fields: str
    ) -> None:
        if room is None:
            raise TransportError(
                f"{PROVIDER} {event_type}: the session has no room to send into",
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
            await room.publish(json.dumps(body).encode(), CONTROL_TOPIC)
        except ConnectionError as exc:  # not in the room (the room link's publish contract)
            raise TransportError(
                f"{PROVIDER} {event_type}: the avatar's room is not connected ({exc})",
                provider=PROVIDER,
                endpoint=CONTROL_TOPIC,
                sent=False,
            ) from exc

    # --- REST ------------------------------------------------------------------------------

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

    # --- events (from the room, through the manager) ---------------------------------------

    def decode(self, payload: bytes, topic: str | None) -> list[AvatarEvent]:
        """``agent-response`` events (reference §3.2) → bridge events; anything else → nothing."""
        return self._events.decode(payload, topic)


async def _all_pages(fetch: Callable[[int, int], Awaitable[AvatarPage]]) -> list[Avatar]:
    found: list[Avatar] = []
    for page in range(1, MAX_PAGES + 1):
        answer = await fetch(page, 100)
        found += answer.results
        if not answer.results or len(found) >= answer.count:
            break
    return found
