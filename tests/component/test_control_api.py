"""The control API (bridge/control/http.py) in-process: every refusal it can answer, and the
token rule, over aiohttp's test client in front of a real speech queue.

A refusal is JSON ``{error, detail}``: ``error`` a stable code, ``detail`` naming the cause;
and a refused request changes nothing (nothing is queued).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bridge.app import Bridge
from bridge.config import ControlConfig, Secret, Secrets, Settings, parse
from bridge.control.http import MAX_BODY, ControlServer
from bridge.control.queue import SpeechQueue
from bridge.errors import ConfigError
from bridge.eventbus import EventBus

TOKEN = "s3cret-control-token"
MAX_TEXT = 300  # the provider's limit per request, which the queue applies
MAX_TEXT = 1000  # the limit the queue is given: the provider's max_text
JPEG = b"\xff\xd8\xff\xe0 a camera frame \xff\xd9"

Client = TestClient[Any, Any]
Connect = Callable[[ControlServer], Awaitable[Client]]


def control_server(
    queue: SpeechQueue, *, host: str = "127.0.0.1", port: int = 0, token: str | None = None
) -> ControlServer:
    """The API over ``queue``; its status is the queue's, its snapshot a fixed JPEG."""

    async def snapshot_jpeg() -> bytes:
        return JPEG

    return ControlServer(
        ControlConfig(host=host, port=port),
        queue=queue,
        status=lambda: {"speech": queue.snapshot()},
        snapshot_jpeg=snapshot_jpeg,
        token=Secret(token) if token is not None else None,
    )


@pytest.fixture
def queue() -> SpeechQueue:
    return SpeechQueue(bus=EventBus(), max_text=MAX_TEXT)


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """``await connect(server)``: a test client talking to ``server``'s routes."""
    clients: list[Client] = []

    async def start(server: ControlServer) -> Client:
        client: Client = TestClient(TestServer(server.app()))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


@pytest.fixture
async def api(queue: SpeechQueue, connect: Connect) -> Client:
    return await connect(control_server(queue))


async def refusal(response: Any) -> tuple[int, str, str]:
    """(status, error, detail) of a JSON refusal."""
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) == {"error", "detail"}, body
    return response.status, body["error"], body["detail"]


# --- speak -------------------------------------------------------------------------------------


async def test_a_speak_request_is_queued_and_its_place_in_line_answered(
    api: Client, queue: SpeechQueue
) -> None:
    first = await api.post("/v1/speak", data=b'{"text": "Hello there"}')
    second = await api.post("/v1/speak", json={"text": "  And again  ", "mode": "chat"})
    assert first.status == 202 and second.status == 202
    assert await first.json() == {"id": "s1", "state": "queued", "position": 1}
    assert await second.json() == {"id": "s2", "state": "queued", "position": 2}
    recent = queue.snapshot()["recent"]
    assert [(r["text"], r["mode"]) for r in recent] == [
        ("Hello there", "repeat"),
        ("And again", "chat"),
    ]


async def test_text_at_the_length_limit_is_accepted(api: Client) -> None:
    response = await api.post("/v1/speak", json={"text": "a" * MAX_TEXT})
    assert response.status == 202


