"""The LiveAvatar provider and session: REST against the simulator, the data protocol both ways."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bridge.config import AvatarConfig, Secret
from bridge.errors import (
    ApiError,
    ConfigError,
    InvalidRequest,
    TransportError,
    UnexpectedResponse,
)
from bridge.media.frames import AudioChunk, VideoFrame
from bridge.providers.base import AvatarSession, Provider
from bridge.providers.events import AvatarEvent
from bridge.providers.liveavatar.client import LiveAvatarClient
from bridge.providers.liveavatar.models import SANDBOX_AVATAR_ID
from bridge.providers.liveavatar.provider import MAX_TEXT, LiveAvatarProvider, LiveAvatarSession
from bridge.sim.avatar import LiveKitHost
from bridge.sim.faults import Fault
from bridge.sim.liveavatar import PUBLIC_AVATARS, USER_AVATARS, LiveAvatarLimits
from bridge.sim.livekit_server import LiveKitServer
from bridge.sim.server import Simulator
from bridge.source.base import MediaHandlers
from bridge.source.livekit import LiveKitSource
from bridge.source.room import RoomAddress, RoomLink
from bridge.synthetic.reply import chat_reply
from tests.kit.eventually import eventually
from tests.kit.liveavatar_sim import (
    DEFAULT_LIVEAVATAR_KEY,
    RecordingLink,
    RecordingMedia,
)
from tests.kit.recorder import Noted

ANN = PUBLIC_AVATARS[1]["id"]
CONTEXT = "6c1d7f3e-2b4a-4e5f-8a9b-0c1d2e3f4a5b"
CONTROL, EVENTS = "agent-control", "agent-response"


@pytest.fixture
def media() -> RecordingMedia:
    return RecordingMedia()


@pytest.fixture
async def lasim(media: RecordingMedia) -> AsyncIterator[Simulator]:
    limits = LiveAvatarLimits(time_scale=0.01)
    async with Simulator(media=media, liveavatar_limits=limits) as harness:
        yield harness


def provider_for(lasim: Simulator, **avatar: Any) -> LiveAvatarProvider:
    client = LiveAvatarClient(
        base_url=lasim.url, credential=Secret(DEFAULT_LIVEAVATAR_KEY), timeout=5, retry_deadline=1
    )
    config = AvatarConfig(**{"avatar_id": ANN, **avatar})
    return LiveAvatarProvider(client=client, avatar=config)


@pytest.fixture
async def provider(lasim: Simulator) -> AsyncIterator[LiveAvatarProvider]:
    p = provider_for(lasim, context_id=CONTEXT)
    yield p
    await p.aclose()


class Recorder:
    """A room link that keeps what the session sends into the room."""

    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], str]] = []

    async def publish(self, payload: bytes, topic: str) -> None:
        self.sent.append((json.loads(payload), topic))


def offline_session() -> LiveAvatarSession:
    """A session for decode/command tests; its REST client is never used."""
    return LiveAvatarSession(
        client=LiveAvatarClient(base_url="http://127.0.0.1:9", credential=Secret("unused")),
        session_id="s-1",
        token=Secret("tok"),
        media=RoomAddress(url="ws://x", token="t"),
    )


def event(event_type: str, **fields: Any) -> bytes:
    return json.dumps({"event_id": "e", "event_type": event_type, **fields}).encode()


# --- provider over REST -----------------------------------------------------------------


async def test_open_session_gives_the_livekit_room(
    lasim: Simulator, media: RecordingMedia, provider: LiveAvatarProvider
) -> None:
    session = await provider.open_session()
    assert session.provider == "LiveAvatar" and provider.max_text == MAX_TEXT
    assert session.keep_alive_every == 60.0
    sim_session = lasim.liveavatar.sessions[session.session_id]
    assert session.media.url == media.livekit_url
    assert session.media.token == f"sim-lk.{sim_session.room}.client-{session.session_id[:8]}"
    assert session.media.avatar_identity == "heygen"
    # The client token may publish (commands are data packets); the avatar joins as heygen.
    assert (sim_session.room, f"client-{session.session_id[:8]}", True) in media.tokens
    await eventually(lambda: sim_session.state == "connected", what="avatar joined")
    assert media.specs[sim_session.room].identity == "heygen"
    assert sim_session.persona["context_id"] == CONTEXT

    await session.keep_alive()
    await session.stop()
    await session.stop()  # already gone: not an error
    kinds = [(e.kind, e.reason) for e in lasim.ledger.session_events]
    assert kinds == [
        ("created", ""),
        ("started", ""),
        ("connected", ""),
        ("stopped", "USER_CLOSED"),
    ]
    keep_alive = lasim.ledger.requests_to("/v1/sessions/keep-alive")
    assert [r.auth for r in keep_alive] == ["bearer"]
    assert [r.status for r in lasim.ledger.requests_to("/v1/sessions/stop")] == [200, 404]


async def test_open_session_never_leaks_when_start_is_refused(
    lasim: Simulator, provider: LiveAvatarProvider
) -> None:
    lasim.faults.add(Fault("status", path="/v1/sessions/start", status=400, code=400))
    noted = Noted()
    with pytest.raises(InvalidRequest):
        await provider.open_session(noted)
    assert lasim.ledger.open_sessions() == []
    assert [(e.kind, e.reason) for e in lasim.ledger.session_events] == [
        ("created", ""),
        ("stopped", "USER_CLOSED"),
    ]
    stop = lasim.ledger.requests_to("/v1/sessions/stop")
    assert [(r.status, r.auth) for r in stop] == [(200, "api_key")]
    session_id = lasim.ledger.sessions("created")[0]
    assert noted.events == [f"created {session_id}", f"stopped {session_id}"]


async def test_a_session_that_cannot_be_stopped_stays_on_record(
    lasim: Simulator, provider: LiveAvatarProvider
) -> None:
    lasim.faults.add(Fault("status", path="/v1/sessions/start", status=400, code=400))
    lasim.faults.add(Fault("status", path="/v1/sessions/stop", status=503, times=None))
    noted = Noted()
    with pytest.raises(InvalidRequest):
        await provider.open_session(noted)
    [session_id] = lasim.ledger.open_sessions()
    assert noted.events == [f"created {session_id}"]  # the next start stops it
    lasim.faults.clear()


async def test_open_session_never_leaks_when_start_keeps_failing(
    lasim: Simulator, provider: LiveAvatarProvider
) -> None:
    lasim.faults.add(Fault("status", path="/v1/sessions/start", status=503, times=None))
    with pytest.raises(ApiError) as caught:
        await provider.open_session()
    assert caught.value.retryable and caught.value.status == 503
    assert len(lasim.ledger.requests_to("/v1/sessions/start")) >= 2  # 5xx was retried
    assert lasim.ledger.open_sessions() == []
    lasim.faults.clear()


async def test_open_session_never_leaks_on_an_unreadable_start(
    lasim: Simulator, provider: LiveAvatarProvider
) -> None:
    lasim.faults.add(Fault("status", path="/v1/sessions/start", status=201, code=1000))
    with pytest.raises(UnexpectedResponse):  # 201 without data
        await provider.open_session()
    assert lasim.ledger.open_sessions() == []


async def test_avatar_and_session_lists(lasim: Simulator, provider: LiveAvatarProvider) -> None:
    avatars = await provider.list_avatars()
    assert [(a.avatar_id, a.public) for a in avatars] == [
        *((a["id"], False) for a in USER_AVATARS),
        *((a["id"], True) for a in PUBLIC_AVATARS),
    ]
    assert avatars[1].status == "init" and avatars[0].status == "active"
    assert avatars[len(USER_AVATARS)].name == "Wayne"
    assert await provider.list_sessions() == []
    session = await provider.open_session()
    listed = await provider.list_sessions()
    assert [(s.session_id, s.status) for s in listed] == [(session.session_id, "active")]
    assert listed[0].created_at is not None
    await provider.stop_session(session.session_id)
    assert await provider.list_sessions() == []


async def test_sandbox_session_uses_wayne(lasim: Simulator) -> None:
    provider = provider_for(lasim, avatar_id=None, sandbox=True)
    try:
        session = await provider.open_session()
        sim_session = lasim.liveavatar.sessions[session.session_id]
        assert sim_session.avatar_id == SANDBOX_AVATAR_ID and sim_session.is_sandbox
        await session.stop()
    finally:
        await provider.aclose()


def test_token_request_from_config() -> None:
    client = LiveAvatarClient(base_url="http://127.0.0.1:9", credential=Secret("k"))
    config = AvatarConfig(
        avatar_id=ANN,
        quality="very_high",
        video_encoding="H264",
        voice_id="5f0f2c8e-0c6b-4a86-9a3e-5f6d7a1b2c3d",
        voice_rate=1.2,
        language="fr",
        context_id=CONTEXT,
        max_session_duration=900,
    )
    request = LiveAvatarProvider(client=client, avatar=config).token_request()
    assert request.model_dump(exclude_none=True) == {
        "mode": "FULL",
        "avatar_id": ANN,
        "avatar_persona": {
            "voice_id": "5f0f2c8e-0c6b-4a86-9a3e-5f6d7a1b2c3d",
            "context_id": CONTEXT,
            "language": "fr",
            "voice_settings": {"provider": "elevenLabs", "speed": 1.2},
        },
        "video_settings": {"quality": "very_high", "encoding": "H264"},
        "is_sandbox": False,
        "max_session_duration": 900,
    }


@pytest.mark.parametrize(
    ("avatar", "problem"),
    [
        ({"avatar_id": None}, "avatar.avatar_id: not set"),
        ({"avatar_id": ANN, "sandbox": True}, "sandbox sessions can only use the avatar Wayne"),
        ({"avatar_id": ANN, "voice_rate": 1.4}, "avatar.voice_rate: 1.4 is outside"),
    ],
)
def test_config_liveavatar_cannot_serve(avatar: dict[str, Any], problem: str) -> None:
    client = LiveAvatarClient(base_url="http://127.0.0.1:9", credential=Secret("k"))
    provider = LiveAvatarProvider(client=client, avatar=AvatarConfig(**avatar))
    with pytest.raises(ConfigError) as caught:
        provider.token_request()
    assert problem in str(caught.value)


# --- commands the session publishes -----------------------------------------------------


async def test_speak_and_interrupt_publish_the_exact_commands() -> None:
    session = offline_session()
    sent = Recorder()
    repeat_id = await session.speak("Hello there", "repeat", sent)
    chat_id = await session.speak("How are you?", "chat", sent)
    await session.interrupt(sent)
    await session.start_listening(sent)
    await session.stop_listening(sent)
    assert [topic for _, topic in sent.sent] == [CONTROL] * 5
    bodies = [body for body, _ in sent.sent]
    assert bodies[0] == {
        "event_id": repeat_id,
        "event_type": "avatar.speak_text",
        "session_id": "s-1",
        "text": "Hello there",
    }
    assert bodies[1] == {
        "event_id": chat_id,
        "event_type": "avatar.speak_response",
        "session_id": "s-1",
        "text": "How are you?",
    }
    assert [b["event_type"] for b in bodies[2:]] == [
        "avatar.interrupt",
        "avatar.start_listening",
        "avatar.stop_listening",
    ]
    assert all(set(b) == {"event_id", "event_type", "session_id"} for b in bodies[2:])
    assert len({b["event_id"] for b in bodies}) == 5


async def test_commands_without_a_room_are_not_sent() -> None:
    session = offline_session()
    with pytest.raises(TransportError) as caught:
        await session.speak("no room", "repeat", None)
    assert not caught.value.sent and "no room to send into" in str(caught.value)

    class Disconnected:
        async def publish(self, payload: bytes, topic: str) -> None:
            raise ConnectionError("not in the avatar's room")

    with pytest.raises(TransportError) as lost:
        await session.interrupt(Disconnected())
    assert "room is not connected" in str(lost.value) and not lost.value.sent
    # A command that was not sent is not waited for: the next start is the next command's.
    sent = Recorder()
    with pytest.raises(TransportError):
        await session.speak("lost", "repeat", Disconnected())
    task = await session.speak("delivered", "repeat", sent)
    assert session.decode(event("avatar.speak_started"), EVENTS) == [
        AvatarEvent("speak_started", task)
    ]


# --- events the session decodes ---------------------------------------------------------


def test_decode_maps_every_event() -> None:
    session = offline_session()
    d = session.decode
    assert d(event("avatar.speak_started", source_event_id="t1"), EVENTS) == [
        AvatarEvent("speak_started", "t1")
    ]
    assert d(event("avatar.transcription.chunk", source_event_id="t1", text="Hi"), EVENTS) == [
        AvatarEvent("speak_text", "t1", text="Hi")
    ]
    assert d(event("avatar.speak_ended", source_event_id="t1"), EVENTS) == [
        AvatarEvent("speak_ended", "t1")
    ]
    assert d(event("avatar.transcription", source_event_id="t2", text="All of it"), EVENTS) == [
        AvatarEvent("speak_text", "t2", text="All of it")
    ]
    assert d(event("avatar.transcription_ended", text="legacy"), EVENTS) == [
        AvatarEvent("speak_text", None, text="legacy")
    ]
    assert d(event("user.transcription", text="hello avatar"), EVENTS) == [
        AvatarEvent("user_text", text="hello avatar")
    ]
    assert d(event("session.stopped", end_reason="IDLE_TIMEOUT"), EVENTS) == [
        AvatarEvent("session_stopped", text="IDLE_TIMEOUT")
    ]
    # A newer SDK build names it stop_reason (reference/liveavatar-api.md §9).
    assert d(event("session.stopped", stop_reason="MAX_DURATION_REACHED"), EVENTS) == [
        AvatarEvent("session_stopped", text="MAX_DURATION_REACHED")
    ]
    for quiet in ("session.state_updated", "user.speak_started", "avatar.something_new"):
        assert d(event(quiet, state="connected"), EVENTS) == []


@pytest.mark.parametrize(
    ("payload", "topic"),
    [
        (b"\xff\xfe", EVENTS),
        (b"not json", EVENTS),
        (b"[1, 2]", EVENTS),
        (b"{}", EVENTS),
        (b'{"event_type": 5}', EVENTS),
        (b'{"event_type": "avatar.transcription", "text": 7}', EVENTS),
        (b'{"event_type": "user.transcription"}', EVENTS),
        (event("avatar.speak_started"), None),
        (event("avatar.speak_started"), CONTROL),
        (event("avatar.speak_started"), ""),
    ],
)
def test_decode_ignores_garbage_and_other_topics(payload: bytes, topic: str | None) -> None:
    assert offline_session().decode(payload, topic) == []


async def test_decode_falls_back_to_the_oldest_pending_command() -> None:
    session, room = offline_session(), Recorder()
    first = await session.speak("one", "repeat", room)
    second = await session.speak("two", "repeat", room)
    d = session.decode
    assert d(event("avatar.speak_started"), EVENTS) == [AvatarEvent("speak_started", first)]
    assert d(event("avatar.transcription", text="one"), EVENTS) == [
        AvatarEvent("speak_text", first, text="one")
    ]
    assert d(event("avatar.speak_ended"), EVENTS) == [AvatarEvent("speak_ended", first)]
    assert d(event("avatar.speak_started"), EVENTS) == [AvatarEvent("speak_started", second)]
    assert d(event("avatar.speak_ended"), EVENTS) == [AvatarEvent("speak_ended", second)]
    assert d(event("avatar.speak_started"), EVENTS) == [AvatarEvent("speak_started", None)]
    # An interrupt drops the queued commands; the one speaking still ends under its id.
    speaking = await session.speak("three", "repeat", room)
    await session.speak("four", "repeat", room)  # queued, then dropped by the interrupt
    assert d(event("avatar.speak_ended"), EVENTS) == [AvatarEvent("speak_ended", None)]
    assert d(event("avatar.speak_started"), EVENTS) == [AvatarEvent("speak_started", speaking)]
    await session.interrupt(room)
    assert d(event("avatar.speak_ended"), EVENTS) == [
        AvatarEvent("speak_ended", speaking, interrupted=True)
    ]
    assert d(event("avatar.speak_started"), EVENTS) == [AvatarEvent("speak_started", None)]


async def test_decode_prefers_source_event_id_and_keeps_fifo_in_step() -> None:
    session, room = offline_session(), Recorder()
    first = await session.speak("one", "repeat", room)
    second = await session.speak("two", "repeat", room)
    d = session.decode
    assert d(event("avatar.speak_started", source_event_id=first), EVENTS)[0].task_id == first
    assert d(event("avatar.speak_ended", source_event_id=first), EVENTS)[0].task_id == first
    # A later event without the id still finds the next pending command.
    assert d(event("avatar.speak_started"), EVENTS)[0].task_id == second
    # After an interrupt, the ends of what was speaking or queued are marked interrupted.
    third = await session.speak("three", "repeat", room)
    await session.interrupt(room)
    ends = [d(event("avatar.speak_ended", source_event_id=t), EVENTS)[0] for t in (second, third)]
    assert [(e.task_id, e.interrupted) for e in ends] == [(second, True), (third, True)]
    fourth = await session.speak("four", "repeat", room)
    d(event("avatar.speak_started", source_event_id=fourth), EVENTS)
    assert d(event("avatar.speak_ended", source_event_id=fourth), EVENTS) == [
        AvatarEvent("speak_ended", fourth)
    ]


def test_full_transcript_after_chunks_is_not_repeated() -> None:
    session = offline_session()
    d = session.decode
    d(event("avatar.speak_started", source_event_id="t"), EVENTS)
    assert d(event("avatar.transcription.chunk", source_event_id="t", text="Hi"), EVENTS)
    assert d(event("avatar.transcription.chunk", source_event_id="t", text=" you"), EVENTS)
    assert d(event("avatar.transcription", source_event_id="t", text="Hi you"), EVENTS) == []
    d(event("avatar.speak_ended", source_event_id="t"), EVENTS)
    # and chunks after a full transcript (speak_response) are not repeated either
    assert d(event("avatar.transcription", source_event_id="u", text="Reply"), EVENTS)
    assert d(event("avatar.transcription.chunk", source_event_id="u", text="Reply"), EVENTS) == []


# --- both ways through the simulated room -----------------------------------------------


class SimulatedRoom:
    """A room link straight into the simulated avatar's data handler."""

    def __init__(self, deliver: Callable[[bytes, str | None], None]) -> None:
        self._deliver = deliver

    async def publish(self, payload: bytes, topic: str) -> None:
        self._deliver(payload, topic)


