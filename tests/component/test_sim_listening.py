"""The simulated avatars hear a user's audio track in their room and answer (listen mode).

The energy VAD on its own, then each provider's fake through a real LiveKit server: a test
participant publishes a 48 kHz mono microphone (the bridge's uplink), speaks a tone burst, and
reads what the avatar sends back on the data channel and on its audio track.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
import pytest
from livekit import rtc

from bridge.media.frames import I16
from bridge.sim import DEFAULT_HEYGEN_KEY, DEFAULT_LIVEAVATAR_KEY
from bridge.sim.avatar import LiveKitHost
from bridge.sim.listening import EnergyVad
from bridge.sim.liveavatar.catalog import WAYNE
from bridge.sim.livekit_server import LiveKitServer
from bridge.sim.media import AVATAR_IDENTITY, Heard
from bridge.sim.server import Simulator
from bridge.synthetic.reply import chat_reply
from bridge.synthetic.voice import tone
from tests.kit.eventually import eventually

RATE = 48000
CHUNK = RATE // 100  # 10 ms, as a sound card delivers it
LOUD_RMS = 32768 * 10 ** (-40 / 20)
HEARD = re.compile(r"\(heard (\d+\.\d) s of speech\)")


def silence(seconds: float) -> I16:
    return np.zeros(round(seconds * RATE), dtype=np.int16)


def fed(vad: EnergyVad, *parts: I16, gate_open: bool = True) -> list[Heard]:
    """``parts`` fed in 10 ms chunks."""
    samples = np.concatenate(parts)
    out: list[Heard] = []
    for at in range(0, samples.size, CHUNK):
        out += vad.feed(samples[at : at + CHUNK], gate_open=gate_open)
    return out


# --- the VAD -----------------------------------------------------------------------------


def test_an_utterance_is_found_with_its_length_and_pauses_between_words_do_not_split_it() -> None:
    vad = EnergyVad("user")
    word = tone(300, 0.5, level=0.3)
    heard = fed(vad, silence(0.3), word, silence(0.3), word, silence(1.0))
    assert heard == [Heard("started", "user"), Heard("ended", "user", 1.3)]
    assert vad.loud_frames == 50 and not vad.in_speech


def test_a_click_or_a_whisper_is_not_speech() -> None:
    vad = EnergyVad("user")
    assert fed(vad, tone(1000, 0.02, level=1.0), silence(1.0)) == []
    assert fed(vad, tone(300, 1.0, level=0.005), silence(1.0)) == []  # -46 dBFS


def test_a_closed_gate_hears_nothing_and_closing_it_ends_the_utterance() -> None:
    vad = EnergyVad("user")
    assert fed(vad, tone(300, 1.0, level=0.3), silence(1.0), gate_open=False) == []
    assert vad.loud_frames == 50  # measured all the same
    assert fed(vad, tone(300, 0.4, level=0.3)) == [Heard("started", "user")]
    assert fed(vad, tone(300, 0.4, level=0.3), gate_open=False) == [Heard("ended", "user", 0.4)]


# --- through a real LiveKit room ---------------------------------------------------------


class Microphone:
    """A participant's microphone: silence, and a tone whenever :meth:`speak` is called."""

    def __init__(self) -> None:
        self.source = rtc.AudioSource(RATE, 1, queue_size_ms=100)
        self._pending: deque[I16] = deque()

    def speak(self, seconds: float) -> None:
        samples = tone(220, seconds, level=0.3)
        self._pending.extend(samples[at : at + CHUNK] for at in range(0, samples.size, CHUNK))

    async def run(self) -> None:
        quiet = silence(CHUNK / RATE)
        while True:
            chunk = self._pending.popleft() if self._pending else quiet
            if chunk.size < CHUNK:
                chunk = np.concatenate((chunk, quiet[: CHUNK - chunk.size]))
            await self.source.capture_frame(rtc.AudioFrame(chunk.tobytes(), RATE, 1, CHUNK))


