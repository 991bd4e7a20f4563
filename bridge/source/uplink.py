"""The user's microphone in the avatar's room: the meeting's sound, published (listen mode).

:class:`Uplink` owns the hearing (:class:`~bridge.source.hearing.MeetingSound`: the virtual
speaker's monitor through an energy gate) and, for every room the bridge is in, one
``rtc.AudioSource`` (48 kHz mono) published as a microphone track.  Each session's
:class:`~bridge.source.room.RoomLink` calls :meth:`Uplink.attach` once it has joined and
:meth:`Uplink.detach` as it leaves, so the track follows the session across reconnects and
renewals (during a renewal's overlap both rooms hear the meeting: the new avatar is ready to
answer at the switch).  :meth:`Uplink.run` is the daemon's task: it starts the hearing and
captures every 20 ms block the gate lets through into each attached room's source.

**Silence stays off the uplink: nothing is sent while the gate is closed.**  Not silence
frames: the SDK's audio source itself fills a track that gets nothing for 100 ms with digital
silence (webrtc-sys ``AudioSource``), which Opus with DTX (``dtx=True`` below) sends as a
comfort-noise packet every 400 ms; sending zeros from here would cost an FFI call and the
GIL 50 times a second for the same bytes on the wire, and sending the meeting's quiet (hiss,
a keyboard) would wake the provider's speech recognition for nothing.

``listening`` gates it as a whole: off, nothing reaches any room whatever the gate says
(push-to-talk released, or muted); it is what ``/v1/listen/start`` and ``/stop`` change.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from livekit import rtc
from livekit.rtc.participant import PublishTrackError

from bridge.config import ListenConfig
from bridge.devices.pulse_modules import DeviceState
from bridge.devices.pulse_stream import RATE
from bridge.media.frames import I16
from bridge.sinks.base import snapshot_of
from bridge.source.hearing import BLOCK, MeetingSound, Recorder

log = logging.getLogger(__name__)

TRACK_NAME = "meeting"  # the track's name in the room (its source says microphone)
# The SDK's own queue per room: a little more than one block, so a capture never waits long
# and a stalled loop cannot build up seconds of old sound that the avatar would answer late.
SOURCE_QUEUE_MS = 100
PENDING_BLOCKS = 25  # 0.5 s handed over by the reader and not yet captured: then drop oldest


@dataclass
class UplinkStats:
    """The uplink's part of ``/v1/status`` (``listen.uplink``)."""

    rooms: int = 0
    seconds_sent: float = 0.0  # captured into at least one room
    blocks_sent: int = 0
    dropped_blocks: int = 0  # passed the gate with no room to send to, or too late
    publish_failures: int = 0
    capture_failures: int = 0
    last_error: str | None = None

    def snapshot(self) -> dict[str, Any]:
        return snapshot_of(self)


@dataclass(frozen=True, slots=True)
class _Published:
    source: rtc.AudioSource
    track: rtc.LocalAudioTrack


class Uplink:
    """The meeting's sound in every room the bridge is in (see the module doc)."""

    def __init__(
        self, cfg: ListenConfig, *, open_recorder: Callable[[str], Recorder] | None = None
    ) -> None:
        self.cfg = cfg
        self.stats = UplinkStats()
        self.hearing = MeetingSound(cfg, deliver=self._deliver, open_recorder=open_recorder)
        self.hearing.listening = cfg.mode == "conversational"
        self._rooms: dict[rtc.Room, _Published] = {}
        self._pending: deque[I16] = deque()
        self._wakeup = asyncio.Event()

    @property
    def listening(self) -> bool:
        return self.hearing.listening

    def set_listening(self, on: bool) -> None:
        """Let the meeting's sound through (True) or keep it off every room (False)."""
        self.hearing.listening = on
        if not on:  # what the reader handed over before the release is not sent either
            self.stats.dropped_blocks += len(self._pending)
            self._pending.clear()

    def on_devices(self, state: DeviceState) -> None:
        """The virtual speaker's devices changed (``PulseDevices.on_change``)."""
        self.hearing.on_devices(state)

    # --- rooms (called by each session's RoomLink) ---------------------------------------

    async def attach(self, room: rtc.Room) -> None:
        """Publish the meeting's sound into ``room`` as a microphone track.  A room that
        refuses it (a token without publish rights) is logged and counted; the session goes
        on, deaf."""
        source = rtc.AudioSource(RATE, 1, queue_size_ms=SOURCE_QUEUE_MS)
        track = rtc.LocalAudioTrack.create_audio_track(TRACK_NAME, source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE, dtx=True)
        try:
            await room.local_participant.publish_track(track, options)
        except PublishTrackError as exc:
            await source.aclose()
            self.stats.publish_failures += 1
            self.stats.last_error = f"could not publish the meeting's sound: {exc.message}"
            log.warning("%s; the avatar will not hear the meeting", self.stats.last_error)
            return
        self._rooms[room] = _Published(source, track)
        self.stats.rooms = len(self._rooms)
        log.info("the avatar hears the meeting (%s)", "listening" if self.listening else "muted")

    async def detach(self, room: rtc.Room) -> None:
        """Forget ``room`` (it is being left: leaving takes its tracks with it)."""
        published = self._rooms.pop(room, None)
        self.stats.rooms = len(self._rooms)
        if published is not None:
            await published.source.aclose()

    # --- the daemon's task ------------------------------------------------------------------

    async def run(self) -> None:
        """Hear the meeting and send what passes into every attached room, until cancelled."""
        self.hearing.start(asyncio.get_running_loop())
        try:
            while True:
                if not self._pending:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                await self._send(self._pending.popleft())
        finally:
            await self.hearing.aclose()
            for room in list(self._rooms):
                await self.detach(room)

    def snapshot(self) -> dict[str, Any]:
        return {
            "mode": self.cfg.mode,
            "listening": self.listening,
            "speaker": self.cfg.speaker_name,
            "hearing": self.hearing.stats.snapshot(),
            "uplink": self.stats.snapshot(),
        }

    def _deliver(self, blocks: list[I16]) -> None:
        """From the reader, on the loop: queue the blocks the gate let through."""
        if not self.listening:
            self.stats.dropped_blocks += len(blocks)
            return
        for block in blocks:
            if len(self._pending) >= PENDING_BLOCKS:
                self._pending.popleft()
                self.stats.dropped_blocks += 1
            self._pending.append(block)
        self._wakeup.set()

    async def _send(self, block: I16) -> None:
        rooms = list(self._rooms.values())
        if not rooms:
            self.stats.dropped_blocks += 1
            return
        frame = rtc.AudioFrame(block.data, RATE, 1, BLOCK)
        sent = False
        for published in rooms:
            try:
                await published.source.capture_frame(frame)
            # The SDK raises a bare Exception for a refused capture (its queue full, the
            # source closed as its room was left): that block is lost for that room only.
            except Exception as exc:
                self.stats.capture_failures += 1
                self.stats.last_error = f"could not send the meeting's sound: {exc}"
                continue
            sent = True
        if sent:
            self.stats.blocks_sent += 1
            self.stats.seconds_sent += BLOCK / RATE
