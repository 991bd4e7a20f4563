"""The HeyGen Streaming API as an avatar provider (reference/heygen-api.md §2.1 backend flow).

``streaming.new`` → ``streaming.start`` → the bridge joins the LiveKit room as the user; text
goes out as ``streaming.task``; the avatar's events come back as data packets (§3.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime

from bridge.config import AvatarConfig
from bridge.errors import InvalidRequest, SessionGone, UnexpectedResponse
from bridge.providers.base import (
    NO_RECORD,
    AvatarInfo,
    SessionInfo,
    SessionRecorder,
    SpeakMode,
    start_or_discard,
)
from bridge.providers.events import AvatarEvent
from bridge.providers.heygen.client import HeyGenClient
from bridge.providers.heygen.models import (
    LiveKitSettings,
    NewSessionData,
    NewSessionRequest,
    TaskType,
    Voice,
)
from bridge.providers.heygen.own_room import OwnRoom
from bridge.source.base import DataChannel
from bridge.source.room import RoomAddress

log = logging.getLogger(__name__)

MAX_TEXT = 1000  # HeyGen speaks at most about 1000 characters per task (reference §2.2)
STILL_CONNECTING = 10002
CONNECTING_GRACE_S = 10.0


class HeyGenProvider:
    name = "HeyGen"
    max_text = MAX_TEXT

    def __init__(
        self, *, client: HeyGenClient, avatar: AvatarConfig, own_room: OwnRoom | None = None
    ) -> None:
        self._client = client
        self._avatar = avatar
        self._own_room = own_room
        self.account: str | None = f"{self.name} {client.base_url}"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def list_avatars(self) -> list[AvatarInfo]:
        return [
            AvatarInfo(
                avatar_id=a.avatar_id,
                name=a.pose_name or a.avatar_id,
                status=(a.status or "unknown").lower(),
                public=a.is_public,
            )
            for a in await self._client.list_avatars()
        ]

    async def list_sessions(self) -> list[SessionInfo]:
        return [
            SessionInfo(
                session_id=s.session_id,
                status=s.status,
                created_at=(
                    datetime.fromtimestamp(s.created_at, UTC) if s.created_at is not None else None
                ),
            )
            for s in await self._client.list_sessions()
        ]

    async def stop_session(self, session_id: str) -> None:
        await self._client.stop(session_id)

    def new_session_request(self) -> NewSessionRequest:
        a = self._avatar
        voice = None
        if a.voice_id or a.voice_rate != 1.0 or a.voice_emotion:
            voice = Voice(voice_id=a.voice_id, rate=a.voice_rate, emotion=a.voice_emotion)
        settings = None
        if self._own_room is not None:
            settings = LiveKitSettings(
                url=self._own_room.url,
                room=self._own_room.room,
                token=self._own_room.avatar_token(),
            )
        quality = a.quality if a.quality != "very_high" else "high"
        return NewSessionRequest(
            quality=quality,
            avatar_id=a.avatar_id,
            voice=voice,
            video_encoding=a.video_encoding,
            knowledge_base=a.knowledge_base,
            knowledge_base_id=a.knowledge_base_id,
            language=a.language,
            activity_idle_timeout=a.activity_idle_timeout,
            livekit_settings=settings,
        )

    async def open_session(self, recorder: SessionRecorder = NO_RECORD) -> HeyGenSession:
        data = await self._client.new_session(self.new_session_request())

        async def start() -> RoomAddress:
            await self._client.start_session(data.session_id)
            return self._room_of(data)

        room = await start_or_discard(
            data.session_id, start, stop_session=self.stop_session, recorder=recorder
        )
        idle = self._avatar.activity_idle_timeout
        return HeyGenSession(
            client=self._client,
            session_id=data.session_id,
            media=room,
            keep_alive_every=min(60.0, idle / 3),
            duration_limit=data.session_duration_limit,
        )

    def _room_of(self, data: NewSessionData) -> RoomAddress:
        """Where the bridge joins the avatar: your own room, or the one HeyGen made."""
        if self._own_room is not None:
            return RoomAddress(url=self._own_room.url, token=self._own_room.bridge_token())
        if data.url and data.access_token:
            return RoomAddress(url=data.url, token=data.access_token)
        raise UnexpectedResponse(
            "HeyGen streaming.new: answered without a LiveKit url and access_token",
            provider=self.name,
            endpoint="streaming.new",
        )


class HeyGenSession:
    """One HeyGen session: commands over REST, events from its room's data packets."""

    provider = "HeyGen"

    def __init__(
        self,
        *,
        client: HeyGenClient,
        session_id: str,
        media: RoomAddress,
        keep_alive_every: float,
        duration_limit: float | None = None,
    ) -> None:
        self._client = client
        self.session_id = session_id
        self.media: RoomAddress = media
        self.keep_alive_every: float | None = keep_alive_every
        self.duration_limit = duration_limit
        self._heard: list[str] = []  # the user's transcript chunks, until their end

    async def speak(self, text: str, mode: SpeakMode, room: DataChannel | None) -> str:
        """``streaming.task`` (REST; nothing goes through the room)."""
        # HeyGen's own SDK sends "talk" for LLM answers; the docs call it "chat".
        task_type: TaskType = "repeat" if mode == "repeat" else "talk"
        deadline = asyncio.get_running_loop().time() + CONNECTING_GRACE_S
        while True:
            try:
                task = await self._client.task(self.session_id, text, task_type=task_type)
            except InvalidRequest as exc:
                # The avatar's video can reach us a moment before HeyGen calls the session
                # connected; "still connecting" is worth a short wait, not a failure.
                if exc.code != STILL_CONNECTING or asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.25)
                continue
            return task.task_id

    async def interrupt(self, room: DataChannel | None) -> None:
        await self._client.interrupt(self.session_id)

    async def listen(self, on: bool, push_to_talk: bool, room: DataChannel | None) -> None:
        """The listening state (REST); the user's audio itself is the room's microphone track
        (voice chat), gated by the bridge in push-to-talk."""
        if on:
            await self._client.start_listening(self.session_id)
        else:
            await self._client.stop_listening(self.session_id)

    async def keep_alive(self) -> None:
        await self._client.keep_alive(self.session_id)

    async def stop(self) -> None:
        with contextlib.suppress(SessionGone):
            await self._client.stop(self.session_id)

    def decode(self, payload: bytes, topic: str | None) -> list[AvatarEvent]:
        """Data packets → events; the user's transcript chunks are joined into one
        ``user_text`` per utterance, at its ``user_end_message``."""
        events = []
        for event in decode_event(payload):
            if event.kind == "user_text":
                self._heard.append(event.text)
            elif event.kind == "user_ended":
                heard, self._heard = "".join(self._heard).strip(), []
                if heard:
                    events.append(AvatarEvent("user_text", text=heard))
            else:
                events.append(event)
        return events


def decode_event(payload: bytes) -> list[AvatarEvent]:
    """HeyGen data packets (reference §3.1) → bridge events; anything else → nothing.
    ``user_talking_message`` is one chunk of the user's transcript (``user_text``), and
    ``user_end_message`` ends it (``user_ended``)."""
    try:
        message = json.loads(payload)
    except ValueError:
        return []
    if not isinstance(message, dict):
        return []
    kind = message.get("type")
    task_id = message.get("task_id")
    task = task_id if isinstance(task_id, str) else None
    text = message.get("message")
    if kind == "avatar_start_talking":
        return [AvatarEvent("speak_started", task)]
    if kind == "avatar_talking_message" and isinstance(text, str):
        return [AvatarEvent("speak_text", task, text=text)]
    if kind == "avatar_stop_talking":
        duration = message.get("duration_ms")
        ms = float(duration) if isinstance(duration, int | float) else None
        return [AvatarEvent("speak_ended", task, duration_ms=ms)]
    if kind == "user_talking_message" and isinstance(text, str):
        return [AvatarEvent("user_text", text=text)]
    if kind == "user_end_message":
        return [AvatarEvent("user_ended")]
    return []
