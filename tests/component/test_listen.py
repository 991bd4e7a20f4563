"""Listen mode's ears against a real, private PulseAudio and the real LiveKit server: the virtual
speaker (bridge/devices), the hearing and the uplink (bridge/source/hearing.py, uplink.py).

A stand-in avatar joins the room and records what the bridge publishes; sound is played into
the sinks with ``pacat``, as a meeting app (or the avatar's voice) would play it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
import pytest
from livekit import api, rtc

from bridge.config import ListenConfig, MicrophoneConfig
from bridge.devices.pactl import SinkOnly
from bridge.devices.pulse_modules import PulseDevices
from bridge.media.vad import SILENCE_DBFS
from bridge.sim.livekit_server import LiveKitServer
from bridge.source.uplink import Uplink
from tests.kit.eventually import eventually
from tests.kit.pulse import PrivatePulse, running_mic, sine

RATE = 48000
SPEAKER = "test_ears"
LOUD_RMS = 2000.0  # a 0.3 tone is ~7000 RMS; Opus and resampling keep it far above this


def listen_config(mode: str = "conversational") -> ListenConfig:
    return ListenConfig.model_validate(
        {
            "mode": mode,
            "speaker_name": SPEAKER,
            "speaker_description": "Test Ears (meeting sound in)",
            "hangover_ms": 200,
            "pre_roll_ms": 100,
        }
    )


def token(server: LiveKitServer, room: str, identity: str) -> str:
    grants = api.VideoGrants(room_join=True, room=room)
    return (
        api.AccessToken(server.api_key, server.api_secret)
        .with_identity(identity)
        .with_grants(grants)
        .to_jwt()
    )


@asynccontextmanager
async def ears(cfg: ListenConfig) -> AsyncIterator[tuple[Uplink, PulseDevices]]:
    """The uplink hearing the virtual speaker, both running as the daemon runs them."""
    uplink = Uplink(cfg)
    speaker = SinkOnly(cfg.speaker_name, cfg.speaker_description)
    devices = PulseDevices(speaker, on_change=uplink.on_devices, label="virtual speaker")
    keeper = asyncio.create_task(devices.maintain(), name="speaker-devices")
    runner = asyncio.create_task(uplink.run(), name="uplink")
    try:
        await eventually(lambda: uplink.hearing.stats.state == "hearing", within=20)
        yield uplink, devices
    finally:
        for task in (runner, keeper):
            task.cancel()
        await asyncio.gather(runner, keeper, return_exceptions=True)


class Heard:
    """What the stand-in avatar receives from the bridge's microphone track."""

    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []
        self.tasks: set[asyncio.Task[None]] = set()

    def subscribed(self, track: rtc.Track, *_: object) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            task = asyncio.get_running_loop().create_task(self._consume(track), name="heard")
            self.tasks.add(task)

    async def _consume(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream(track, sample_rate=RATE, num_channels=1, capacity=500)
        try:
            async for event in stream:
                self.blocks.append(np.frombuffer(event.frame.data, np.int16).copy())
        finally:
            await stream.aclose()

    def loud_seconds(self) -> float:
        """Seconds of 10 ms frames louder than speech's floor."""
        loud = [b for b in self.blocks if np.sqrt(np.mean(b.astype(np.float64) ** 2)) > LOUD_RMS]
        return sum(len(b) for b in loud) / RATE

    def seconds(self) -> float:
        return sum(len(b) for b in self.blocks) / RATE

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@asynccontextmanager
async def avatar_room(server: LiveKitServer, uplink: Uplink) -> AsyncIterator[Heard]:
    """A room with the bridge (publishing through ``uplink``) and a stand-in avatar."""
    name = f"listen-{uuid.uuid4().hex[:8]}"
    heard = Heard()
    avatar, bridge = rtc.Room(), rtc.Room()
    avatar.on("track_subscribed", heard.subscribed)
    await avatar.connect(server.url, token(server, name, "heygen"))
    await bridge.connect(server.url, token(server, name, "bridge"))
    try:
        await uplink.attach(bridge)
        await eventually(lambda: heard.seconds() > 0.2, within=20)  # the track flows
        yield heard
    finally:
        await heard.close()
        await uplink.detach(bridge)
        await bridge.disconnect()
        await avatar.disconnect()


async def play(sink: str, samples: np.ndarray) -> None:
    """Play ``samples`` into ``sink`` with pacat, as another application would, to the end."""
    proc = await asyncio.create_subprocess_exec(
        "pacat",
        "--playback",
        f"--device={sink}",
        "--format=s16le",
        f"--rate={RATE}",
        "--channels=1",
        "--raw",
        "--latency-msec=20",
        stdin=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(samples.astype("<i2").tobytes())
    await proc.stdin.drain()
    proc.stdin.close()
    assert await proc.wait() == 0


def all_sent(uplink: Uplink) -> bool:
    """The gate is closed and everything it let through is in the room."""
    passed = round(uplink.hearing.stats.seconds_passed, 2)
    return not uplink.hearing.gate.open and round(uplink.stats.seconds_sent, 2) == passed


def speech(seconds: float) -> np.ndarray:
    """A loud tone with a 60 ms gap in the middle (a pause between two words)."""
    half = sine(300, seconds / 2, amplitude=0.3)
    return np.concatenate([half, np.zeros(RATE * 60 // 1000, np.int16), half])


async def test_the_speaker_is_one_null_sink_for_meeting_apps(pulse_server: PrivatePulse) -> None:
    """It shows as an output with its description; no source of its own is made (apps must not
    pick its monitor as a mic); leftovers of a crash are swept; exit removes it."""
    cfg = listen_config()
    speaker = SinkOnly(cfg.speaker_name, cfg.speaker_description)
    pulse_server.pactl("load-module", "module-null-sink", f"sink_name={SPEAKER}")  # a leftover
    devices = PulseDevices(speaker, label="virtual speaker")
    state = await devices.up()
    assert state.ready and state.source == f"{SPEAKER}.monitor"
    sinks = [s for s in pulse_server.objects("sinks") if s.get("Name") == SPEAKER]
    assert len(sinks) == 1 and sinks[0]["Description"] == "Test Ears (meeting sound in)"
    assert devices.leftovers_removed == 1
    assert not any(m for m in pulse_server.modules() if m[1] == "module-remap-source")
    await devices.down()
    assert not any(SPEAKER in args for _, _, args in pulse_server.modules())


async def test_meeting_speech_reaches_the_avatar_and_silence_does_not(
    pulse_server: PrivatePulse, livekit_server: LiveKitServer
) -> None:
    async with ears(listen_config()) as (uplink, _), avatar_room(livekit_server, uplink) as heard:
        await play(SPEAKER, np.zeros(RATE // 2, np.int16))  # a meeting where nobody speaks
        assert uplink.stats.seconds_sent == 0.0 and heard.loud_seconds() == 0.0
        await play(SPEAKER, speech(1.0))
        await eventually(lambda: heard.loud_seconds() > 0.8, within=20)
        await eventually(lambda: all_sent(uplink), within=20)  # its hangover ended, and sent
        sent = uplink.stats.seconds_sent
        print(f"\nspeech 1.06 s -> sent {sent:.2f} s, heard loud {heard.loud_seconds():.2f} s")
        # The speech, its pre-roll and hangover; never the silence around it.
        assert 1.0 <= sent <= 1.06 + 0.1 + 0.2 + 0.1
        await play(SPEAKER, np.zeros(RATE, np.int16))
        assert uplink.stats.seconds_sent == sent
        assert uplink.hearing.stats.utterances == 1


async def test_push_to_talk_released_sends_nothing(
    pulse_server: PrivatePulse, livekit_server: LiveKitServer
) -> None:
    async with (
        ears(listen_config("push-to-talk")) as (uplink, _),
        avatar_room(livekit_server, uplink) as heard,
    ):
        assert not uplink.listening
        await play(SPEAKER, speech(0.6))
        assert uplink.stats.seconds_sent == 0.0 and heard.loud_seconds() == 0.0
        assert uplink.hearing.stats.seconds_read > 0.5  # it was there to be heard
        uplink.set_listening(True)
        await play(SPEAKER, speech(0.6))
        await eventually(lambda: heard.loud_seconds() > 0.4, within=20)
        await eventually(lambda: all_sent(uplink), within=20)
        uplink.set_listening(False)
        sent = uplink.stats.seconds_sent
        await play(SPEAKER, speech(0.6))
        assert uplink.stats.seconds_sent == sent


async def test_the_avatars_own_voice_never_reaches_its_ears(
    pulse_server: PrivatePulse, livekit_server: LiveKitServer
) -> None:
    """The avatar's voice plays into the mic's sink, and the avatar's mic is even the default
    source: the uplink hears digital silence, sends nothing, and the stand-in avatar hears
    nothing loud.  Also while the speaker is unloaded and made again under it."""
    mic = MicrophoneConfig(sink_name="test_voice_sink", source_name="test_voice_mic")
    mic = mic.model_copy(update={"make_default": True})
    async with (
        running_mic(mic) as (_, mic_devices),
        ears(listen_config()) as (uplink, devices),
        avatar_room(livekit_server, uplink) as heard,
    ):
        await eventually(lambda: mic_devices.state.ready, within=20)
        voice = asyncio.create_task(play(mic.sink_name, sine(440, 3.0, amplitude=0.5)))
        levels: list[float] = []

        async def watch() -> None:
            while not voice.done():
                levels.append(uplink.hearing.stats.level_dbfs)
                await asyncio.sleep(0.01)

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(1.0)
        first = devices.generation
        pulse_server.pactl("unload-module", str(devices.sink_module))  # someone unloads it
        await eventually(lambda: devices.generation > first and devices.state.ready, within=20)
        await voice
        await watcher
        loudest = max(levels)
        print(
            f"\navatar speaking 3 s: uplink sent {uplink.stats.seconds_sent:.2f} s, loudest "
            f"level heard {loudest:.1f} dBFS, stand-in heard loud {heard.loud_seconds():.2f} s, "
            f"blocks discarded across the unload {uplink.hearing.stats.discarded_blocks}"
        )
        assert loudest == SILENCE_DBFS
        assert uplink.stats.seconds_sent == 0.0
        assert heard.loud_seconds() == 0.0


@pytest.mark.parametrize("mode", ["conversational", "push-to-talk"])
def test_modes_start_listening_as_documented(mode: str) -> None:
    assert Uplink(listen_config(mode)).listening is (mode == "conversational")