TOO_LONG = "a" * (MAX_TEXT + 1)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"", "body: is empty"),
        (b"  \n", "body: is empty"),
        (b"{not json", "body: is not valid JSON"),
        (b'{"text": "\xff\xfe"}', "body: is not valid JSON"),
        (b'["a list"]', "body: must be a JSON object"),
        (b'"a string"', "body: must be a JSON object"),
        (b"{}", "text: must be a string"),
        (b'{"text": null}', "text: must be a string"),
        (b'{"text": 5}', "text: must be a string"),
        (b'{"text": ""}', "text: is empty"),
        (b'{"text": "   "}', "text: is empty"),
        (b'{"text": "hi", "mode": "shout"}', "mode: 'shout' is not one of repeat, chat"),
        (b'{"text": "hi", "mode": null}', "mode: None is not one of repeat, chat"),
        (b'{"text": "hi", "volume": 3}', "volume: unknown field (allowed: text, mode)"),
        (
            f'{{"text": "{TOO_LONG}"}}'.encode(),
            f"text: is {MAX_TEXT + 1} characters; at most {MAX_TEXT} per request",
        ),
    ],
)
async def test_a_bad_speak_request_gets_400_naming_the_cause_and_queues_nothing(
    api: Client, queue: SpeechQueue, body: bytes, detail: str
) -> None:
    response = await api.post("/v1/speak", data=body)
    status, error, actual = await refusal(response)
    assert (status, error) == (400, "bad_request") and actual.startswith(detail), actual
    assert queue.snapshot() == {"pending": 0, "current": None, "recent": []}


async def test_a_full_queue_refuses_more_and_keeps_what_it_has(connect: Connect) -> None:
    queue = SpeechQueue(bus=EventBus(), max_text=MAX_TEXT, limit=2)
    api = await connect(control_server(queue))
    for text in ("one", "two"):
        assert (await api.post("/v1/speak", json={"text": text})).status == 202
    response = await api.post("/v1/speak", json={"text": "three"})
    status, error, detail = await refusal(response)
    assert (status, error) == (400, "bad_request")
    assert detail == "queue: is full (2 requests waiting); try again later"
    assert [r["text"] for r in queue.snapshot()["recent"]] == ["one", "two"]


async def test_a_body_over_the_limit_gets_413(api: Client, queue: SpeechQueue) -> None:
    response = await api.post("/v1/speak", data=b'{"text": "' + b"a" * MAX_BODY + b'"}')
    assert await refusal(response) == (413, "body_too_large", f"body: larger than {MAX_BODY} bytes")
    assert queue.snapshot()["pending"] == 0


# --- routes ------------------------------------------------------------------------------------


async def test_status_and_snapshot_answer(api: Client) -> None:
    status = await api.get("/v1/status")
    assert status.status == 200
    assert (await status.json())["speech"]["pending"] == 0
    snapshot = await api.get("/v1/snapshot.jpg")
    assert snapshot.status == 200 and snapshot.content_type == "image/jpeg"
    assert snapshot.headers["Cache-Control"] == "no-store"  # always the frame of now
    assert await snapshot.read() == JPEG


async def test_an_unknown_endpoint_gets_404_naming_it_and_the_real_ones(api: Client) -> None:
    status, error, detail = await refusal(await api.get("/v1/nope"))
    assert (status, error) == (404, "not_found")
    assert detail.startswith("GET /v1/nope: no such endpoint")
    assert "POST /v1/speak" in detail and "GET /v1/status" in detail


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("POST", "/v1/status", "GET"), ("GET", "/v1/speak", "POST"), ("PUT", "/v1/speak", "POST")],
)
async def test_a_wrong_method_gets_405_naming_the_right_one(
    api: Client, method: str, path: str, allowed: str
) -> None:
    response = await api.request(method, path, data=b"{}")
    assert await refusal(response) == (
        405,
        "method_not_allowed",
        f"{method} {path}: not allowed here; use {allowed}",
    )


async def test_a_snapshot_with_the_camera_disabled_gets_400_saying_so(connect: Connect) -> None:
    raw = {"provider": "demo", "camera": {"enabled": False}, "microphone": {"enabled": False}}
    bridge = Bridge(Settings(config=parse(raw), secrets=Secrets()))
    api = await connect(bridge.control)
    response = await api.get("/v1/snapshot.jpg")
    assert await refusal(response) == (
        400,
        "bad_request",
        "camera: is disabled (camera.enabled: false)",
    )


