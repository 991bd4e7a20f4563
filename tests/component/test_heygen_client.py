"""The HeyGen client against the HeyGen simulator, over real HTTP on loopback."""

from __future__ import annotations

import asyncio

import pytest

from bridge.config import Secret
from bridge.errors import (
    InvalidRequest,
    RateLimited,
    SessionGone,
    SessionLimitReached,
    TransportError,
    Unauthorized,
    UnexpectedResponse,
)
from bridge.providers.heygen.client import HeyGenClient
from bridge.providers.heygen.models import (
    ElevenLabsSettings,
    IceCandidate,
    LiveKitSettings,
    NewSessionRequest,
    SttSettings,
    Voice,
)
from bridge.sim import DEFAULT_HEYGEN_KEY
from bridge.sim.clock import ManualClock
from bridge.sim.faults import Fault
from bridge.sim.server import Simulator
from tests.kit.eventually import eventually

FULL_REQUEST = NewSessionRequest(
    quality="low",
    avatar_id="Wayne_20240711",
    voice=Voice(
        voice_id="sim-voice-2",
        rate=1.2,
        emotion="friendly",
        elevenlabs_settings=ElevenLabsSettings(
            stability=0.5,
            similarity_boost=0.7,
            style=0.1,
            use_speaker_boost=True,
            model_id="eleven_flash_v2_5",
        ),
    ),
    video_encoding="H264",
    knowledge_base="You are a helpful presenter.",
    knowledge_base_id="kb-1",
    language="en",
    activity_idle_timeout=300,
    disable_idle_timeout=False,
    stt_settings=SttSettings(provider="deepgram", confidence=0.55),
)
# What the client must send for FULL_REQUEST, field by field (HeyGen ignores a misspelt field,
# so only this comparison catches one).
FULL_BODY = {
    "quality": "low",
    "avatar_id": "Wayne_20240711",
    "voice": {
        "voice_id": "sim-voice-2",
        "rate": 1.2,
        "emotion": "friendly",
        "elevenlabs_settings": {
            "stability": 0.5,
            "similarity_boost": 0.7,
            "style": 0.1,
            "use_speaker_boost": True,
            "model_id": "eleven_flash_v2_5",
        },
    },
    "video_encoding": "H264",
    "knowledge_base": "You are a helpful presenter.",
    "knowledge_base_id": "kb-1",
    "version": "v2",
    "language": "en",
    "activity_idle_timeout": 300,
    "disable_idle_timeout": False,
    "stt_settings": {"provider": "deepgram", "confidence": 0.55},
}


async def wait_connected(sim: Simulator, session_id: str) -> None:
    await eventually(
        lambda: sim.heygen.sessions[session_id].state == "connected", what="avatar joined"
    )


async def test_full_session_with_api_key(sim: Simulator, heygen: HeyGenClient) -> None:
    data = await heygen.new_session(FULL_REQUEST)
    assert sim.ledger.bodies("/v1/streaming.new") == [FULL_BODY]
    assert data.session_id and data.access_token and data.url
    assert data.session_duration_limit == 600
    assert (
        data.realtime_endpoint == f"ws://127.0.0.1:{sim.port}/v1-alpha/realtime/{data.session_id}"
    )
    await heygen.start_session(data.session_id)
    await wait_connected(sim, data.session_id)
    repeat = await heygen.task(data.session_id, "Hello there, friends", task_type="repeat")
    chat = await heygen.task(data.session_id, "How are you?", task_type="chat")
    talk = await heygen.task(data.session_id, "And you?", task_type="talk")
    assert len({repeat.task_id, chat.task_id, talk.task_id}) == 3
    assert repeat.duration_ms > 0
    assert sim.ledger.bodies("/v1/streaming.task") == [
        {"session_id": data.session_id, "text": text, "task_type": kind, "task_mode": "async"}
        for text, kind in [
            ("Hello there, friends", "repeat"),
            ("How are you?", "chat"),
            ("And you?", "talk"),
        ]
    ]
    listed = await heygen.list_sessions()
    assert [(s.session_id, s.status) for s in listed] == [(data.session_id, "connected")]
    await heygen.stop(data.session_id)
    assert await heygen.list_sessions() == []
    history = await heygen.session_history()
    assert history.total == 1 and history.data[0].status == "closed"
    assert sim.ledger.sessions("stopped") == [data.session_id]
    for path in ("/v1/streaming.start", "/v1/streaming.stop"):
        assert sim.ledger.bodies(path) == [{"session_id": data.session_id}], path
    # The simulator saw every request of this test with the API key.
    assert {r.auth for r in sim.ledger.requests} == {"api_key"}


