"""The LiveAvatar client against the LiveAvatar simulator, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bridge.config import ApiConfig, Secret
from bridge.errors import (
    ApiError,
    InvalidRequest,
    RateLimited,
    SessionGone,
    SessionLimitReached,
    Unauthorized,
    UnexpectedResponse,
)
from bridge.providers.liveavatar.client import LiveAvatarClient
from bridge.providers.liveavatar.models import (
    SANDBOX_AVATAR_ID,
    AvatarPersona,
    ElevenLabsVoiceSettings,
    FullTokenRequest,
    VideoSettings,
)
from bridge.sim.clock import ManualClock
from bridge.sim.faults import Fault
from bridge.sim.liveavatar import PUBLIC_AVATARS, USER_AVATARS
from bridge.sim.server import Simulator
from tests.kit.eventually import eventually
from tests.kit.liveavatar_sim import DEFAULT_LIVEAVATAR_KEY

ANN = PUBLIC_AVATARS[1]["id"]
MINE = USER_AVATARS[0]["id"]
NOT_READY = USER_AVATARS[1]["id"]
CONTEXT = "6c1d7f3e-2b4a-4e5f-8a9b-0c1d2e3f4a5b"

FULL_REQUEST = FullTokenRequest(
    avatar_id=MINE,
    avatar_persona=AvatarPersona(
        voice_id="5f0f2c8e-0c6b-4a86-9a3e-5f6d7a1b2c3d",
        context_id=CONTEXT,
        language="de",
        voice_settings=ElevenLabsVoiceSettings(
            speed=1.1,
            stability=0.5,
            similarity_boost=0.6,
            style=0.1,
            use_speaker_boost=False,
            model="eleven_multilingual_v2",
        ),
    ),
    video_settings=VideoSettings(quality="very_high", encoding="VP8"),
    is_sandbox=False,
    max_session_duration=600,
    interactivity_type="CONVERSATIONAL",
)
# What the client must send for FULL_REQUEST, field by field (LiveAvatar ignores a misspelt
# field, so only this comparison catches one).
FULL_BODY = {
    "mode": "FULL",
    "avatar_id": MINE,
    "avatar_persona": {
        "voice_id": "5f0f2c8e-0c6b-4a86-9a3e-5f6d7a1b2c3d",
        "context_id": CONTEXT,
        "language": "de",
        "voice_settings": {
            "provider": "elevenLabs",
            "speed": 1.1,
            "stability": 0.5,
            "similarity_boost": 0.6,
            "style": 0.1,
            "use_speaker_boost": False,
            "model": "eleven_multilingual_v2",
        },
    },
    "video_settings": {"quality": "very_high", "encoding": "VP8"},
    "is_sandbox": False,
    "max_session_duration": 600,
    "interactivity_type": "CONVERSATIONAL",
}
PLAIN = FullTokenRequest(avatar_id=ANN)


@pytest.fixture
async def lasim(clock: ManualClock) -> AsyncIterator[Simulator]:
    """The LiveAvatar fake on the test's clock (time moves on ``clock.advance``)."""
    async with Simulator(clock=clock) as harness:
        yield harness


@pytest.fixture
async def client(lasim: Simulator) -> AsyncIterator[LiveAvatarClient]:
    async with LiveAvatarClient(
        base_url=lasim.url, credential=Secret(DEFAULT_LIVEAVATAR_KEY), timeout=5, retry_deadline=5
    ) as la:
        yield la


async def raw(
    lasim: Simulator,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: Any = None,
    data: str | None = None,
) -> tuple[int, Any]:
    """One request exactly as a third-party client would send it."""
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, lasim.url + path, headers=headers, json=body, data=data) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


KEY = {"X-API-KEY": DEFAULT_LIVEAVATAR_KEY}


def bearer(token: Secret) -> dict[str, str]:
    return {"Authorization": f"Bearer {token.reveal()}"}


async def wait_state(lasim: Simulator, session_id: str, state: str) -> None:
    await eventually(
        lambda: lasim.liveavatar.sessions[session_id].state == state, what=f"state {state}"
    )


