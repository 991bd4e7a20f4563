"""The control API's routes over real HTTP on loopback, in front of a real speech queue: what
each answers, and every bad input with its status code.

A refusal is JSON ``{error, detail}`` (``error`` a stable code, ``detail`` naming the cause)
and changes nothing: not the queue, not its counts, no event.  The guard (token, Host, other
sites' pages, CORS) has its own file: test_control_guard.py; metrics and probes:
test_control_metrics.py; the OpenAPI document: test_openapi.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bridge.config import ControlConfig, RateLimitConfig
from bridge.control.http import MAX_BODY, ControlServer
from bridge.control.queue import SpeechQueue
from bridge.errors import ConfigError
from bridge.eventbus import EventBus
from tests.kit.control_api import JPEG, MAX_ITEM, MAX_TEXT, Api, Avatar, refusal
from tests.kit.eventually import eventually


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    served = await Api.serve()
    yield served
    await served.close()


def sole_item(body: dict[str, Any]) -> dict[str, Any]:
    assert len(body["items"]) == 1, body
    item: dict[str, Any] = body["items"][0]
    return item


# --- speak: what is accepted -------------------------------------------------------------------


async def test_a_speak_request_is_answered_202_at_once_with_its_items_and_place(api: Api) -> None:
    first = await api.http.post("/v1/speak", json={"text": "Hello there"})
    second = await api.http.post("/v1/speak", json={"text": "And again", "mode": "chat"})
    assert first.status == 202 and second.status == 202
    one, two = await first.json(), await second.json()
    assert (one["id"], one["position"]) == ("r1", 1)
    assert (two["id"], two["position"]) == ("r2", 2)
    item = sole_item(two)
    assert item["request_id"] == "r2" and item["state"] == "queued"
    assert (item["text"], item["mode"], item["priority"]) == ("And again", "chat", "normal")
    assert item["source"] == "http:127.0.0.1"
    assert api.texts() == ["Hello there", "And again"]


# Every way a client can send the same request; all must queue it.
URLENCODED_TYPE = "application/x-www-form-urlencoded"


def multipart() -> aiohttp.FormData:
    form = aiohttp.FormData()
    # A part with its own Content-Type makes the form multipart (else it is urlencoded).
    form.add_field("text", "Hi from a form", content_type="text/plain; charset=utf-8")
    form.add_field("mode", "chat")
    return form


@pytest.mark.parametrize(
    ("method", "kwargs", "text", "mode"),
    [
        ("POST", {"json": {"text": "Hi", "mode": "chat"}}, "Hi", "chat"),
        ("POST", {"data": b'{"text": "Hi"}'}, "Hi", "repeat"),  # octet-stream: JSON
        ("POST", {"data": b'{"text": "Hi"}', "headers": {"Content-Type": ""}}, "Hi", "repeat"),
        (  # Stream Deck's Web Requests plugin: JSON labelled text/plain
            "POST",
            {"data": '{"text": "Hi"}', "headers": {"Content-Type": "text/plain"}},
            "Hi",
            "repeat",
        ),
        (
            "POST",
            {"data": "Hi, plain words", "headers": {"Content-Type": "text/plain; charset=utf-8"}},
            "Hi, plain words",
            "repeat",
        ),
        (
            "POST",
            {
                "data": "Grüße".encode("latin-1"),
                "headers": {"Content-Type": "text/plain; charset=latin-1"},
            },
            "Grüße",
            "repeat",
        ),
        (  # curl -d '{"text": ...}': JSON labelled as a form
            "POST",
            {"data": b'{"text": "Hi"}', "headers": {"Content-Type": URLENCODED_TYPE}},
            "Hi",
            "repeat",
        ),
        ("POST", {"data": {"text": "Hi from a form", "mode": "chat"}}, "Hi from a form", "chat"),
        ("POST", {"data": "__multipart__"}, "Hi from a form", "chat"),
        ("POST", {"params": {"text": "Hi"}, "json": {}}, "Hi", "repeat"),  # Companion's URL
        ("POST", {"params": {"text": "Hi"}, "json": {"mode": "chat"}}, "Hi", "chat"),
        (
            "GET",
            {"params": {"text": "Hi from a button", "mode": "chat"}},
            "Hi from a button",
            "chat",
        ),
        ("GET", {"params": {"text": "plus+and%20space"}}, "plus+and%20space", "repeat"),
    ],
    ids=[
        "json",
        "json-as-octet-stream",
        "json-no-content-type",
        "json-as-text-plain",
        "text-plain",
        "text-plain-latin1",
        "json-as-form",
        "form-urlencoded",
        "form-multipart",
        "query-and-empty-json",
        "query-and-json",
        "get-query",
        "get-query-encoded",
    ],
)
async def test_every_way_a_client_can_send_text_queues_it(
    api: Api, method: str, kwargs: dict[str, Any], text: str, mode: str
) -> None:
    if kwargs.get("data") == "__multipart__":
        kwargs = {"data": multipart()}
    response = await api.http.request(method, "/v1/speak", **kwargs)
    assert response.status == 202, await response.text()
    item = sole_item(await response.json())
    assert (item["text"], item["mode"]) == (text, mode)
    assert api.texts() == [text]


async def test_a_get_speak_url_as_stream_deck_sends_it_works(api: Api) -> None:
    url = "/v1/speak?text=Be%20right%20back&mode=repeat&priority=normal"
    response = await api.http.get(url, headers={"Accept": "*/*"})
    assert response.status == 202
    assert api.texts() == ["Be right back"]


async def test_a_get_may_carry_as_much_text_as_a_body(api: Api) -> None:
    """1000 CJK characters are 9000 bytes percent-encoded: more than aiohttp's default
    request line of 8190 bytes."""
    text = "漢" * MAX_TEXT
    response = await api.http.get("/v1/speak", params={"text": text})
    assert response.status == 202
    assert "".join(api.texts()) == text


async def test_a_long_text_becomes_consecutive_items_of_one_request(api: Api) -> None:
    sentences = [f"This is sentence number {n} of a long speech." for n in range(1, 9)]
    response = await api.http.post("/v1/speak", json={"text": " ".join(sentences)})
    assert response.status == 202
    body = await response.json()
    items = body["items"]
    assert len(items) > 1 and all(len(i["text"]) <= MAX_ITEM for i in items)
    assert {i["request_id"] for i in items} == {body["id"]}
    assert [i["part"] for i in items] == list(range(1, len(items) + 1))
    assert " ".join(i["text"] for i in items) == " ".join(sentences)


async def test_now_goes_first(api: Api) -> None:
    for text in ("first", "second"):
        assert (await api.http.post("/v1/speak", json={"text": text})).status == 202
    response = await api.http.get("/v1/speak", params={"text": "urgent", "priority": "now"})
    assert response.status == 202
    assert (await response.json())["position"] == 1
    assert api.texts() == ["urgent", "first", "second"]


async def test_control_characters_are_removed_before_the_avatar_hears_them(api: Api) -> None:
    response = await api.http.post("/v1/speak", json={"text": "Hel\x00lo\x07 there\x1b[31m\nbye"})
    assert response.status == 202
    (text,) = api.texts()
    assert text.startswith("Hello there") and text.endswith("\nbye")
    assert not any(ord(c) < 32 and c not in "\n\t" for c in text)


# --- speak: what is refused --------------------------------------------------------------------

TOO_LONG = "a" * (MAX_TEXT + 1)
PLAIN = {"Content-Type": "text/plain"}
URLENCODED = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    ("method", "kwargs", "detail"),
    [
        ("POST", {"data": b""}, "body: is empty"),
        ("POST", {"data": b"  \n"}, "body: is empty"),
        ("POST", {"data": b"{not json"}, "body: is not valid JSON"),
        ("POST", {"data": b"{not json", "headers": PLAIN}, "body: is not valid JSON"),
        ("POST", {"data": b'{"text": "\xff\xfe"}'}, "body: is not valid JSON"),
        ("POST", {"data": b"[" * 10_000 + b"]" * 10_000}, "body: is not valid JSON"),
        ("POST", {"data": b'["a list"]'}, "body: must be a JSON object"),
        ("POST", {"data": b'"a string"'}, "body: must be a JSON object"),
        ("POST", {"data": b"{}"}, "text: missing"),
        ("POST", {"data": b'{"text": null}'}, "text: must be a string"),
        ("POST", {"data": b'{"text": 5}'}, "text: must be a string"),
        ("POST", {"data": b'{"text": ["hi"]}'}, "text: must be a string"),
        ("POST", {"data": b'{"text": ""}'}, "text: is empty"),
        ("POST", {"data": b'{"text": "   \\n\\t "}'}, "text: is empty"),
        ("POST", {"data": b'{"text": "\\u0000\\u0007\\u001b"}'}, "text: is empty"),
        ("POST", {"data": b'{"text": "hi \\ud800 there"}'}, "text: "),
        ("POST", {"data": b'{"text": "\\udfff"}'}, "text: "),
        ("POST", {"data": b'{"text": "hi", "mode": "shout"}'}, "mode: 'shout' is not one of"),
        ("POST", {"data": b'{"text": "hi", "mode": null}'}, "mode: None is not one of"),
        ("POST", {"data": b'{"text": "hi", "mode": 1}'}, "mode: 1 is not one of"),
        ("POST", {"data": b'{"text": "hi", "priority": "urgent"}'}, "priority: 'urgent' is not"),
        ("POST", {"data": b'{"text": "hi", "priority": true}'}, "priority: True is not one of"),
        ("POST", {"data": b'{"text": "hi", "volume": 3}'}, "volume: unknown field"),
        ("POST", {"data": b'{"text": "hi", "token": "x"}'}, "token: unknown field"),
        ("POST", {"data": json.dumps({"text": TOO_LONG}).encode()}, f"text: is {MAX_TEXT + 1}"),
        ("POST", {"data": b"\xff\xfe not utf-8", "headers": PLAIN}, "body: is not valid utf-8"),
        (
            "POST",
            {"data": b"hi", "headers": {"Content-Type": "text/plain; charset=klingon"}},
            "Content-Type: charset 'klingon' is unknown",
        ),
        ("POST", {"data": b"text=%ff", "headers": URLENCODED}, "body: is not valid UTF-8"),
        ("POST", {"data": b"text=a&text=b", "headers": URLENCODED}, "text: given twice"),
        ("POST", {"data": b"text=hi&colour=red", "headers": URLENCODED}, "colour: unknown field"),
        ("POST", {"data": "__file__"}, "text: is a file"),
        ("POST", {"params": {"text": "a"}, "json": {"text": "b"}}, "text: given both"),
        ("GET", {}, "text: missing"),
        ("GET", {"params": {"text": ""}}, "text: is empty"),
        ("GET", {"params": {"text": "hi", "volume": "3"}}, "volume: unknown field"),
        ("GET", {"params": {"text": "hi", "mode": "shout"}}, "mode: 'shout' is not one of"),
        ("GET", {"params": [("text", "a"), ("text", "b")]}, "text: given twice"),
        ("GET", {"params": {"text": TOO_LONG}}, f"text: is {MAX_TEXT + 1}"),
    ],
)
async def test_a_bad_speak_request_gets_400_naming_the_cause_and_changes_nothing(
    api: Api, method: str, kwargs: dict[str, Any], detail: str
) -> None:
    if kwargs.get("data") == "__file__":
        form = aiohttp.FormData()
        form.add_field("text", b"hi", filename="speech.txt")
        kwargs = {"data": form}
    before = api.state()
    response = await api.http.request(method, "/v1/speak", **kwargs)
    status, error, actual = await refusal(response)
    assert (status, error) == (400, "bad_request") and actual.startswith(detail), actual
    assert api.state() == before


@pytest.mark.parametrize(
    "raw_query",
    ["text=%ff", "text=%ED%A0%80", "text=%C0%AF"],
    ids=["bad-utf8", "encoded-surrogate", "overlong"],
)
async def test_a_query_that_is_not_utf8_gets_400(api: Api, raw_query: str) -> None:
    before = api.state()
    response = await api.http.get(f"/v1/speak?{raw_query}")
    status, _, detail = await refusal(response)
    assert status == 400 and detail.startswith("query: is not valid UTF-8"), detail
    assert api.state() == before


async def test_a_body_over_the_limit_gets_413_and_changes_nothing(api: Api) -> None:
    before = api.state()
    response = await api.http.post("/v1/speak", data=b'{"text": "' + b"a" * MAX_BODY + b'"}')
    assert await refusal(response) == (413, "body_too_large", f"body: larger than {MAX_BODY} bytes")
    form = await api.http.post("/v1/speak", data={"text": "a" * MAX_BODY})
    assert (await refusal(form))[0] == 413
    assert api.state() == before


async def test_a_full_queue_answers_429_with_retry_after_and_keeps_what_it_has() -> None:
    api = await Api.serve(limit=2)
    try:
        for text in ("one", "two"):
            assert (await api.http.post("/v1/speak", json={"text": text})).status == 202
        before = api.state()
        response = await api.http.post("/v1/speak", json={"text": "three"})
        status, error, detail = await refusal(response)
        assert (status, error) == (429, "busy") and detail.startswith("queue: is full")
        assert int(response.headers["Retry-After"]) >= 1
        assert api.state() == before
        assert api.texts() == ["one", "two"]
    finally:
        await api.close()


async def test_a_client_over_its_rate_gets_429_with_retry_after() -> None:
    api = await Api.serve(rate=RateLimitConfig(per_minute=1, burst=2))
    try:
        for text in ("one", "two"):
            assert (await api.http.get("/v1/speak", params={"text": text})).status == 202
        before = api.state()
        response = await api.http.get("/v1/speak", params={"text": "three"})
        assert (await refusal(response))[:2] == (429, "busy")
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        assert api.state() == before
    finally:
        await api.close()


async def test_a_head_request_never_speaks(api: Api) -> None:
    for path in ("/v1/speak?text=hi", "/v1/presets/hello"):
        response = await api.http.head(path)
        assert response.status == 405
    assert api.texts() == []


# --- the queue ---------------------------------------------------------------------------------


async def test_the_queue_lists_items_in_speaking_order(api: Api) -> None:
    await api.http.post("/v1/speak", json={"text": "one"})
    await api.http.post("/v1/speak", json={"text": "two", "priority": "now"})
    response = await api.http.get("/v1/queue")
    assert response.status == 200
    body = await response.json()
    assert (body["speaking"], body["depth"]) == (False, 2)
    assert [i["text"] for i in body["items"]] == ["two", "one"]
    assert {i["text"] for i in body["recent"]} == {"one", "two"}


async def test_one_item_can_be_read_and_removed_and_an_unknown_id_is_404(api: Api) -> None:
    accepted = await (await api.http.post("/v1/speak", json={"text": "to go"})).json()
    await api.http.post("/v1/speak", json={"text": "to stay"})
    item_id = sole_item(accepted)["id"]
    read = await api.http.get(f"/v1/queue/{item_id}")
    assert read.status == 200 and (await read.json())["text"] == "to go"
    removed = await api.http.delete(f"/v1/queue/{item_id}")
    assert removed.status == 200
    assert (await removed.json())["removed"]["state"] == "dropped"
    assert api.texts() == ["to stay"]
    before = api.state()
    for method, path in [
        ("DELETE", f"/v1/queue/{item_id}"),  # no longer waiting
        ("DELETE", "/v1/queue/s999"),
        ("GET", "/v1/queue/s999"),
    ]:
        status, error, detail = await refusal(await api.http.request(method, path))
        assert (status, error) == (404, "not_found") and detail.startswith("queue item")
    assert api.state() == before


async def test_clear_drops_every_waiting_item_and_says_which(api: Api) -> None:
    for text in ("one", "two"):
        await api.http.post("/v1/speak", json={"text": text})
    response = await api.http.post("/v1/queue/clear")
    assert response.status == 200
    cleared = (await response.json())["cleared"]
    assert [(i["text"], i["state"]) for i in cleared] == [("one", "dropped"), ("two", "dropped")]
    assert api.texts() == [] and api.queue.finished["dropped"] == 2


async def test_interrupt_stops_the_current_speech_or_says_there_is_no_session(api: Api) -> None:
    before = api.state()
    status, error, detail = await refusal(await api.http.post("/v1/interrupt"))
    assert (status, error) == (409, "conflict") and detail
    assert api.state() == before
    avatar = Avatar()
    runner = asyncio.create_task(api.queue.run(avatar), name="speech-queue")
    try:
        await api.http.post("/v1/speak", json={"text": "a long speech"})
        await eventually(lambda: api.queue.speaking, what="the item being sent")
        response = await api.http.post("/v1/interrupt")
        assert response.status == 200
        stopped = (await response.json())["interrupted"]
        assert (stopped["text"], stopped["state"]) == ("a long speech", "dropped")
        assert avatar.interrupts == 1
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


# --- presets -----------------------------------------------------------------------------------


async def test_presets_are_listed_and_speak_with_their_mode_and_priority(api: Api) -> None:
    listed = await (await api.http.get("/v1/presets")).json()
    assert listed["presets"][1] == {
        "name": "break",
        "text": "Back in five minutes.",
        "mode": "chat",
        "priority": "now",
    }
    await api.http.post("/v1/speak", json={"text": "already waiting"})
    for method in ("POST", "GET"):
        response = await api.http.request(method, "/v1/presets/hello")
        assert response.status == 202
        assert sole_item(await response.json())["source"] == "preset:hello"
    pressed = await api.http.get("/v1/presets/break")
    item = sole_item(await pressed.json())
    assert (item["mode"], item["priority"]) == ("chat", "now")
    assert api.texts()[0] == "Back in five minutes."


@pytest.mark.parametrize("name", ["nope", "HELLO", "hello%20", "..%2f..%2fetc"])
async def test_an_unknown_preset_is_404_and_speaks_nothing(api: Api, name: str) -> None:
    before = api.state()
    for method in ("POST", "GET"):
        status, error, detail = await refusal(await api.http.request(method, f"/v1/presets/{name}"))
        assert (status, error) == (404, "not_found") and "not found" in detail
    assert api.state() == before


# --- state, status, snapshot -------------------------------------------------------------------


async def test_state_is_small_and_flat_for_companion(api: Api) -> None:
    await api.http.post("/v1/speak", json={"text": "one"})
    response = await api.http.get("/v1/state")
    assert await response.json() == {
        "state": "live",
        "speaking": False,
        "queue_length": 1,
        "session_seconds_left": 540,
        "provider": "demo",
    }


async def test_status_has_the_bridge_and_the_api(api: Api) -> None:
    await api.http.get("/v1/nope")
    body = await (await api.http.get("/v1/status")).json()
    assert body["session"]["state"] == "live" and body["speech"]["pending"] == 0
    assert body["control"]["refused"] == {"404": 1}


async def test_the_snapshot_is_the_frame_of_now_or_409_when_the_camera_is_disabled(
    api: Api,
) -> None:
    snapshot = await api.http.get("/v1/snapshot.jpg")
    assert snapshot.status == 200 and snapshot.content_type == "image/jpeg"
    assert snapshot.headers["Cache-Control"] == "no-store"
    assert await snapshot.read() == JPEG
    api.status["camera"] = {"state": "disabled"}
    assert await refusal(await api.http.get("/v1/snapshot.jpg")) == (
        409,
        "conflict",
        "camera: is disabled (camera.enabled: false)",
    )


# --- routing and the error boundary ------------------------------------------------------------


async def test_an_unknown_endpoint_gets_404_naming_it_and_the_real_ones(api: Api) -> None:
    status, error, detail = await refusal(await api.http.get("/v1/nope"))
    assert (status, error) == (404, "not_found")
    assert detail.startswith("GET /v1/nope: no such endpoint")
    assert "POST /v1/speak" in detail and "GET /v1/state" in detail


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/v1/status", "GET"),
        ("PUT", "/v1/speak", "GET, POST"),
        ("GET", "/v1/interrupt", "POST"),
        ("GET", "/v1/queue/clear", "POST"),
        ("POST", "/v1/queue/s1", "DELETE, GET"),
        ("DELETE", "/v1/queue/clear", "POST"),
        ("DELETE", "/v1/presets/hello", "GET, POST"),
    ],
)
async def test_a_wrong_method_gets_405_naming_the_right_ones(
    api: Api, method: str, path: str, allowed: str
) -> None:
    before = api.state()
    response = await api.http.request(method, path, data=b"{}")
    assert await refusal(response) == (
        405,
        "method_not_allowed",
        f"{method} {path}: not allowed here; use {allowed}",
    )
    assert api.state() == before


async def test_a_bug_in_a_route_is_a_json_500_counted_in_status_and_the_api_goes_on(
    api: Api,
) -> None:
    broken = {"session": "the secret is hunter2"}  # status() will fail reading it
    api.status = broken
    response = await api.http.get("/v1/state")
    status, error, detail = await refusal(response)
    assert (status, error) == (500, "internal_error")
    assert detail.startswith("AttributeError") and "hunter2" not in detail
    api.status = {}
    control = (await (await api.http.get("/v1/status")).json())["control"]
    assert control["errors"] == 1 and control["last_error"] == "AttributeError in GET /v1/state"
    assert (await api.http.get("/healthz")).status == 200


# --- listening ---------------------------------------------------------------------------------


def server(host: str = "127.0.0.1", port: int = 0) -> ControlServer:
    bus = EventBus()
    queue = SpeechQueue(bus=bus, max_item=MAX_ITEM)

    async def snapshot_jpeg() -> bytes:
        return JPEG

    return ControlServer(
        ControlConfig(host=host, port=port),
        queue=queue,
        status=dict,
        snapshot_jpeg=snapshot_jpeg,
        token=None,
        presets={},
        bus=bus,
    )


async def test_the_server_listens_on_the_port_the_system_gave_it() -> None:
    control = server()
    await control.start()
    try:
        assert control.port != 0
        base = f"http://127.0.0.1:{control.port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200
            # A Stream Deck URL with a long text: past aiohttp's default request line.
            async with http.get(f"{base}/v1/speak", params={"text": "漢" * 1500}) as response:
                assert response.status == 202, await response.text()
    finally:
        await control.stop()


async def test_a_port_in_use_is_a_config_error_naming_control_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"control.port: cannot listen on 127.0.0.1:{port}"):
            await server(port=port).start()