@dataclass
class User:
    """The test's participant in the avatar's room: its microphone and what it received."""

    room: rtc.Room
    mic: Microphone
    packets: list[tuple[Any, str | None]] = field(default_factory=list)
    avatar_loud_frames: int = 0  # 10 ms frames of the avatar's voice above -40 dBFS
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def identity(self) -> str:
        return self.room.local_participant.identity

    def events(self, topic: str | None = None) -> list[Any]:
        return [body for body, t in self.packets if topic is None or t == topic]

    async def send(self, message: object, topic: str = "") -> None:
        payload = json.dumps(message).encode()
        await self.room.local_participant.publish_data(payload, reliable=True, topic=topic)

    async def avatar_voice(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream.from_track(track=track, sample_rate=RATE, num_channels=1)
        try:
            async for event in stream:
                samples = np.frombuffer(event.frame.data, dtype=np.int16).astype(np.float64)
                if samples.size and np.sqrt(np.mean(samples * samples)) >= LOUD_RMS:
                    self.avatar_loud_frames += 1
        finally:
            await stream.aclose()


@pytest.fixture
async def host(livekit_server: LiveKitServer) -> AsyncIterator[LiveKitHost]:
    media = LiveKitHost(
        url=livekit_server.url, api_key=livekit_server.api_key, api_secret=livekit_server.api_secret
    )
    try:
        yield media
    finally:
        await media.aclose()


@pytest.fixture
async def sim(host: LiveKitHost) -> AsyncIterator[Simulator]:
    async with Simulator(media=host) as simulator:
        yield simulator


@contextlib.asynccontextmanager
async def in_room(url: str, token: str) -> AsyncIterator[User]:
    """Join as the user, publish the microphone, and listen to the avatar's voice only."""
    user = User(rtc.Room(), Microphone())

    def data(packet: rtc.DataPacket) -> None:
        user.packets.append((json.loads(packet.data), packet.topic))

    def published(publication: rtc.RemoteTrackPublication, who: rtc.RemoteParticipant) -> None:
        if who.identity == AVATAR_IDENTITY and publication.kind == rtc.TrackKind.KIND_AUDIO:
            publication.set_subscribed(True)

    def subscribed(track: rtc.Track, _: object, who: rtc.RemoteParticipant) -> None:
        user.tasks.append(asyncio.create_task(user.avatar_voice(track), name="avatar-voice"))

    user.room.on("data_received", data)
    user.room.on("track_published", published)
    user.room.on("track_subscribed", subscribed)
    await user.room.connect(url, token, rtc.RoomOptions(auto_subscribe=False))
    try:
        for participant in user.room.remote_participants.values():
            for publication in participant.track_publications.values():
                published(publication, participant)
        track = rtc.LocalAudioTrack.create_audio_track("user-mic", user.mic.source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await user.room.local_participant.publish_track(track, options)
        user.tasks.append(asyncio.create_task(user.mic.run(), name="user-mic"))
        yield user
    finally:
        for task in user.tasks:
            task.cancel()
        await asyncio.gather(*user.tasks, return_exceptions=True)
        await user.room.disconnect()
        await user.mic.source.aclose()


async def ears_on(host: LiveKitHost, room: str, user: User) -> EnergyVad:
    """The avatar's VAD for the user's track, once the avatar joined and subscribed to it."""

    def vad() -> EnergyVad | None:
        avatar = host.avatars.get(room)
        if avatar is None or avatar.ears is None:
            return None
        return avatar.ears.vads.get(user.identity)

    found = await eventually(vad, within=20, what="the avatar listening to the user")
    assert found is not None
    return found


def listened_to(host: LiveKitHost, room: str) -> set[str]:
    ears = host.avatars[room].ears
    assert ears is not None
    return set(ears.vads)


async def heard_loud(vad: EnergyVad, frames: int) -> None:
    """Wait until ``frames`` more loud 20 ms frames reached the avatar."""
    target = vad.loud_frames + frames
    await eventually(lambda: vad.loud_frames >= target, within=20, what="the user's voice")


async def heard_more(vad: EnergyVad, frames: int) -> None:
    """Wait until ``frames`` more 20 ms frames of any kind reached the avatar."""
    target = vad.frames + frames
    await eventually(lambda: vad.frames >= target, within=20, what="more of the user's audio")


def seconds_heard(text: str) -> float:
    match = HEARD.fullmatch(text)
    assert match is not None, text
    return float(match.group(1))


# --- LiveAvatar --------------------------------------------------------------------------

CONTROL, RESPONSE = "agent-control", "agent-response"


async def liveavatar_session(sim: Simulator, interactivity: str) -> tuple[str, str, str]:
    """(session id, LiveKit url, client token) of a started FULL session with a context."""
    body = {
        "mode": "FULL",
        "avatar_id": WAYNE,
        "avatar_persona": {"context_id": str(uuid.uuid4())},
        "interactivity_type": interactivity,
        "video_settings": {"quality": "low", "encoding": "VP8"},
    }
    async with aiohttp.ClientSession() as http:
        headers = {"X-API-KEY": DEFAULT_LIVEAVATAR_KEY}
        async with http.post(f"{sim.url}/v1/sessions/token", json=body, headers=headers) as r:
            token = (await r.json())["data"]["session_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        async with http.post(f"{sim.url}/v1/sessions/start", headers=bearer) as r:
            data = (await r.json())["data"]
    return data["session_id"], data["livekit_url"], data["livekit_client_token"]


def kinds(user: User) -> list[str]:
    return [e["event_type"] for e in user.events(RESPONSE)]


async def test_liveavatar_answers_what_it_hears(sim: Simulator, host: LiveKitHost) -> None:
    session_id, url, token = await liveavatar_session(sim, "CONVERSATIONAL")
    room = sim.liveavatar.sessions[session_id].room
    async with in_room(url, token) as user:
        await ears_on(host, room, user)
        user.mic.speak(1.5)
        await eventually(lambda: "avatar.speak_ended" in kinds(user), within=30, what="answer")

    events = user.events(RESPONSE)
    chunks = kinds(user).count("avatar.transcription.chunk")
    assert kinds(user) == [
        "user.speak_started",
        "user.speak_ended",
        "user.transcription",
        "avatar.transcription",
        "avatar.speak_started",
        *["avatar.transcription.chunk"] * chunks,
        "avatar.speak_ended",
    ]
    heard = events[2]["text"]
    assert 1.3 <= seconds_heard(heard) <= 1.7
    reply = events[3]
    assert reply["text"] == chat_reply(heard)
    assert "".join(e["text"] for e in events[5:-1]) == reply["text"]
    answer = reply["source_event_id"]
    assert [e["source_event_id"] for e in events[3:]] == [answer] * (len(events) - 3)
    assert all(e["session_id"] == session_id for e in events)
    assert user.avatar_loud_frames >= 50  # the answer on the avatar's audio track (0.5 s+)
    assert listened_to(host, room) == {user.identity}  # never to itself


async def test_liveavatar_push_to_talk_hears_only_while_the_button_is_held(
    sim: Simulator, host: LiveKitHost
) -> None:
    session_id, url, token = await liveavatar_session(sim, "PUSH_TO_TALK")
    room = sim.liveavatar.sessions[session_id].room
    async with in_room(url, token) as user:
        vad = await ears_on(host, room, user)
        user.mic.speak(1.0)  # released: the avatar gets it and ignores it
        await heard_loud(vad, 40)
        await heard_more(vad, 50)  # to its end, and a pause longer than the hangover
        await user.send({"event_type": "user.start_push_to_talk"}, CONTROL)
        await eventually(lambda: "user.push_to_talk_started" in kinds(user), what="pressed")
        user.mic.speak(2.5)
        await heard_loud(vad, 40)
        await user.send({"event_type": "user.stop_push_to_talk"}, CONTROL)  # mid-sentence
        await eventually(lambda: "avatar.speak_started" in kinds(user), within=30, what="answer")
        await heard_more(vad, 120)  # the rest of the sentence, released again

    assert kinds(user)[:7] == [
        "user.push_to_talk_started",
        "user.speak_started",
        "user.push_to_talk_stopped",
        "user.speak_ended",  # at the release, not at the end of the sentence
        "user.transcription",
        "avatar.transcription",
        "avatar.speak_started",
    ]
    assert kinds(user).count("user.speak_started") == 1
    heard = user.events(RESPONSE)[4]["text"]
    assert 0.5 <= seconds_heard(heard) < 2.5


# --- HeyGen ------------------------------------------------------------------------------


async def heygen_session(sim: Simulator) -> tuple[str, str, str]:
    """(session id, LiveKit url, client token) of a started v2 session."""
    body = {"version": "v2", "quality": "low", "video_encoding": "VP8"}
    async with aiohttp.ClientSession(headers={"x-api-key": DEFAULT_HEYGEN_KEY}) as http:
        async with http.post(f"{sim.url}/v1/streaming.new", json=body) as r:
            data = (await r.json())["data"]
        started = {"session_id": data["session_id"]}
        async with http.post(f"{sim.url}/v1/streaming.start", json=started) as r:
            assert r.status == 200
    return data["session_id"], data["url"], data["access_token"]


def types(user: User) -> list[str]:
    return [e["type"] for e in user.events() if isinstance(e, dict)]


async def test_heygen_voice_chat_answers_what_it_hears(sim: Simulator, host: LiveKitHost) -> None:
    session_id, url, token = await heygen_session(sim)
    room = sim.heygen.sessions[session_id].room
    async with in_room(url, token) as user:
        await ears_on(host, room, user)
        user.mic.speak(1.5)
        await eventually(lambda: "avatar_stop_talking" in types(user), within=30, what="answer")

    events = user.events()
    words = types(user).count("avatar_talking_message")
    assert types(user) == [
        "user_start",
        "user_stop",
        "user_talking_message",
        "user_end_message",
        "avatar_start_talking",
        *["avatar_talking_message"] * words,
        "avatar_end_message",
        "avatar_stop_talking",
    ]
    heard = events[2]["message"]
    assert 1.3 <= seconds_heard(heard) <= 1.7
    assert "".join(e["message"] for e in events[5:-2]) == chat_reply(heard)
    task = events[4]["task_id"]
    assert [e["task_id"] for e in events[4:]] == [task] * (len(events) - 4)
    assert events[-1]["duration_ms"] > 0
    assert user.avatar_loud_frames >= 50  # the answer on the avatar's audio track (0.5 s+)
    assert listened_to(host, room) == {user.identity}  # never to itself
    assert sim.heygen.sessions[session_id].history[-1] == chat_reply(heard)


async def test_heygen_push_to_talk_hears_only_while_the_button_is_held(
    sim: Simulator, host: LiveKitHost
) -> None:
    session_id, url, token = await heygen_session(sim)
    session = sim.heygen.sessions[session_id]
    async with in_room(url, token) as user:
        vad = await ears_on(host, room=session.room, user=user)
        await user.send("push_to_talk:stop")  # voice chat in push-to-talk, released
        await eventually(lambda: session.push_to_talk, what="push-to-talk mode")
        user.mic.speak(1.0)  # released: the avatar gets it and ignores it
        await heard_loud(vad, 40)
        await heard_more(vad, 50)
        await user.send("push_to_talk:start")
        await eventually(lambda: session.talk_window, what="pressed")
        user.mic.speak(2.5)
        await heard_loud(vad, 40)
        await user.send("push_to_talk:stop")  # mid-sentence
        await eventually(lambda: "avatar_start_talking" in types(user), within=30, what="answer")
        await heard_more(vad, 120)

    assert types(user)[:5] == [
        "user_start",
        "user_stop",
        "user_talking_message",
        "user_end_message",
        "avatar_start_talking",
    ]
    assert types(user).count("user_start") == 1
    assert 0.5 <= seconds_heard(user.events()[2]["message"]) < 2.5