async def open_connected(sim: Simulator, heygen: HeyGenClient) -> str:
    data = await heygen.new_session(NewSessionRequest())
    await heygen.start_session(data.session_id)
    await wait_connected(sim, data.session_id)
    return data.session_id


async def test_interrupt_cuts_the_speech_short(sim: Simulator, heygen: HeyGenClient) -> None:
    session_id = await open_connected(sim, heygen)
    session = sim.heygen.sessions[session_id]
    await heygen.task(session_id, "a long sentence the avatar will not finish")
    assert session.speaking_until > sim.clock.now()
    await heygen.interrupt(session_id)
    assert sim.ledger.bodies("/v1/streaming.interrupt") == [{"session_id": session_id}]
    assert session.speaking_until == 0.0 and session.speech_cut.is_set()
    await heygen.stop(session_id)


async def test_keep_alive_resets_the_idle_timer(
    sim: Simulator, heygen: HeyGenClient, clock: ManualClock
) -> None:
    session_id = await open_connected(sim, heygen)
    await clock.advance(100)
    await heygen.keep_alive(session_id)
    assert sim.ledger.bodies("/v1/streaming.keep_alive") == [{"session_id": session_id}]
    assert sim.heygen.sessions[session_id].last_activity == clock.now()
    await heygen.stop(session_id)


async def test_listening_pose_on_and_off(sim: Simulator, heygen: HeyGenClient) -> None:
    session_id = await open_connected(sim, heygen)
    session = sim.heygen.sessions[session_id]
    await heygen.start_listening(session_id)
    assert session.listening
    await heygen.stop_listening(session_id)
    assert not session.listening
    for path in ("/v1/streaming.start_listening", "/v1/streaming.stop_listening"):
        assert sim.ledger.bodies(path) == [{"session_id": session_id}], path
    await heygen.stop(session_id)


async def test_sync_task_waits_for_the_speech(
    sim: Simulator, heygen: HeyGenClient, clock: ManualClock
) -> None:
    session_id = await open_connected(sim, heygen)
    session = sim.heygen.sessions[session_id]
    pending = asyncio.create_task(
        heygen.task(session_id, "one two three four five", task_mode="sync")
    )
    await eventually(lambda: bool(session.history), what="the fake took the task")
    speech = session.speaking_until - clock.now()
    # Time moves only here, in steps: the answer may come only once the speech is over.
    moved = 0.0
    for _ in range(100):
        if pending.done():
            break
        await clock.advance(0.25)
        moved += 0.25
        await asyncio.wait([pending], timeout=0.2)
    task = await pending
    assert speech > 1.0 and moved >= speech
    assert task.duration_ms == pytest.approx(speech * 1000, abs=1)
    assert sim.ledger.bodies("/v1/streaming.task")[0]["task_mode"] == "sync"
    await heygen.stop(session_id)


async def test_session_token_flow_is_bearer_and_one_time(
    sim: Simulator, heygen: HeyGenClient
) -> None:
    token = await heygen.create_token()  # the {error, data} envelope
    browser = heygen.with_session_token(token)
    async with browser:
        data = await browser.new_session(NewSessionRequest(quality="medium"))
        await browser.start_session(data.session_id)
        await wait_connected(sim, data.session_id)
        await browser.task(data.session_id, "spoken with a session token")
        with pytest.raises(Unauthorized):
            await browser.new_session(NewSessionRequest())  # a token creates one session only
        await browser.stop(data.session_id)
    bearer = [r for r in sim.ledger.requests if r.auth == "bearer"]
    assert len(bearer) == 5
    assert sim.ledger.open_sessions() == []


async def test_api_key_as_bearer_is_accepted(sim: Simulator) -> None:
    async with HeyGenClient(
        base_url=sim.url, credential=Secret(DEFAULT_HEYGEN_KEY), auth="bearer"
    ) as client:
        avatars = await client.list_avatars()
        assert avatars[0].avatar_id == "default"


async def test_avatar_list(heygen: HeyGenClient) -> None:
    avatars = await heygen.list_avatars()
    assert {a.status for a in avatars} == {"ACTIVE", "INACTIVE"}
    assert all(a.avatar_id for a in avatars)


