"""The demo avatar's media: its performer driven in real time, straight into the pipeline.

A :class:`Source` like the LiveKit room: frames to ``video``, audio to ``audio``, and the
performer's speech events to ``data`` as packets on :data:`PERFORMER_TOPIC` (JSON), as a
provider's events arrive over a room's data channel.  The demo session decodes them; this
module only carries them, in the performer's own words.  The avatar is always present.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from typing import Any

from bridge.media.frames import I16, U8, AudioChunk, VideoFrame
from bridge.source.base import MediaHandlers
from bridge.synthetic.clock import drive
from bridge.synthetic.performer import Performer, SpeechEvent

PERFORMER_TOPIC = "performer"


@dataclass(frozen=True, slots=True)
class LocalAvatar:
    """The avatar runs in this process (the demo): its performer makes picture, voice and
    speech events."""

    performer: Performer


def performer_packet(event: SpeechEvent) -> bytes:
    """A performer's speech event as a data packet on :data:`PERFORMER_TOPIC`."""
    return json.dumps(dataclasses.asdict(event)).encode()


def read_performer_packet(payload: bytes) -> SpeechEvent | None:
    """The speech event a :func:`performer_packet` carries; None for anything else."""
    try:
        fields = json.loads(payload)
        return SpeechEvent(**fields)
    except (ValueError, TypeError):  # not JSON, or not a speech event's fields
        return None


class LocalSource:
    """The in-process demo avatar as a :class:`~bridge.source.base.Source`."""

    def __init__(self, avatar: LocalAvatar, handlers: MediaHandlers) -> None:
        self.avatar = avatar
        self._handlers = handlers
        self.frames = 0

    async def run(self) -> None:
        """Until cancelled."""
        performer, handlers = self.avatar.performer, self._handlers
        width, height, rate = performer.width, performer.height, performer.sample_rate

        def video(buf: U8, frame_number: int) -> None:
            # The renderer reuses its buffer: the pipeline gets its own copy (one C memcpy).
            self.frames += 1
            handlers.video(VideoFrame(width, height, buf.copy(), arrived=time.perf_counter()))

        async def audio(samples: I16) -> None:
            handlers.audio(AudioChunk(samples, rate, arrived=time.perf_counter()))

        async def event(speech: SpeechEvent) -> None:
            handlers.data(performer_packet(speech), PERFORMER_TOPIC)

        handlers.presence(True)  # in-process: the avatar is here from the first frame
        await drive(performer, on_video=video, on_audio=audio, on_event=event)

    def snapshot(self) -> dict[str, Any]:
        return {"state": "local", "avatar_present": True, "video_frames": self.frames}