def end_reasons(lasim: Simulator) -> list[tuple[str, str]]:
    return [
        (e.kind, e.reason) for e in lasim.ledger.session_events if e.kind in ("stopped", "expired")
    ]


# --- the happy path ---------------------------------------------------------------------


async def test_full_session_lifecycle(lasim: Simulator, client: LiveAvatarClient) -> None:
    token = await client.create_session_token(FULL_REQUEST)
    assert lasim.ledger.bodies("/v1/sessions/token") == [FULL_BODY]
    session = lasim.liveavatar.sessions[token.session_id]
    assert session.ignored == []
    assert session.quality == "very_high" and session.encoding == "VP8"
    assert session.persona["voice_settings"]["speed"] == 1.1
    assert session.persona["voice_settings"]["model"] == "eleven_multilingual_v2"
    assert session.persona["context_id"] == CONTEXT and session.persona["language"] == "de"
    assert token.session_token.reveal() not in repr(token)

    start = await client.start_session(token.session_token)
    assert start.session_id == token.session_id
    assert start.livekit_url and start.livekit_client_token and start.livekit_agent_token
    assert start.max_session_duration == 600 and start.ws_url is None
    await wait_state(lasim, token.session_id, "connected")

    await client.keep_alive(token.session_id, token.session_token)  # Bearer
    await client.keep_alive(token.session_id)  # X-API-KEY
    active = await client.list_sessions("active")
    assert [s.id for s in active.results] == [token.session_id] and active.count == 1
    assert active.results[0].mode == "FULL" and not active.results[0].is_sandbox
    entry = await client.get_session(token.session_id)
    assert entry.id == token.session_id and entry.end_reason is None

    await client.stop(token.session_id, token=token.session_token)
    assert (await client.list_sessions("active")).count == 0
    historic = await client.list_sessions("historic")
    assert [(s.id, s.end_reason) for s in historic.results] == [(token.session_id, "USER_CLOSED")]
    assert historic.results[0].end_at is not None
    assert lasim.ledger.open_sessions() == []
    assert [e.kind for e in lasim.ledger.session_events] == [
        "created",
        "started",
        "connected",
        "stopped",
    ]
    auth = [(r.path, r.status, r.auth) for r in lasim.ledger.requests]
    assert auth[:2] == [
        ("/v1/sessions/token", 200, "api_key"),
        ("/v1/sessions/start", 201, "bearer"),
    ]
    assert ("/v1/sessions/keep-alive", 200, "bearer") in auth
    assert ("/v1/sessions/keep-alive", 200, "api_key") in auth
    assert ("/v1/sessions/stop", 200, "bearer") in auth
    assert lasim.ledger.bodies("/v1/sessions/start") == [None]  # no body, as the OpenAPI says
    assert lasim.ledger.bodies("/v1/sessions/keep-alive") == [{"session_id": token.session_id}] * 2
    assert lasim.ledger.bodies("/v1/sessions/stop") == [
        {"session_id": token.session_id, "reason": "USER_CLOSED"}
    ]


async def test_stop_with_the_api_key_and_a_reason(
    lasim: Simulator, client: LiveAvatarClient
) -> None:
    token = await client.create_session_token(PLAIN)
    await client.start_session(token.session_token)
    await client.stop(token.session_id, "USER_DISCONNECTED")
    assert end_reasons(lasim) == [("stopped", "USER_DISCONNECTED")]
    assert lasim.ledger.bodies("/v1/sessions/stop") == [
        {"session_id": token.session_id, "reason": "USER_DISCONNECTED"}
    ]
    assert lasim.ledger.requests_to("/v1/sessions/stop")[0].auth == "api_key"
    with pytest.raises(SessionGone) as gone:  # a stopped session is gone
        await client.keep_alive(token.session_id, token.session_token)
    assert gone.value.status == 404