async def test_legacy_v1_session_and_ice(sim: Simulator, heygen: HeyGenClient) -> None:
    legacy = NewSessionRequest(version=None)
    data = await heygen.new_session(legacy)
    assert sim.ledger.bodies("/v1/streaming.new") == [{}]  # v1: no version field at all
    assert data.sdp is not None and data.sdp["type"] == "offer"
    assert data.ice_servers2 and data.ice_servers2[0].urls
    candidate = "candidate:1 1 UDP 1 1.2.3.4 5 typ host"
    await heygen.ice(data.session_id, IceCandidate(candidate=candidate, sdpMid="0"))
    assert sim.ledger.bodies("/v1/streaming.ice") == [
        {"session_id": data.session_id, "candidate": {"candidate": candidate, "sdpMid": "0"}}
    ]
    session = sim.heygen.sessions[data.session_id]
    assert session.ice_candidates == [{"candidate": candidate, "sdpMid": "0"}]
    await heygen.start_session(data.session_id, sdp={"type": "answer", "sdp": "v=0"})
    assert sim.ledger.bodies("/v1/streaming.start") == [
        {"session_id": data.session_id, "sdp": {"type": "answer", "sdp": "v=0"}}
    ]
    assert session.state == "connected"  # v1: no avatar to wait for
    await heygen.stop(data.session_id)


async def test_own_livekit_settings_are_sent(sim: Simulator, heygen: HeyGenClient) -> None:
    request = NewSessionRequest(
        livekit_settings=LiveKitSettings(url="ws://127.0.0.1:1", room="mine", token="jwt")
    )
    data = await heygen.new_session(request)
    assert sim.heygen.sessions[data.session_id].room == "mine"
    assert data.url == "ws://127.0.0.1:1"
    await heygen.stop(data.session_id)


async def test_wrong_key_names_the_cause_and_hides_the_key(sim: Simulator) -> None:
    wrong = "wrong-key-1234567"
    async with HeyGenClient(base_url=sim.url, credential=Secret(wrong)) as client:
        with pytest.raises(Unauthorized) as caught:
            await client.list_avatars()
    message = str(caught.value)
    assert "400112" in message and "HEYGEN_API_KEY" in message
    assert wrong not in message
    assert caught.value.status == 401 and not caught.value.retryable


async def test_concurrent_limit_says_how_to_fix(sim: Simulator, heygen: HeyGenClient) -> None:
    ids = [(await heygen.new_session(NewSessionRequest())).session_id for _ in range(3)]
    with pytest.raises(SessionLimitReached) as caught:
        await heygen.new_session(NewSessionRequest())
    assert str(caught.value) == (
        "HeyGen refused streaming.new: concurrent session limit reached (code 10007). "
        "Stop idle sessions with: heygen-bridge sessions stop --all"
    )
    assert len(sim.ledger.requests_to("/v1/streaming.new")) == 4  # the 4xx was not retried
    for session_id in ids:
        await heygen.stop(session_id)


async def test_state_errors(sim: Simulator, heygen: HeyGenClient) -> None:
    data = await heygen.new_session(NewSessionRequest())
    with pytest.raises(InvalidRequest) as not_started:
        await heygen.task(data.session_id, "too early")
    assert not_started.value.code == 10001
    await heygen.stop(data.session_id)
    with pytest.raises(SessionGone) as closed:
        await heygen.task(data.session_id, "too late")
    assert closed.value.code == 10005 and "closed" in str(closed.value)
    with pytest.raises(SessionGone) as unknown:
        await heygen.keep_alive("no-such-session")
    assert unknown.value.code == 10006


async def test_bad_parameters_are_400175(heygen: HeyGenClient) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await heygen.new_session(NewSessionRequest(avatar_id="nobody"))
    assert caught.value.code == 10012 and "heygen-bridge avatars" in str(caught.value)


async def test_idle_timeout_closes_the_session(
    sim: Simulator, heygen: HeyGenClient, clock: ManualClock
) -> None:
    data = await heygen.new_session(NewSessionRequest(activity_idle_timeout=30))
    await heygen.start_session(data.session_id)
    await wait_connected(sim, data.session_id)
    for _ in range(4):  # keep-alives hold it open well past the timeout
        await clock.advance(20)
        await heygen.keep_alive(data.session_id)
    await clock.advance(29)
    assert sim.ledger.sessions("expired") == []
    await clock.advance(2)  # 31 s without a sign of life
    with pytest.raises(SessionGone) as caught:
        await heygen.task(data.session_id, "anyone there?")
    assert caught.value.code == 10005
    assert [(e.session_id, e.reason) for e in sim.ledger.session_events if e.kind == "expired"] == [
        (data.session_id, "idle timeout")
    ]


