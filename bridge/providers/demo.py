"""The demo avatar: an in-process performer behind the provider interface.  No key, no network.

It draws a face that moves while it speaks and shows captions, and speaks with espeak-ng (or a
tone pattern without it).  "chat" answers with a canned reply, standing in for an LLM.
"""

from __future__ import annotations

import uuid

from bridge.config import AvatarConfig, CameraConfig
from bridge.errors import ApiFault, SessionGone
from bridge.providers.base import (
    NO_RECORD,
    AvatarInfo,
    LocalMedia,
    PublishData,
    SessionInfo,
    SessionRecorder,
    SpeakMode,
)
from bridge.providers.events import AvatarEvent
from bridge.synthetic.performer import Performer
from bridge.synthetic.reply import chat_reply

DEMO_AVATAR = AvatarInfo(
    avatar_id="demo", name="Built-in demo avatar", status="active", public=True
)


class DemoProvider:
    name = "demo"
    account: str | None = None  # in-process: no session of it outlives the daemon

    def __init__(
        self, *, avatar: AvatarConfig, camera: CameraConfig, test_marks: bool = False
    ) -> None:
        self._avatar = avatar
        self._camera = camera
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
        performer = Performer(
            width=self._camera.width,
            height=self._camera.height,
            fps=self._camera.fps,
            voice_rate=self._avatar.voice_rate,
            language=self._avatar.language,
            test_marks=self._test_marks,
        )
        self._open = DemoSession(LocalMedia(performer=performer, fps=self._camera.fps))
        return self._open


class DemoSession:
    provider = "demo"
    keep_alive_every: float | None = None
    max_text = 1000

    def __init__(self, media: LocalMedia) -> None:
        self.session_id = f"demo-{uuid.uuid4().hex[:12]}"
        self.media = media

    async def speak(self, text: str, mode: SpeakMode) -> str:
        task_id = uuid.uuid4().hex
        await self.media.performer.say(text if mode == "repeat" else chat_reply(text), task_id)
        return task_id

    async def interrupt(self) -> None:
        self.media.performer.interrupt()

    async def keep_alive(self) -> None:
        return None

    async def stop(self) -> None:
        self.media.performer.interrupt()

    def attach(self, publish: PublishData) -> None:
        """The demo has no room to publish into."""

    def decode(self, payload: bytes, topic: str | None) -> list[AvatarEvent]:
        return []