async def test_start_answers_201_once_per_token(lasim: Simulator, client: LiveAvatarClient) -> None:
    token = await client.create_session_token(PLAIN)
    await client.start_session(token.session_token)
    with pytest.raises(InvalidRequest) as again:
        await client.start_session(token.session_token)
    assert "one session" in str(again.value)
    assert [r.status for r in lasim.ledger.requests_to("/v1/sessions/start")] == [201, 400]
    await client.stop(token.session_id)


@pytest.mark.parametrize("code", [100, 1000])
async def test_success_code_100_and_1000(
    lasim: Simulator, client: LiveAvatarClient, code: int
) -> None:
    lasim.liveavatar.limits.success_code = code
    token = await client.create_session_token(PLAIN)
    await client.start_session(token.session_token)
    assert (await client.list_avatars()).count == len(USER_AVATARS)
    await client.stop(token.session_id)


async def test_avatar_lists(lasim: Simulator, client: LiveAvatarClient) -> None:
    own = await client.list_avatars()
    assert [a.id for a in own.results] == [a["id"] for a in USER_AVATARS]
    assert {a.status for a in own.results} == {"ACTIVE", "INIT"}
    public = await client.list_public_avatars()
    wayne = public.results[0]
    assert (wayne.id, wayne.name, wayne.type) == (SANDBOX_AVATAR_ID, "Wayne", "VIDEO")
    assert wayne.default_voice is not None and wayne.created_at is not None
    paths = {r.path: r.auth for r in lasim.ledger.requests}
    assert paths == {"/v1/avatars": "api_key", "/v1/avatars/public": "none"}


async def test_public_avatars_need_no_key(lasim: Simulator) -> None:
    async with LiveAvatarClient(base_url=lasim.url, credential=Secret("no-such-key")) as la:
        assert (await la.list_public_avatars()).count == len(PUBLIC_AVATARS)
        with pytest.raises(Unauthorized):
            await la.list_avatars()


async def test_session_list_is_paginated(lasim: Simulator, client: LiveAvatarClient) -> None:
    ids = [(await client.create_session_token(PLAIN)).session_id for _ in range(3)]
    first = await client.list_sessions("active", page=1, page_size=2)
    assert first.count == 3 and len(first.results) == 2
    assert first.previous is None and first.next is not None and "page=2" in first.next
    second = await client.list_sessions("active", page=2, page_size=2)
    assert len(second.results) == 1 and second.next is None and second.previous is not None
    assert {s.id for s in first.results + second.results} == set(ids)
    for session_id in ids:
        await client.stop(session_id)


async def test_real_client_variants_are_accepted(
    lasim: Simulator, client: LiveAvatarClient
) -> None:
    # LiveKit's plugin: top-level video_quality, start with {session_id}, stop with a reason.
    status, answer = await raw(
        lasim,
        "POST",
        "/v1/sessions/token",
        headers=KEY,
        body={"mode": "FULL", "avatar_id": ANN, "video_quality": "low", "is_sandbox": False},
    )
    assert status == 200 and answer["code"] == 1000 and answer["message"] == "success"
    lk = answer["data"]
    assert lasim.liveavatar.sessions[lk["session_id"]].quality == "low"
    lk_auth = {"Authorization": f"Bearer {lk['session_token']}"}
    status, answer = await raw(
        lasim, "POST", "/v1/sessions/start", headers=lk_auth, body={"session_id": lk["session_id"]}
    )
    assert status == 201 and answer["data"]["livekit_client_token"]
    # The starter agent: start with {}; the SDK: keep-alive and stop with no body (Bearer).
    token = await client.create_session_token(PLAIN)
    status, _ = await raw(
        lasim, "POST", "/v1/sessions/start", headers=bearer(token.session_token), body={}
    )
    assert status == 201
    status, _ = await raw(
        lasim, "POST", "/v1/sessions/keep-alive", headers=bearer(token.session_token)
    )
    assert status == 200
    status, _ = await raw(lasim, "POST", "/v1/sessions/stop", headers=bearer(token.session_token))
    assert status == 200
    # Stop with a body but no reason: the schema's default, UNKNOWN.
    status, _ = await raw(
        lasim, "POST", "/v1/sessions/stop", headers=lk_auth, body={"session_id": lk["session_id"]}
    )
    assert status == 200
    assert end_reasons(lasim) == [("stopped", "USER_CLOSED"), ("stopped", "UNKNOWN")]
    # DELETE is not a route (DEMO's stop): 405, and nothing is stopped.
    status, _ = await raw(lasim, "DELETE", f"/v1/sessions/{lk['session_id']}", headers=lk_auth)
    assert status == 405


