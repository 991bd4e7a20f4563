"""The demo avatar: an in-process performer behind the provider interface.  No key, no network.

It draws a face that moves while it speaks and shows captions, and speaks with espeak-ng (or a
tone pattern without it).  "chat" answers with a canned reply, standing in for an LLM.  Its
speech events come from the local source as the performer's data packets, and
:meth:`DemoSession.decode` turns them into the bridge's events, as a remote provider's session
decodes its room's packets.
"""

from __future__ import annotations

import asyncio
import uuid

from bridge.config import AvatarConfig, CameraConfig, DemoConfig
from bridge.errors import ApiFault, SessionGone
from bridge.providers.base import (
    NO_RECORD,
    AvatarInfo,
    SessionInfo,
    SessionRecorder,
    SpeakMode,
)
from bridge.providers.events import AvatarEvent
from bridge.source.base import DataChannel
from bridge.source.local import PERFORMER_TOPIC, LocalAvatar, read_performer_packet
from bridge.synthetic.performer import Performer, SpeechEvent
from bridge.synthetic.reply import chat_reply

DEMO_AVATAR = AvatarInfo(
    avatar_id="demo", name="Built-in demo avatar", status="active", public=True
)
# The same limit as the remote providers', so text that works in the demo works there too.
MAX_TEXT = 1000


class DemoProvider:
    name = "demo"
    account: str | None = None  # in-process: no session of it outlives the daemon
    max_text = MAX_TEXT

    def __init__(
        self,
        *,
        avatar: AvatarConfig,
        camera: CameraConfig,
        test_marks: bool = False,
        demo: DemoConfig | None = None,
    ) -> None:
        self._avatar = avatar
        self._camera = camera
        self._demo = demo or DemoConfig()
        self._test_marks = test_marks
        self._open: DemoSession | None = None

    async def aclose(self) -> None:
        return None

    async def list_avatars(self) -> list[AvatarInfo]:
        return [DEMO_AVATAR]

    async def list_sessions(self) -> list[SessionInfo]:
        if self._open is None:
            return []
        return [SessionInfo(session_id=self._open.session_id, status="connected")]

    async def stop_session(self, session_id: str) -> None:
        if self._open is None or self._open.session_id != session_id:
            raise SessionGone(
                ApiFault(404, None, "no such demo session"), provider=self.name, endpoint="stop"
            )
        await self._open.stop()

    async def open_session(self, recorder: SessionRecorder = NO_RECORD) -> DemoSession:
        """In-process: nothing runs remotely, so nothing is recorded."""
        # Building the face takes tens of Pillow draws and swscale runs: not on the loop,
        # where the control API and the media of a renewed session are already live.
        performer = await asyncio.to_thread(
            Performer,
            width=self._camera.width,
            height=self._camera.height,
            fps=self._camera.fps,
            voice_rate=self._avatar.voice_rate,
            language=self._avatar.language,
            test_marks=self._test_marks,
            green=self._demo.background == "green",
        )
        self._open = DemoSession(LocalAvatar(performer))
        return self._open


class DemoSession:
    provider = "demo"
    keep_alive_every: float | None = None
    duration_limit: float | None = None

    def __init__(self, media: LocalAvatar) -> None:
        self.session_id = f"demo-{uuid.uuid4().hex[:12]}"
        self.media = media

    async def speak(self, text: str, mode: SpeakMode, room: DataChannel | None) -> str:
        """The performer speaks (no room: the demo has none)."""
        task_id = uuid.uuid4().hex
        await self.media.performer.say(text if mode == "repeat" else chat_reply(text), task_id)
        return task_id

    async def interrupt(self, room: DataChannel | None) -> None:
        self.media.performer.interrupt()

    async def keep_alive(self) -> None:
        return None

    async def stop(self) -> None:
        self.media.performer.interrupt()

    def decode(self, payload: bytes, topic: str | None) -> list[AvatarEvent]:
        """The performer's packets (:mod:`bridge.source.local`) → bridge events."""
        if topic != PERFORMER_TOPIC:
            return []
        event = read_performer_packet(payload)
        if event is None:
            return []
        mapped = to_avatar_event(event)
        return [] if mapped is None else [mapped]


def to_avatar_event(event: SpeechEvent) -> AvatarEvent | None:
    """The performer's words for its speech → the bridge's (``finished`` has no counterpart:
    the transcript already went out word by word)."""
    if event.kind == "started":
        return AvatarEvent("speak_started", event.task_id)
    if event.kind == "words":
        return AvatarEvent("speak_text", event.task_id, text=event.text)
    if event.kind == "ended":
        return AvatarEvent(
            "speak_ended",
            event.task_id,
            duration_ms=event.duration_ms,
            interrupted=event.interrupted,
        )
    return None
