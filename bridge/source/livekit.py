"""The avatar's LiveKit room → I420 video frames, 48 kHz mono audio chunks and data packets.

Joins with the session's url/token, subscribes to the avatar participant's tracks and hands
every frame on as a view (no copy in Python).  Streams are bounded (``capacity``): video
keeps the newest frames, audio a short FIFO.  It survives track republish (a new consumer per
subscription) and room loss (it rejoins with backoff).  Consumers are cancelled on
unsubscribe/disconnect, because a ``VideoStream`` does not end its iterator at end of stream
(reference/media-api-and-numbers.md §2).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from livekit import rtc
from livekit.rtc.participant import PublishDataError

from bridge.media.frames import AudioChunk, VideoFrame
from bridge.providers.base import LiveKitMedia

log = logging.getLogger(__name__)

SAMPLE_RATE = 48000
VIDEO_CAPACITY = 2  # frames; the writer only ever wants the newest
# 40 ms audio frames: a quarter of the events of the default 10 ms.  Each event takes the GIL
# (an FFI callback, a protobuf decode, a frame object): at 100 a second they delayed the
# camera's writer thread by tens of ms now and then; at 25 the e2e camera tests never saw a
# gap (18 runs).  Still finer than the mic's 60 ms jitter buffer.
AUDIO_FRAME_MS = 40
# libwebrtc hands audio over in 10 ms frames: the first of the four in a 40 ms chunk reached
# the bridge 30 ms before the chunk did.  Lip sync counts from that first sample.
WEBRTC_FRAME_MS = 10
AUDIO_CAPACITY = 13  # 0.5 s before the oldest is dropped
REJOIN_FIRST_S, REJOIN_MAX_S = 0.2, 5.0


@dataclass
class SourceStats:
    state: str = "idle"  # connecting | connected | reconnecting | stopped
    video_frames: int = 0
    audio_frames: int = 0
    data_packets: int = 0
    rejoins: int = 0
    avatar_present: bool = False
    video_size: tuple[int, int] | None = None
    last_error: str | None = None
    tracks: dict[str, str] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "avatar_present": self.avatar_present,
            "video_frames": self.video_frames,
            "audio_frames": self.audio_frames,
            "data_packets": self.data_packets,
            "rejoins": self.rejoins,
            "video_size": list(self.video_size) if self.video_size else None,
            "last_error": self.last_error,
        }


class LiveKitSource:
    def __init__(
        self,
        media: LiveKitMedia,
        *,
        on_video: Callable[[VideoFrame], None],
        on_audio: Callable[[AudioChunk], None],
        on_data: Callable[[bytes, str | None], None],
        on_avatar: Callable[[bool], None] | None = None,
    ) -> None:
        self.media = media
        self._on_video = on_video
        self._on_audio = on_audio
        self._on_data = on_data
        self._on_avatar = on_avatar
        self.stats = SourceStats()
        self._room: rtc.Room | None = None
        self._consumers: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        """Stay in the room until cancelled, rejoining whenever the room is lost."""
        attempt = 0
        try:
            while True:
                lost = asyncio.Event()
                room = self._new_room(lost)
                self.stats.state = "connecting" if self.stats.rejoins == 0 else "reconnecting"
                try:
                    await room.connect(self.media.url, self.media.token, rtc.RoomOptions())
                except rtc.ConnectError as exc:
                    self.stats.last_error = f"cannot join the avatar's room: {exc}"
                    log.warning("%s", self.stats.last_error)
                    attempt += 1
                    await asyncio.sleep(_backoff(attempt))
                    continue
                attempt = 0
                self._room = room
                self.stats.state = "connected"
                log.info("joined the avatar's room as %s", room.local_participant.identity)
                try:
                    await lost.wait()
                finally:
                    await self._leave(room)
                self.stats.rejoins += 1
                self.stats.state = "reconnecting"
                log.warning("lost the avatar's room; rejoining")
                await asyncio.sleep(_backoff(1))
        finally:
            self.stats.state = "stopped"

    def snapshot(self) -> dict[str, Any]:
        return self.stats.snapshot()

    async def publish(self, payload: bytes, topic: str) -> None:
        """Send a data packet into the room (reliable); ConnectionError when it cannot."""
        room = self._room
        if room is None or not room.isconnected():
            raise ConnectionError("not in the avatar's room")
        try:
            await room.local_participant.publish_data(payload, reliable=True, topic=topic)
        except PublishDataError as exc:  # one contract for callers: ConnectionError
            raise ConnectionError(f"could not send into the avatar's room: {exc}") from exc

    # --- room events -------------------------------------------------------------------

    def _new_room(self, lost: asyncio.Event) -> rtc.Room:
        room = rtc.Room()

        @room.on("track_subscribed")
        def _subscribed(
            track: rtc.Track, publication: rtc.RemoteTrackPublication, who: rtc.RemoteParticipant
        ) -> None:
            if who.identity == self.media.avatar_identity:
                self._consume(track)
                if track.kind == rtc.TrackKind.KIND_VIDEO:
                    self._avatar(True)

        @room.on("track_unsubscribed")
        def _unsubscribed(
            track: rtc.Track, publication: rtc.RemoteTrackPublication, who: rtc.RemoteParticipant
        ) -> None:
            self._stop_consumer(track.sid)
            if (
                who.identity == self.media.avatar_identity
                and track.kind == rtc.TrackKind.KIND_VIDEO
            ):
                self._avatar(False)

        @room.on("participant_disconnected")
        def _left(who: rtc.RemoteParticipant) -> None:
            if who.identity == self.media.avatar_identity:
                self._avatar(False)

        @room.on("data_received")
        def _data(packet: rtc.DataPacket) -> None:
            self.stats.data_packets += 1
            self._on_data(packet.data, packet.topic)

        @room.on("disconnected")
        def _disconnected(reason: Any) -> None:
            self.stats.last_error = f"room disconnected ({reason})"
            lost.set()

        return room

    def _avatar(self, present: bool) -> None:
        if present != self.stats.avatar_present:
            self.stats.avatar_present = present
            log.info("avatar video %s", "arrived" if present else "gone")
            if self._on_avatar is not None:
                self._on_avatar(present)

    async def _leave(self, room: rtc.Room) -> None:
        self._room = None
        consumers = list(self._consumers.values())
        for sid in list(self._consumers):
            self._stop_consumer(sid)
        await asyncio.gather(*consumers, return_exceptions=True)
        self._avatar(False)
        with contextlib.suppress(rtc.ConnectError):  # already gone is fine
            await room.disconnect()

    # --- consumers ---------------------------------------------------------------------

    def _consume(self, track: rtc.Track) -> None:
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            job = self._video(track)
        elif track.kind == rtc.TrackKind.KIND_AUDIO:
            job = self._audio(track)
        else:
            return
        self._stop_consumer(track.sid)
        self.stats.tracks[track.sid] = (
            "video" if track.kind == rtc.TrackKind.KIND_VIDEO else "audio"
        )
        self._consumers[track.sid] = asyncio.create_task(job, name=f"consume-{track.sid}")

    def _stop_consumer(self, sid: str) -> None:
        task = self._consumers.pop(sid, None)
        self.stats.tracks.pop(sid, None)
        if task is not None:
            task.cancel()

    async def _video(self, track: rtc.Track) -> None:
        stream = rtc.VideoStream(track, capacity=VIDEO_CAPACITY, format=rtc.VideoBufferType.I420)
        try:
            async for event in stream:
                frame = event.frame
                self.stats.video_frames += 1
                self.stats.video_size = (frame.width, frame.height)
                self._on_video(
                    VideoFrame(
                        frame.width,
                        frame.height,
                        np.frombuffer(frame.data, np.uint8),
                        arrived=time.perf_counter(),
                        timestamp_us=event.timestamp_us,
                    )
                )
        finally:
            await stream.aclose()

    async def _audio(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream(
            track,
            capacity=AUDIO_CAPACITY,
            sample_rate=SAMPLE_RATE,
            num_channels=1,
            frame_size_ms=AUDIO_FRAME_MS,
        )
        try:
            async for event in stream:
                self.stats.audio_frames += 1
                frame = event.frame
                gathered = max(0.0, frame.duration - WEBRTC_FRAME_MS / 1000)
                self._on_audio(
                    AudioChunk(
                        np.frombuffer(frame.data, np.int16),
                        SAMPLE_RATE,
                        arrived=time.perf_counter() - gathered,
                    )
                )
        finally:
            await stream.aclose()


def _backoff(attempt: int) -> float:
    return random.uniform(0.5, 1.0) * min(REJOIN_MAX_S, REJOIN_FIRST_S * 2.0 ** (attempt - 1))