async def test_a_misspelt_field_is_ignored_as_the_service_does(lasim: Simulator) -> None:
    body = {"mode": "FULL", "avatar_id": ANN, "avatar_persona": {"contex_id": CONTEXT}}
    status, answer = await raw(lasim, "POST", "/v1/sessions/token", headers=KEY, body=body)
    assert status == 200  # FastAPI ignores what its schema does not name...
    session = lasim.liveavatar.sessions[answer["data"]["session_id"]]
    assert session.persona["context_id"] is None
    assert session.ignored == ["avatar_persona.contex_id"]  # ...and the fake names it
    assert lasim.ledger.bodies("/v1/sessions/token") == [body]


async def test_null_means_not_given(lasim: Simulator) -> None:
    body = {
        "mode": "FULL",
        "avatar_id": ANN,
        "avatar_persona": {"voice_id": None, "context_id": None, "language": None},
        "is_sandbox": None,
        "video_settings": {"quality": None, "encoding": "VP8"},
        "max_session_duration": None,
        "interactivity_type": None,
        "llm_configuration_id": None,
    }
    status, answer = await raw(lasim, "POST", "/v1/sessions/token", headers=KEY, body=body)
    assert status == 200, answer
    session = lasim.liveavatar.sessions[answer["data"]["session_id"]]
    assert (session.persona["language"], session.is_sandbox) == ("en", False)
    assert (session.quality, session.encoding) == ("high", "VP8")
    assert (session.interactivity, session.max_duration) == ("CONVERSATIONAL", 1200)
    status, answer = await raw(
        lasim, "POST", "/v1/sessions/token", headers=KEY, body={"mode": "FULL", "avatar_id": None}
    )
    assert status == 422  # a required field is still required
    assert answer["detail"][0]["loc"] == ["body", "FULL", "avatar_id"]


async def test_auth_per_endpoint(lasim: Simulator, client: LiveAvatarClient) -> None:
    token = await client.create_session_token(PLAIN)
    # start takes the session token only
    status, answer = await raw(lasim, "POST", "/v1/sessions/start", headers=KEY)
    assert status == 401 and "Bearer" in answer["message"]
    # a session token cannot mint a token nor list
    body = {"mode": "FULL", "avatar_id": ANN}
    status, answer = await raw(
        lasim, "POST", "/v1/sessions/token", headers=bearer(token.session_token), body=body
    )
    assert status == 401 and "X-API-KEY" in answer["message"]
    status, _ = await raw(
        lasim, "GET", "/v1/sessions?type=active", headers=bearer(token.session_token)
    )
    assert status == 401
    # with the key, stop needs to say which session
    status, answer = await raw(lasim, "POST", "/v1/sessions/stop", headers=KEY, body={})
    assert status == 400 and "session_id" in answer["message"]
    # a token speaks for its own session only
    other = await client.create_session_token(PLAIN)
    status, _ = await raw(
        lasim,
        "POST",
        "/v1/sessions/keep-alive",
        headers=bearer(token.session_token),
        body={"session_id": other.session_id},
    )
    assert status == 403
    for session_id in (token.session_id, other.session_id):
        await client.stop(session_id)


# --- refusals ---------------------------------------------------------------------------