async def test_duration_limit_closes_the_session(
    sim: Simulator, heygen: HeyGenClient, clock: ManualClock
) -> None:
    sim.heygen.limits.session_duration_limit = 20
    data = await heygen.new_session(NewSessionRequest(disable_idle_timeout=True))
    await heygen.start_session(data.session_id)
    await clock.advance(19)
    assert sim.ledger.sessions("expired") == []
    await clock.advance(2)
    assert [e.reason for e in sim.ledger.session_events if e.kind == "expired"] == [
        "session duration limit"
    ]


async def test_succeeds_after_two_injected_503s(sim: Simulator, heygen: HeyGenClient) -> None:
    sim.faults.add(Fault("status", path="/v1/streaming/avatar.list", status=503, times=2))
    avatars = await heygen.list_avatars()
    assert avatars
    statuses = [r.status for r in sim.ledger.requests_to("/v1/streaming/avatar.list")]
    assert statuses == [503, 503, 200]


async def test_4xx_is_not_retried(sim: Simulator, heygen: HeyGenClient) -> None:
    sim.faults.add(Fault("status", path="/v1/streaming.list", status=400, code=400175, times=5))
    with pytest.raises(InvalidRequest):
        await heygen.list_sessions()
    assert len(sim.ledger.requests_to("/v1/streaming.list")) == 1


async def test_429_waits_retry_after(sim: Simulator, heygen: HeyGenClient) -> None:
    sim.faults.add(Fault("status", path="/v1/streaming.list", status=429, retry_after=0.3))
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await heygen.list_sessions() == []
    assert loop.time() - started >= 0.3
    assert [r.status for r in sim.ledger.requests_to("/v1/streaming.list")] == [429, 200]


async def test_429_past_the_deadline_is_raised(sim: Simulator) -> None:
    sim.faults.add(Fault("status", path="/v1/streaming.list", status=429, retry_after=30))
    async with HeyGenClient(
        base_url=sim.url, credential=Secret(DEFAULT_HEYGEN_KEY), retry_deadline=1
    ) as client:
        with pytest.raises(RateLimited) as caught:
            await client.list_sessions()
    assert caught.value.retry_after == 30


async def test_dropped_connection_is_retried_when_safe(
    sim: Simulator, heygen: HeyGenClient
) -> None:
    sim.faults.add(Fault("drop", path="/v1/streaming.list"))
    assert await heygen.list_sessions() == []
    assert [r.status for r in sim.ledger.requests_to("/v1/streaming.list")] == [0, 200]


async def test_dropped_new_session_is_not_retried(sim: Simulator, heygen: HeyGenClient) -> None:
    # The request reached the server: a retry could create a second session.
    sim.faults.add(Fault("drop", path="/v1/streaming.new"))
    with pytest.raises(TransportError) as caught:
        await heygen.new_session(NewSessionRequest())
    assert "connection lost" in str(caught.value)
    assert len(sim.ledger.requests_to("/v1/streaming.new")) == 1


async def test_timeout_is_a_transport_error(sim: Simulator) -> None:
    sim.faults.add(Fault("latency", path="/v1/streaming.list", delay=1.0, times=None))
    async with HeyGenClient(
        base_url=sim.url, credential=Secret(DEFAULT_HEYGEN_KEY), timeout=0.2, retry_deadline=0.5
    ) as client:
        with pytest.raises(TransportError) as caught:
            await client.list_sessions()
    assert "no answer within 0.2 s" in str(caught.value)
    sim.faults.clear()


async def test_connection_refused_names_the_url() -> None:
    async with HeyGenClient(
        base_url="http://127.0.0.1:9", credential=Secret("k" * 20), retry_deadline=0.3
    ) as client:
        with pytest.raises(TransportError) as caught:
            await client.list_avatars()
    assert "cannot connect to http://127.0.0.1:9" in str(caught.value)


async def test_http_200_with_failure_code_is_an_error(sim: Simulator, heygen: HeyGenClient) -> None:
    sim.faults.add(Fault("status", path="/v1/streaming.list", status=200, code=10006))
    with pytest.raises(SessionGone):
        await heygen.list_sessions()


async def test_answer_without_data_is_unexpected(sim: Simulator, heygen: HeyGenClient) -> None:
    sim.faults.add(Fault("status", path="/v1/streaming/avatar.list", status=200, code=100))
    with pytest.raises(UnexpectedResponse):
        await heygen.list_avatars()