# --- the token rule ----------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "", "studio-pc.local"])
def test_listening_beyond_loopback_without_a_token_refuses_to_start(
    queue: SpeechQueue, host: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        control_server(queue, host=host)
    assert "control.host" in str(refused.value)
    assert "HEYGEN_BRIDGE_TOKEN" in str(refused.value)


def test_the_daemon_refuses_to_start_on_a_public_address_without_a_token() -> None:
    raw = {"provider": "demo", "control": {"host": "0.0.0.0"}, "microphone": {"enabled": False}}
    with pytest.raises(ConfigError, match="HEYGEN_BRIDGE_TOKEN"):
        Bridge(Settings(config=parse(raw), secrets=Secrets()))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "localhost", "::1"])
async def test_loopback_needs_no_token(queue: SpeechQueue, connect: Connect, host: str) -> None:
    api = await connect(control_server(queue, host=host))
    assert (await api.get("/v1/status")).status == 200


@pytest.fixture
async def guarded(queue: SpeechQueue, connect: Connect) -> Client:
    """The API listening on all interfaces, with a token."""
    return await connect(control_server(queue, host="0.0.0.0", token=TOKEN))


@pytest.mark.parametrize(
    ("headers", "query", "why"),
    [
        ({}, {}, "missing"),
        ({"Authorization": "Bearer "}, {}, "missing"),
        ({"Authorization": "bearer not-the-token"}, {}, "wrong"),
        ({"Authorization": "Bearer not-the-token"}, {}, "wrong"),
        ({"Authorization": f"Bearer {TOKEN}x"}, {}, "wrong"),
        ({"Authorization": f"Basic {TOKEN}"}, {}, "wrong"),
        ({}, {"token": "not-the-token"}, "wrong"),
        ({"Authorization": "Bearer not-the-token"}, {"token": TOKEN}, "wrong"),
    ],
)
async def test_a_missing_or_wrong_token_gets_401_and_changes_nothing(
    guarded: Client, queue: SpeechQueue, headers: dict[str, str], query: dict[str, str], why: str
) -> None:
    for path in ("/v1/status", "/v1/snapshot.jpg", "/v1/nope"):
        response = await guarded.get(path, headers=headers, params=query)
        status, error, detail = await refusal(response)
        assert (status, error) == (401, "unauthorized")
        assert detail.startswith(f"token: {why};") and "HEYGEN_BRIDGE_TOKEN" in detail
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert TOKEN not in detail
    speak = await guarded.post("/v1/speak", json={"text": "hi"}, headers=headers, params=query)
    assert speak.status == 401
    assert queue.snapshot()["pending"] == 0


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"Authorization": f"Bearer {TOKEN}"}, {}),
        ({"Authorization": f"bearer  {TOKEN}"}, {}),
        ({}, {"token": TOKEN}),
    ],
    ids=["bearer-header", "any-case-scheme", "query"],
)
async def test_the_right_token_is_let_in(
    guarded: Client, queue: SpeechQueue, headers: dict[str, str], query: dict[str, str]
) -> None:
    assert (await guarded.get("/v1/status", headers=headers, params=query)).status == 200
    speak = await guarded.post("/v1/speak", json={"text": "hi"}, headers=headers, params=query)
    assert speak.status == 202
    assert queue.snapshot()["pending"] == 1
    # Past the token, the other refusals are as without one.
    response = await guarded.get("/v1/nope", headers=headers, params=query)
    assert (await refusal(response))[:2] == (404, "not_found")


# --- listening ---------------------------------------------------------------------------------


async def test_the_server_listens_on_the_port_the_system_gave_it(queue: SpeechQueue) -> None:
    server = control_server(queue)
    await server.start()
    try:
        assert server.port != 0
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{server.port}/v1/status") as response,
        ):
            assert response.status == 200
    finally:
        await server.stop()


async def test_a_port_in_use_is_a_config_error_naming_control_port(queue: SpeechQueue) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = control_server(queue, port=port)
        with pytest.raises(ConfigError, match=f"control.port: cannot listen on 127.0.0.1:{port}"):
            await server.start()