async def test_422_names_the_field(lasim: Simulator, client: LiveAvatarClient) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await client.create_session_token(FullTokenRequest(avatar_id="not-a-uuid"))
    assert caught.value.status == 422 and caught.value.code is None
    assert "avatar_id" in str(caught.value) and "UUID" in str(caught.value)
    assert "heygen-bridge avatars" in str(caught.value)
    assert len(lasim.ledger.requests_to("/v1/sessions/token")) == 1  # not retried


@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
        ({"mode": "HALF", "avatar_id": ANN}, ["body"], "union_tag_invalid"),
        ({"avatar_id": ANN}, ["body"], "union_tag_not_found"),
        ({"mode": "FULL"}, ["body", "FULL", "avatar_id"], "missing"),
        (
            {"mode": "FULL", "avatar_id": "Wayne_20240711"},
            ["body", "FULL", "avatar_id"],
            "uuid_parsing",
        ),
        (
            {"mode": "FULL", "avatar_id": ANN, "video_settings": {"quality": "ultra"}},
            ["body", "FULL", "video_settings", "quality"],
            "literal_error",
        ),
        (
            {
                "mode": "FULL",
                "avatar_id": ANN,
                "avatar_persona": {"voice_settings": {"provider": "elevenLabs", "speed": 1.5}},
            },
            ["body", "FULL", "avatar_persona", "voice_settings", "elevenLabs", "speed"],
            "less_than_equal",
        ),
        (
            {"mode": "FULL", "avatar_id": ANN, "interactivity_type": "WALKIE_TALKIE"},
            ["body", "FULL", "interactivity_type"],
            "literal_error",
        ),
        ([1, 2], ["body"], "model_attributes_type"),
    ],
)
async def test_invalid_bodies_get_fastapi_422(
    lasim: Simulator, body: Any, loc: list[Any], kind: str
) -> None:
    status, answer = await raw(lasim, "POST", "/v1/sessions/token", headers=KEY, body=body)
    assert status == 422
    problem = answer["detail"][0]
    assert (problem["loc"], problem["type"]) == (loc, kind) and problem["msg"]
    assert lasim.liveavatar.sessions == {}


async def test_422_for_missing_or_broken_body_and_bad_query(lasim: Simulator) -> None:
    status, answer = await raw(lasim, "POST", "/v1/sessions/token", headers=KEY)
    assert status == 422 and answer["detail"][0]["type"] == "missing"
    status, answer = await raw(lasim, "POST", "/v1/sessions/token", headers=KEY, data="{nope")
    assert status == 422 and answer["detail"][0]["type"] == "json_invalid"
    status, answer = await raw(lasim, "GET", "/v1/sessions", headers=KEY)
    assert status == 422 and answer["detail"][0]["loc"] == ["query", "type"]
    status, answer = await raw(lasim, "GET", "/v1/sessions?type=active&page_size=500", headers=KEY)
    assert status == 422 and answer["detail"][0]["loc"] == ["query", "page_size"]
    status, answer = await raw(lasim, "GET", "/v1/sessions/12", headers=KEY)
    assert status == 422 and answer["detail"][0]["loc"] == ["path", "session_id"]
    status, answer = await raw(
        lasim,
        "POST",
        "/v1/sessions/stop",
        headers=KEY,
        body={"session_id": str(uuid.uuid4()), "reason": "BORED"},
    )
    assert status == 422 and answer["detail"][0]["loc"] == ["body", "reason"]


async def test_wrong_key_names_the_variable_and_hides_the_key(lasim: Simulator) -> None:
    wrong = "sim-heygen-key"  # a HeyGen key is just a wrong key here
    async with LiveAvatarClient(base_url=lasim.url, credential=Secret(wrong)) as la:
        with pytest.raises(Unauthorized) as caught:
            await la.create_session_token(PLAIN)
    message = str(caught.value)
    assert "LIVEAVATAR_API_KEY" in message and "app.liveavatar.com/developers" in message
    assert "HeyGen API keys do not work on LiveAvatar" in message
    assert wrong not in message
    assert caught.value.status == 401 and not caught.value.retryable
    assert len(lasim.ledger.requests_to("/v1/sessions/token")) == 1