async def open_in_room(
    lasim: Simulator, media: RecordingMedia, provider: LiveAvatarProvider
) -> tuple[LiveAvatarSession, RecordingLink, SimulatedRoom]:
    """Open a session; the room link its commands go through; the avatar's side of the room."""
    session = await provider.open_session()
    sim_session = lasim.liveavatar.sessions[session.session_id]
    await eventually(lambda: sim_session.state == "connected", what="avatar joined")
    room = SimulatedRoom(media.on_data[sim_session.room])
    return session, media.links[sim_session.room], room


def decode_all(session: LiveAvatarSession, link: RecordingLink) -> list[AvatarEvent]:
    events = [e for payload, topic in link.published for e in session.decode(payload, topic)]
    link.published.clear()
    return events


async def test_repeat_round_trip(
    lasim: Simulator, media: RecordingMedia, provider: LiveAvatarProvider
) -> None:
    session, link, room = await open_in_room(lasim, media, provider)
    task = await session.speak("Hello bridge", "repeat", room)
    await eventually(lambda: bool(link.said), what="the avatar spoke")
    assert link.said == [("Hello bridge", task)]
    assert decode_all(session, link) == [
        AvatarEvent("speak_started", task),
        AvatarEvent("speak_text", task, text="Hello"),
        AvatarEvent("speak_text", task, text=" bridge"),
        AvatarEvent("speak_ended", task),
    ]
    await session.stop()


