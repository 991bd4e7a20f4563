"""The avatar's LiveKit room → I420 video frames and 48 kHz mono audio chunks.

Joins through the session's :class:`~bridge.source.room.RoomLink`, subscribes to the avatar
participant's tracks and hands every frame on as a view (no copy in Python).  Streams are
bounded (``capacity``): video keeps the newest frames, audio a short FIFO.  It survives track
republish (a new consumer per subscription) and room loss (it rejoins with backoff), except
when the server closed the room (:class:`~bridge.source.base.RoomClosed`: the session is over).

Every track consumer runs in the task group of its stay in the room, so none outlives it and
none dies unseen: a consumer that raises ends the stay and :meth:`LiveKitSource.run` raises
:class:`~bridge.source.base.SourceFailed` (the manager renews the session).  Consumers are
cancelled on unsubscribe and on leaving, because a ``VideoStream`` does not end its iterator
at end of stream (reference/media-api-and-numbers.md §2).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

import numpy as np
from livekit import rtc

from bridge.backoff import Backoff, Retrying
from bridge.media.frames import AudioChunk, VideoFrame
from bridge.source.base import MediaHandlers, RoomClosed, SourceFailed
from bridge.source.room import RoomLink
from bridge.source.rx_delay import ReceiveDelay, counters, voice_lag_ms

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
# How often each track's RTC stats are read for its receive delay (bridge/source/rx_delay.py):
# one FFI request a second per track.
RX_DELAY_EVERY_S = 1.0
REJOIN = Backoff(first=0.2, cap=5.0, spread=(0.5, 1.0))

SourceState = Literal["idle", "connecting", "connected", "reconnecting", "stopped"]
TrackKind = Literal["video", "audio"]


@dataclass
class SourceStats:
    state: SourceState = "idle"
    video_frames: int = 0
    audio_frames: int = 0
    rejoins: int = 0
    avatar_present: bool = False
    video_size: tuple[int, int] | None = None
    last_error: str | None = None
    # libwebrtc's receive delay per track (jitter buffers, decode), from its RTC stats.
    audio_rx_delay_ms: float | None = None
    video_rx_delay_ms: float | None = None

    @property
    def audio_lag_ms(self) -> float:
        """How much later than the picture the voice reaches the bridge (0: unknown)."""
        return voice_lag_ms(self.audio_rx_delay_ms, self.video_rx_delay_ms)


class LiveKitSource:
    """The avatar's tracks in its LiveKit room, handed to ``handlers`` (a :class:`Source`)."""

    def __init__(self, link: RoomLink, handlers: MediaHandlers) -> None:
        self.link = link
        self._handlers = handlers
        self.stats = SourceStats()
        self._group: asyncio.TaskGroup | None = None  # the consumers of the current stay
        self._consumers: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        """Stay in the room until cancelled, rejoining whenever the room is lost.

        :class:`SourceFailed` when a track consumer died (the cause is chained).  Cancelling
        is safe at any moment, also while the room is connecting; the canceller then waits a
        bounded time, while the connect ends and the room is left
        (:mod:`bridge.source.livekit_join`).
        """
        joining = Retrying(REJOIN)
        try:
            while True:
                self.stats.state = "connecting" if self.stats.rejoins == 0 else "reconnecting"
                if not await self._stay():
                    await asyncio.sleep(joining.failed())
                    continue
                joining.succeeded()
                if self.link.deleted:  # the provider ended the session: nothing to rejoin
                    raise RoomClosed(
                        f"the server closed the avatar's room ({self.stats.last_error})"
                    )
                self.stats.rejoins += 1
                self.stats.state = "reconnecting"
                log.warning("lost the avatar's room (%s); rejoining", self.stats.last_error)
                await asyncio.sleep(REJOIN.delay(1))
        finally:
            self.stats.state = "stopped"

    def snapshot(self) -> dict[str, Any]:
        s = self.stats
        return {
            "state": s.state,
            "avatar_present": s.avatar_present,
            "video_frames": s.video_frames,
            "audio_frames": s.audio_frames,
            "data_packets": self.link.data_packets,
            "rejoins": s.rejoins,
            "video_size": list(s.video_size) if s.video_size else None,
            "audio_rx_delay_ms": _rounded(s.audio_rx_delay_ms),
            "video_rx_delay_ms": _rounded(s.video_rx_delay_ms),
            "last_error": s.last_error,
        }

    # --- one stay in the room ----------------------------------------------------------

    async def _stay(self) -> bool:
        """Join, consume the avatar's tracks until the room is lost, leave.

        False when the room could not be joined; :class:`SourceFailed` when a consumer died.
        """
        joined = False
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                try:
                    joined = await self._join()
                    if joined:
                        self.stats.last_error = await self.link.lost()
                        self._presence(False)  # a lost room takes the avatar with it
                finally:
                    self._group = None
                    for task in self._consumers.values():
                        task.cancel()  # the group awaits them
                    self._consumers.clear()
        except BaseExceptionGroup as died:  # only a consumer's death (or a bug) ends up here
            _raise_failure(died)
        finally:
            self.stats.avatar_present = False
            await self.link.leave()
        return joined

    async def _join(self) -> bool:
        try:
            await self.link.join(self._watch)
        except rtc.ConnectError as exc:
            self.stats.last_error = f"cannot join the avatar's room: {exc}"
            log.warning("%s", self.stats.last_error)
            return False
        self.stats.state = "connected"
        log.info("joined the avatar's room as %s", self.link.identity)
        return True

    def _watch(self, room: rtc.Room) -> None:
        avatar = self.link.address.avatar_identity

        @room.on("track_subscribed")
        def _subscribed(
            track: rtc.Track, publication: rtc.RemoteTrackPublication, who: rtc.RemoteParticipant
        ) -> None:
            if who.identity == avatar and self._group is not None:
                self._consume(self._group, track)
                if track.kind == rtc.TrackKind.KIND_VIDEO:
                    self._presence(True)

        @room.on("track_unsubscribed")
        def _unsubscribed(
            track: rtc.Track, publication: rtc.RemoteTrackPublication, who: rtc.RemoteParticipant
        ) -> None:
            self._stop_consumer(track.sid)
            if who.identity == avatar and track.kind == rtc.TrackKind.KIND_VIDEO:
                self._presence(False)

        @room.on("participant_disconnected")
        def _left(who: rtc.RemoteParticipant) -> None:
            if who.identity == avatar:
                self._presence(False)

    def _presence(self, present: bool) -> None:
        """Tell the handlers when the avatar's picture comes or goes, during a stay only:
        whoever ends a stay (cancel, a consumer's death) knows already."""
        if self._group is not None and present != self.stats.avatar_present:
            self.stats.avatar_present = present
            log.info("avatar video %s", "arrived" if present else "gone")
            self._handlers.presence(present)

    # --- consumers -----------------------------------------------------------------------

    def _consume(self, group: asyncio.TaskGroup, track: rtc.Track) -> None:
        job: Coroutine[Any, Any, None]
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            kind: TrackKind = "video"
            job = self._video(track)
        elif track.kind == rtc.TrackKind.KIND_AUDIO:
            kind = "audio"
            job = self._audio(track)
        else:
            return
        self._stop_consumer(track.sid)
        measured = self._measured(kind, track, job)
        consumer = _consumer(kind, track.sid, measured)
        try:
            task = group.create_task(consumer, name=f"consume-{kind}-{track.sid}")
        except RuntimeError:  # the stay is ending (another consumer died): none starts now
            for coroutine in (consumer, measured, job):
                coroutine.close()
            return
        self._consumers[track.sid] = task

    def _stop_consumer(self, sid: str) -> None:
        task = self._consumers.pop(sid, None)
        if task is not None:
            task.cancel()  # its stay's task group awaits it

    async def _measured(
        self, kind: TrackKind, track: rtc.Track, job: Coroutine[Any, Any, None]
    ) -> None:
        """Run ``job`` (the track's consumer) while its receive delay is read beside it."""
        poll = asyncio.create_task(self._poll_rx_delay(kind, track), name=f"rx-delay-{kind}")
        try:
            await job
        finally:
            poll.cancel()
            await asyncio.wait([poll])  # not `await poll`: a cancel of ours must go on

    async def _poll_rx_delay(self, kind: TrackKind, track: rtc.Track) -> None:
        """Keep ``stats.<kind>_rx_delay_ms`` current; a failing stats request ends this only."""
        delay = ReceiveDelay(kind)
        attr = f"{kind}_rx_delay_ms"
        try:
            while True:
                await asyncio.sleep(RX_DELAY_EVERY_S)
                # The SDK raises a bare Exception when the FFI answers with an error.
                setattr(self.stats, attr, delay.update(counters(kind, await track.get_stats())))
        except Exception as exc:  # the media goes on; only the lip-sync correction stops
            log.warning("cannot read the avatar's %s stats any more: %r", kind, exc)
        finally:
            setattr(self.stats, attr, None)

    async def _video(self, track: rtc.Track) -> None:
        stream = rtc.VideoStream(track, capacity=VIDEO_CAPACITY, format=rtc.VideoBufferType.I420)
        on_video, stats = self._handlers.video, self.stats
        try:
            async for event in stream:
                frame = event.frame
                stats.video_frames += 1
                stats.video_size = (frame.width, frame.height)
                on_video(
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
        on_audio, stats = self._handlers.audio, self.stats
        try:
            async for event in stream:
                stats.audio_frames += 1
                frame = event.frame
                gathered = max(0.0, frame.duration - WEBRTC_FRAME_MS / 1000)
                on_audio(
                    AudioChunk(
                        np.frombuffer(frame.data, np.int16),
                        SAMPLE_RATE,
                        arrived=time.perf_counter() - gathered,
                        lag=stats.audio_lag_ms / 1000,
                    )
                )
        finally:
            await stream.aclose()


def _rounded(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


async def _consumer(kind: TrackKind, sid: str, job: Coroutine[Any, Any, None]) -> None:
    """Run one track's consumer; its death becomes a :class:`SourceFailed` naming the track."""
    try:
        await job
    except Exception as exc:  # translated, not swallowed: it ends the stay and the session
        raise SourceFailed(f"the avatar's {kind} track {sid} stopped: {exc!r}") from exc


def _raise_failure(died: BaseExceptionGroup[BaseException]) -> NoReturn:
    """Raise what a stay's task group raised as what :meth:`LiveKitSource.run` promises.

    Also when the stay was being cancelled: the task group puts a consumer's death before
    the cancellation (and Python 3.11's leaves the task's cancelling() count raised either
    way), and a death must not pass for a cancellation, which the manager would not see.
    """
    first = died.exceptions[0]
    if isinstance(first, SourceFailed):
        raise first
    raise SourceFailed(f"the avatar's room failed: {first!r}") from first
