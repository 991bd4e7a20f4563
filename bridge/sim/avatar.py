"""The simulators' avatar in a real LiveKit room: the demo performer, published as identity
``heygen`` with one video track (the quality's size, 30 fps) and one 48 kHz mono audio track,
and its speech events sent as data packets in the provider's dialect.

Every frame carries the machine-readable stamp (frame number, send time; see
:mod:`bridge.synthetic.stamp`) so tests can check order, gaps and latency at the sink.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import timedelta

from livekit import api, rtc

from bridge.cleanup import finish_despite_cancel
from bridge.media.frames import I16, U8
from bridge.sim.listening import Ears
from bridge.sim.media import Hooks, JoinFailed, RoomSpec
from bridge.sim.tasks import cancel_and_wait, for_each
from bridge.source import livekit_join
from bridge.synthetic.clock import drive
from bridge.synthetic.performer import Performer, SpeechEvent

log = logging.getLogger(__name__)

FPS = 30.0
SAMPLE_RATE = 48000
# Both tracks in one media stream: receivers lip-sync them (RTCP sender reports), as they
# would an avatar service's picture and voice.
STREAM = "avatar"


class LiveKitAvatar:
    """One avatar in one room.  Created by :meth:`LiveKitHost.join`."""

    def __init__(self, spec: RoomSpec, hooks: Hooks, *, sync_marks: bool) -> None:
        self.spec = spec
        self._hooks = hooks
        self.performer = Performer(
            width=spec.width, height=spec.height, fps=FPS, sync_marks=sync_marks
        )
        self._room = rtc.Room()
        self._video = rtc.VideoSource(spec.width, spec.height)
        self._audio = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=200)
        self._task: asyncio.Task[None] | None = None
        self._joined = False  # in the room with its tracks: only then is a loss news
        self._leaving = False
        self._next_capture = 0.0
        # Frames waiting for their audio (see _send_video), in due order; cancelled on leave.
        self._captures: deque[asyncio.TimerHandle] = deque()
        # Other participants' audio, heard when the service asks for it (listen mode).
        self.ears: Ears | None = None
        if hooks.on_heard is not None:
            self.ears = Ears(self._room, spec.identity, hooks.on_heard, hooks.gate or _always)

    async def join(self) -> None:
        """Enter the room, publish the tracks and start performing.

        Safe to cancel at any moment (the service's ``close`` cancels a join when a session is
        stopped a few ms after its start): the SDK's connect is never cut in half, which would
        make it panic and end the simulator 15 s later (:mod:`bridge.source.livekit_join`); a room
        joined is left again before the cancellation goes on, so the caller waits a bounded
        time.  :class:`JoinFailed` when the room cannot be joined.
        """
        self._room.on("data_received", self._data_received)
        self._room.on("disconnected", self._disconnected)
        if self.ears is not None:
            self.ears.attach()
        try:
            await livekit_join.connect(
                self._room, self.spec.url, self.spec.token, name=f"sim-avatar-join-{self.spec.room}"
            )
        except rtc.ConnectError as exc:
            raise JoinFailed(f"cannot join {self.spec.room} at {self.spec.url}: {exc}") from exc
        try:
            # Publishing is not cut in half either: a publish cancelled mid-flight leaves the
            # SDK an answer for a track it no longer knows (a KeyError traceback in its log).
            await finish_despite_cancel(
                self._perform(), name=f"sim-avatar-publish-{self.spec.room}"
            )
        except BaseException:  # cancelled (or failed) after the connect: leave, then go on
            await self.leave()
            raise
        self._joined = True

    async def _perform(self) -> None:
        publisher = self._room.local_participant
        await publisher.publish_track(
            rtc.LocalVideoTrack.create_video_track("avatar-video", self._video),
            rtc.TrackPublishOptions(
                source=rtc.TrackSource.SOURCE_CAMERA,
                simulcast=False,  # one layer, like the avatar services (and half the CPU)
                video_codec=rtc.VideoCodec.H264
                if self.spec.codec == "H264"
                else rtc.VideoCodec.VP8,
                stream=STREAM,
            ),
        )
        await publisher.publish_track(
            rtc.LocalAudioTrack.create_audio_track("avatar-audio", self._audio),
            rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE, stream=STREAM),
        )
        self._task = asyncio.create_task(
            drive(
                self.performer,
                on_video=self._send_video,
                on_audio=self._send_audio,
                on_event=self._send_event,
            ),
            name=f"sim-avatar-{self.spec.room}",
        )

    def _send_video(self, buf: U8, frame_number: int) -> None:
        # The frame's audio waits in the audio source's queue before it goes out; the frame
        # waits as long, so picture and sound leave together, as from a real avatar.
        lag = self._audio.queued_duration
        if lag < 0.002:
            self._capture(buf.data)
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._captures and self._captures[0].when() <= now:
            self._captures.popleft()  # already run
        due = max(now + lag, self._next_capture)
        self._next_capture = due
        self._captures.append(
            loop.call_at(due, self._capture, buf.copy().data)  # the renderer reuses its buffer
        )

    def _capture(self, data: memoryview) -> None:
        if not self._leaving:
            frame = rtc.VideoFrame(
                self.spec.width, self.spec.height, rtc.VideoBufferType.I420, data
            )
            self._video.capture_frame(frame)

    async def _send_audio(self, samples: I16) -> None:
        frame = rtc.AudioFrame(samples.data.cast("B"), SAMPLE_RATE, 1, len(samples))
        await self._audio.capture_frame(frame)

    async def _send_event(self, event: SpeechEvent) -> None:
        for payload, topic in self._hooks.dialect.packets(event):
            await self.publish(payload, topic)

    async def publish(self, payload: bytes, topic: str) -> None:
        if self._room.isconnected():
            await self._room.local_participant.publish_data(payload, reliable=True, topic=topic)

    def _data_received(self, packet: rtc.DataPacket) -> None:
        if self._hooks.on_data is not None:
            self._hooks.on_data(packet.data, packet.topic)

    def _disconnected(self, reason: object) -> None:
        if self._joined and not self._leaving and self._hooks.on_lost is not None:
            log.info("simulated avatar lost room %s: %s", self.spec.room, reason)
            self._hooks.on_lost()

    async def say(self, text: str, task_id: str) -> float:
        return await self.performer.say(text, task_id)

    def interrupt(self) -> None:
        self.performer.interrupt()

    def play_signal(self, samples: I16, task_id: str) -> None:
        self.performer.play_signal(samples, task_id)

    @property
    def left(self) -> bool:
        """It has left (or is leaving) its room."""
        return self._leaving

    async def leave(self) -> None:
        if self._leaving:
            return
        self._leaving = True
        while self._captures:
            self._captures.popleft().cancel()
        task, self._task = self._task, None
        try:
            try:
                if self.ears is not None:
                    await self.ears.aclose()  # ears that died re-raise, once out of the room
            finally:
                await cancel_and_wait(task)  # so does a performer that died
            # Send the end events of speech cut short, then leave.
            for event in self.performer.drain_events():
                await self._send_event(event)
        finally:
            await livekit_join.disconnect(self._room, name=f"sim-avatar-leave-{self.spec.room}")


def _always() -> bool:
    return True


class LiveKitHost:
    """Puts simulated avatars into rooms of one LiveKit server."""

    def __init__(
        self, *, url: str, api_key: str, api_secret: str, sync_marks: bool = False
    ) -> None:
        self.livekit_url: str | None = url
        self._api_key = api_key
        self._api_secret = api_secret
        self._sync_marks = sync_marks
        self._api: api.LiveKitAPI | None = None
        self.avatars: dict[str, LiveKitAvatar] = {}

    def token(self, room: str, identity: str, *, publish: bool) -> str:
        grants = api.VideoGrants(
            room_join=True,
            room=room,
            can_publish=publish,
            can_subscribe=True,
            can_publish_data=True,
        )
        return (
            api.AccessToken(self._api_key, self._api_secret)
            .with_identity(identity)
            .with_ttl(timedelta(hours=2))
            .with_grants(grants)
            .to_jwt()
        )

    async def join(self, spec: RoomSpec, hooks: Hooks) -> LiveKitAvatar:
        avatar = LiveKitAvatar(spec, hooks, sync_marks=self._sync_marks)
        await avatar.join()
        # Forget the avatars that have left a room nobody closed (a session in the user's own
        # room, one stopped before it started): a long rehearsal does not keep them all.
        self.avatars = {room: a for room, a in self.avatars.items() if not a.left}
        self.avatars[spec.room] = avatar
        return avatar

    def _room_service(self) -> api.LiveKitAPI:
        if self._api is None:
            assert self.livekit_url is not None
            http_url = self.livekit_url.replace("ws://", "http://").replace("wss://", "https://")
            self._api = api.LiveKitAPI(http_url, self._api_key, self._api_secret)
        return self._api

    async def close_room(self, room: str) -> None:
        """End the room so every participant (the bridge too) is disconnected."""
        self.avatars.pop(room, None)
        try:
            await self._room_service().room.delete_room(api.DeleteRoomRequest(room=room))
        except api.TwirpError as exc:
            if exc.code != "not_found":
                raise

    async def aclose(self) -> None:
        """Every avatar leaves (one that fails does not keep the others in), then the API."""
        avatars, self.avatars = list(self.avatars.values()), {}
        try:
            await for_each(avatars, LiveKitAvatar.leave)
        finally:
            if self._api is not None:
                api_client, self._api = self._api, None
                await api_client.aclose()