async def test_chat_round_trip_answers_with_the_canned_reply(
    lasim: Simulator, media: RecordingMedia, provider: LiveAvatarProvider
) -> None:
    session, link, room = await open_in_room(lasim, media, provider)
    task = await session.speak("What time is it?", "chat", room)
    await eventually(lambda: bool(link.said), what="the avatar answered")
    reply = chat_reply("What time is it?")
    assert link.said == [(reply, task)]
    types = [json.loads(p)["event_type"] for p, _ in link.published]
    assert types[0] == "avatar.transcription"  # the answer first, as the docs describe
    assert types.count("avatar.transcription") == 1  # not repeated when speech finishes
    assert all(json.loads(p)["source_event_id"] == task for p, _ in link.published)
    events = decode_all(session, link)
    assert events[0] == AvatarEvent("speak_text", task, text=reply)
    assert [e.kind for e in events[1:]] == ["speak_started", "speak_ended"]
    await session.stop()


async def test_commands_reset_the_idle_timer_and_interrupt_reaches_the_avatar(
    lasim: Simulator, media: RecordingMedia, provider: LiveAvatarProvider
) -> None:
    session, link, room = await open_in_room(lasim, media, provider)
    sim_session = lasim.liveavatar.sessions[session.session_id]
    sim_session.last_activity -= 100.0
    before = sim_session.last_activity
    await session.start_listening(room)
    await eventually(lambda: sim_session.listening, what="listening")
    assert sim_session.last_activity > before
    await session.interrupt(room)
    await eventually(lambda: link.interrupts == 1, what="interrupt")
    # Garbage and other topics in the room are ignored.
    deliver = media.on_data[sim_session.room]
    deliver(b"\x00garbage", CONTROL)
    deliver(b'{"event_type": "avatar.speak_text", "text": "wrong topic"}', EVENTS)
    deliver(b'{"event_type": "avatar.speak_text"}', CONTROL)
    await session.speak("after the noise", "repeat", room)
    await eventually(lambda: bool(link.said), what="spoke")
    assert [text for text, _ in link.said] == ["after the noise"]
    await session.stop()


