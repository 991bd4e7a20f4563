"""One session's lane: the session, its media, and the gate between its media and the sinks.

Renewal before the duration limit is make-before-break: for a few seconds two sessions run
side by side, and exactly one of them, the *active* lane, feeds the camera and the mic.  Each
lane hands its source its own :class:`MediaHandlers` bundle, whose video and audio handlers
forward to the app's sinks only while the lane is active (one bool check per frame, no copy),
and whose data handler decodes with the lane's own session.  The first frame an inactive lane
receives sets :attr:`Lane.first_frame`: the new session is ready, the switch may happen.
Flipping two lanes' ``active`` in one step, on the event loop (where every handler runs),
switches at a frame boundary.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bridge.media.frames import AudioChunk, VideoFrame
from bridge.providers.base import AvatarSession
from bridge.source.base import DataChannel, MediaHandlers, Source

MAKE_BEFORE_BREAK = "make-before-break"
ONE_AT_A_TIME = "break-before-make (the provider allows one session at a time)"

LaneData = Callable[["Lane", bytes, str | None], None]
LanePresence = Callable[["Lane", bool], None]


class Lane:
    """One session and its media.  ``sinks`` are the app's video and audio (only reached
    while :attr:`active`); ``on_data`` and ``on_presence`` receive the lane's data packets and
    presence reports, with the lane, whether active or not (the manager decides)."""

    def __init__(
        self,
        session: AvatarSession,
        sinks: MediaHandlers,
        *,
        on_data: LaneData,
        on_presence: LanePresence,
        opened_at: float,
    ) -> None:
        self.session = session
        self.opened_at = opened_at  # the manager's clock when the session was created
        self.active = False
        self.first_frame = asyncio.Event()
        self.source: Source | None = None
        self.room: DataChannel | None = None
        self.task: asyncio.Task[None] | None = None  # the source's run, once started
        self._video, self._audio = sinks.video, sinks.audio
        self._on_data, self._on_presence = on_data, on_presence
        self.handlers = MediaHandlers(
            video=self._video_in, audio=self._audio_in, data=self._data_in, presence=self._here
        )

    def start(self, source: Source, room: DataChannel | None) -> None:
        """Run ``source`` in a task the lane's owner (the manager) awaits or cancels."""
        self.source, self.room = source, room
        self.task = asyncio.create_task(source.run(), name="media-source")

    def _video_in(self, frame: VideoFrame) -> None:
        if self.active:
            self._video(frame)
        elif not self.first_frame.is_set():
            self.first_frame.set()

    def _audio_in(self, chunk: AudioChunk) -> None:
        if self.active:
            self._audio(chunk)

    def _data_in(self, payload: bytes, topic: str | None) -> None:
        self._on_data(self, payload, topic)

    def _here(self, present: bool) -> None:
        self._on_presence(self, present)
