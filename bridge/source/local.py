"""The demo avatar's media: its performer driven in real time, straight into the pipeline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bridge.media.frames import I16, U8, AudioChunk, VideoFrame
from bridge.providers.base import LocalMedia
from bridge.providers.events import AvatarEvent
from bridge.synthetic.clock import drive
from bridge.synthetic.performer import SpeechEvent


def to_avatar_event(event: SpeechEvent) -> AvatarEvent | None:
    """Performer events → the bridge's events (the demo's own 'data channel')."""
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


class LocalSource:
    def __init__(
        self,
        media: LocalMedia,
        *,
        on_video: Callable[[VideoFrame], None],
        on_audio: Callable[[AudioChunk], None],
        on_event: Callable[[AvatarEvent], None],
    ) -> None:
        self.media = media
        self._on_video = on_video
        self._on_audio = on_audio
        self._on_event = on_event
        self.frames = 0

    async def run(self) -> None:
        performer = self.media.performer
        width, height, rate = performer.width, performer.height, performer.sample_rate

        def video(buf: U8, frame_number: int) -> None:
            # The renderer reuses its buffer: the pipeline gets its own copy (one C memcpy).
            self.frames += 1
            self._on_video(VideoFrame(width, height, buf.copy(), arrived=time.perf_counter()))

        async def audio(samples: I16) -> None:
            self._on_audio(AudioChunk(samples, rate, arrived=time.perf_counter()))

        async def event(speech: SpeechEvent) -> None:
            mapped = to_avatar_event(speech)
            if mapped is not None:
                self._on_event(mapped)

        await drive(performer, on_video=video, on_audio=audio, on_event=event)

    def snapshot(self) -> dict[str, Any]:
        return {"state": "local", "avatar_present": True, "video_frames": self.frames}

    async def publish(self, payload: bytes, topic: str) -> None:
        raise ConnectionError("the demo avatar has no room to publish into")