async def test_stop_tells_the_room_before_the_avatar_leaves(
    lasim: Simulator, media: RecordingMedia, provider: LiveAvatarProvider
) -> None:
    session, link, _room = await open_in_room(lasim, media, provider)
    link.published.clear()
    await session.stop()
    assert media.trail[-3:] == [f"publish:{EVENTS}", "leave", "close_room"]
    assert decode_all(session, link) == [AvatarEvent("session_stopped", text="USER_CLOSED")]


async def test_expiry_tells_the_room_why(
    lasim: Simulator, media: RecordingMedia, provider: LiveAvatarProvider
) -> None:
    session, link, _room = await open_in_room(lasim, media, provider)
    link.published.clear()
    lasim.liveavatar.limits.time_scale = 0.0001  # idle 5 min → 30 ms
    await eventually(lambda: "close_room" in media.trail, what="idle expiry")
    assert decode_all(session, link) == [AvatarEvent("session_stopped", text="IDLE_TIMEOUT")]
    await session.stop()  # gone already: not an error


async def test_push_to_talk_is_refused_in_a_conversational_session(
    lasim: Simulator, media: RecordingMedia, provider: LiveAvatarProvider
) -> None:
    session, link, _room = await open_in_room(lasim, media, provider)
    link.published.clear()
    deliver = media.on_data[lasim.liveavatar.sessions[session.session_id].room]
    deliver(b'{"event_type": "user.start_push_to_talk"}', CONTROL)
    await eventually(lambda: bool(link.published), what="ptt answer")
    assert json.loads(link.published[0][0])["event_type"] == "user.push_to_talk_start_failed"
    await session.stop()