async def test_bad_session_token_is_explained(lasim: Simulator, client: LiveAvatarClient) -> None:
    bogus = Secret("not-a-session-token")
    with pytest.raises(Unauthorized) as caught:
        await client.start_session(bogus)
    message = str(caught.value)
    assert "session token was not accepted" in message and bogus.reveal() not in message


async def test_unknown_session_is_gone(client: LiveAvatarClient) -> None:
    nobody = str(uuid.uuid4())
    with pytest.raises(SessionGone):
        await client.keep_alive(nobody)
    with pytest.raises(SessionGone):
        await client.stop(nobody)
    with pytest.raises(SessionGone) as caught:
        await client.get_session(nobody)
    assert str(caught.value).startswith("LiveAvatar refused sessions/{session_id}")


async def test_avatar_refusals_point_at_the_avatar_list(client: LiveAvatarClient) -> None:
    with pytest.raises(InvalidRequest) as unknown:
        await client.create_session_token(FullTokenRequest(avatar_id=str(uuid.uuid4())))
    assert unknown.value.status == 404 and "not found" in str(unknown.value)
    assert "heygen-bridge avatars" in str(unknown.value)
    with pytest.raises(InvalidRequest) as not_ready:
        await client.create_session_token(FullTokenRequest(avatar_id=NOT_READY))
    assert "not ready (status INIT)" in str(not_ready.value)


async def test_duration_over_the_plan_is_refused(client: LiveAvatarClient) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await client.create_session_token(
            FullTokenRequest(avatar_id=ANN, max_session_duration=99999)
        )
    assert "limit of your plan (1200 seconds)" in str(caught.value)


async def test_concurrency_cap(lasim: Simulator, client: LiveAvatarClient) -> None:
    lasim.liveavatar.limits.max_concurrent = 2
    ids = [(await client.create_session_token(PLAIN)).session_id for _ in range(2)]
    with pytest.raises(SessionLimitReached) as caught:
        await client.create_session_token(PLAIN)
    assert str(caught.value) == (
        "LiveAvatar refused sessions/token: concurrent session limit reached (code 400). "
        "Stop sessions you no longer need with: heygen-bridge sessions stop --all"
    )
    await client.stop(ids[0])
    ids[0] = (await client.create_session_token(PLAIN)).session_id  # room again
    for session_id in ids:
        await client.stop(session_id)


async def test_sandbox_allows_only_wayne_and_ends_after_a_minute(
    lasim: Simulator, client: LiveAvatarClient, clock: ManualClock
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await client.create_session_token(FullTokenRequest(avatar_id=ANN, is_sandbox=True))
    assert "only supports the avatar Wayne" in str(caught.value)
    assert SANDBOX_AVATAR_ID in str(caught.value)
    assert "set avatar.sandbox: false" in str(caught.value)
    token = await client.create_session_token(
        FullTokenRequest(avatar_id=SANDBOX_AVATAR_ID, is_sandbox=True)
    )
    start = await client.start_session(token.session_token)
    assert start.max_session_duration == 60
    await clock.advance(59)
    await client.keep_alive(token.session_id, token.session_token)  # alive before the minute
    await clock.advance(2)
    with pytest.raises(SessionGone):
        await client.keep_alive(token.session_id, token.session_token)
    assert end_reasons(lasim) == [("expired", "MAX_DURATION_REACHED")]
    entry = await client.get_session(token.session_id)
    assert (
        entry.is_sandbox
        and entry.credits_consumed == 0
        and entry.end_reason == ("MAX_DURATION_REACHED")
    )


async def test_max_session_duration_ends_the_session(
    lasim: Simulator, client: LiveAvatarClient, clock: ManualClock
) -> None:
    token = await client.create_session_token(
        FullTokenRequest(avatar_id=ANN, max_session_duration=20)
    )
    await client.start_session(token.session_token)
    await clock.advance(19)
    assert end_reasons(lasim) == []
    await clock.advance(2)
    assert end_reasons(lasim) == [("expired", "MAX_DURATION_REACHED")]
    assert (await client.list_sessions("historic")).results[0].end_reason == "MAX_DURATION_REACHED"


async def test_idle_timeout_is_reset_by_keep_alive(
    lasim: Simulator, client: LiveAvatarClient, clock: ManualClock
) -> None:
    token = await client.create_session_token(PLAIN)
    await client.start_session(token.session_token)
    for _ in range(3):  # keep-alives hold it open for twice the 5-minute idle timeout
        await clock.advance(200)
        await client.keep_alive(token.session_id, token.session_token)
    await clock.advance(299)
    assert end_reasons(lasim) == []
    await clock.advance(2)
    assert end_reasons(lasim) == [("expired", "IDLE_TIMEOUT")]


async def test_a_token_never_started_is_reaped(
    lasim: Simulator, client: LiveAvatarClient, clock: ManualClock
) -> None:
    token = await client.create_session_token(PLAIN)
    await clock.advance(299)
    assert end_reasons(lasim) == []
    await clock.advance(2)
    assert end_reasons(lasim) == [("expired", "ZOMBIE_SESSION_REAP")]
    with pytest.raises(SessionGone):
        await client.start_session(token.session_token)


# --- transport and envelope -------------------------------------------------------------


async def test_http_200_with_a_failure_code_is_an_error(
    lasim: Simulator, client: LiveAvatarClient
) -> None:
    lasim.faults.add(Fault("status", path="/v1/avatars", status=200, code=4000, message="nope"))
    with pytest.raises(ApiError) as caught:
        await client.list_avatars()
    assert caught.value.code == 4000 and "nope" in str(caught.value)


async def test_answer_without_data_is_unexpected(
    lasim: Simulator, client: LiveAvatarClient
) -> None:
    lasim.faults.add(Fault("status", path="/v1/avatars", status=200, code=1000))
    with pytest.raises(UnexpectedResponse):
        await client.list_avatars()


async def test_429_waits_retry_after(lasim: Simulator, client: LiveAvatarClient) -> None:
    lasim.faults.add(Fault("status", path="/v1/sessions/token", status=429, retry_after=0.3))
    loop = asyncio.get_running_loop()
    started = loop.time()
    token = await client.create_session_token(PLAIN)  # 429: the server did not act
    assert loop.time() - started >= 0.3
    assert [r.status for r in lasim.ledger.requests_to("/v1/sessions/token")] == [429, 200]
    await client.stop(token.session_id)


async def test_429_past_the_deadline_is_raised(lasim: Simulator) -> None:
    lasim.faults.add(Fault("status", path="/v1/avatars", status=429, retry_after=30))
    async with LiveAvatarClient(
        base_url=lasim.url, credential=Secret(DEFAULT_LIVEAVATAR_KEY), retry_deadline=1
    ) as la:
        with pytest.raises(RateLimited) as caught:
            await la.list_avatars()
    assert caught.value.retry_after == 30 and caught.value.retryable


async def test_succeeds_after_two_injected_503s(lasim: Simulator, client: LiveAvatarClient) -> None:
    lasim.faults.add(Fault("status", path="/v1/sessions", status=503, times=2))
    assert (await client.list_sessions("active")).count == 0
    assert [r.status for r in lasim.ledger.requests_to("/v1/sessions")] == [503, 503, 200]


async def test_4xx_is_not_retried(lasim: Simulator, client: LiveAvatarClient) -> None:
    lasim.faults.add(Fault("status", path="/v1/sessions", status=400, code=400, times=5))
    with pytest.raises(InvalidRequest):
        await client.list_sessions("historic")
    assert len(lasim.ledger.requests_to("/v1/sessions")) == 1


async def test_from_config(lasim: Simulator) -> None:
    api = ApiConfig(base_url=lasim.url, timeout=3, retry_deadline=1)
    async with LiveAvatarClient.from_config(api, Secret(DEFAULT_LIVEAVATAR_KEY)) as la:
        assert (await la.list_avatars()).count == len(USER_AVATARS)