# --- through a real LiveKit room --------------------------------------------------------


async def test_through_a_real_livekit_room(livekit_server: LiveKitServer) -> None:
    """The bridge's room link joins with the client token and carries the session's commands;
    the avatar answers on agent-response, and its tracks reach the media handlers."""
    host = LiveKitHost(
        url=livekit_server.url, api_key=livekit_server.api_key, api_secret=livekit_server.api_secret
    )
    events: list[AvatarEvent] = []
    frames: list[VideoFrame] = []
    present: list[bool] = []
    try:
        async with Simulator(media=host) as lasim:
            provider = provider_for(lasim, context_id=CONTEXT)
            try:
                session = await provider.open_session()

                def data(payload: bytes, topic: str | None) -> None:
                    events.extend(session.decode(payload, topic))

                def audio(chunk: AudioChunk) -> None:
                    pass

                handlers = MediaHandlers(
                    video=frames.append, audio=audio, data=data, presence=present.append
                )
                link = RoomLink(session.media, on_data=handlers.data)
                source = LiveKitSource(link, handlers)
                async with asyncio.TaskGroup() as group:
                    running = group.create_task(source.run(), name="media-source")
                    await eventually(lambda: present == [True], within=15, what="the avatar")
                    await eventually(lambda: bool(frames), within=15, what="its picture")
                    task = await session.speak("Hello from the bridge", "repeat", link)
                    await eventually(
                        lambda: AvatarEvent("speak_ended", task) in events,
                        within=30,
                        what="speech",
                    )
                    assert events[0] == AvatarEvent("speak_started", task)
                    spoken = "".join(e.text for e in events if e.kind == "speak_text")
                    assert spoken == "Hello from the bridge"
                    await session.stop()
                    await eventually(
                        lambda: any(e.kind == "session_stopped" for e in events), what="stopped"
                    )
                    assert events[-1] == AvatarEvent("session_stopped", text="USER_CLOSED")
                    running.cancel()
                assert source.snapshot()["data_packets"] >= len(events)
            finally:
                await provider.aclose()
    finally:
        await host.aclose()


def test_implements_the_provider_interface() -> None:
    client = LiveAvatarClient(base_url="http://127.0.0.1:9", credential=Secret("k"))
    provider: Provider = LiveAvatarProvider(client=client, avatar=AvatarConfig())
    session: AvatarSession = offline_session()
    assert provider.name == session.provider == "LiveAvatar"
