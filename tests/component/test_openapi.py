"""``GET /v1/openapi.json`` is true of the full app (the WebSocket hub, the panel and the
preview the daemon adds included): every route it serves is documented with its methods,
nothing documented is missing, and every answer a route gives to the requests below has a
documented status and matches the documented schema."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.app import Bridge
from bridge.config import ListenConfig, Secrets, Settings, parse
from bridge.control import openapi, panel
from bridge.control.listen import Listening
from bridge.control.overlay import Overlay
from bridge.control.preview import Preview
from bridge.control.queue import SpeechQueue
from bridge.control.ws import EventHub
from bridge.errors import NotLive
from bridge.eventbus import EventBus
from bridge.source.uplink import Uplink
from tests.kit.control_api import JPEG, MAX_ITEM, TOKEN, Api

Doc = dict[str, Any]


class NoSession:
    """The session manager with no live avatar (listen mode's provider side)."""

    async def listen(self, on: bool, *, push_to_talk: bool) -> bool:
        raise NotLive("the avatar is not live")


@pytest.fixture
async def full() -> AsyncIterator[Api]:
    """The control app as the daemon builds it (see bridge/app.py), on loopback."""

    async def snapshot_jpeg() -> bytes:
        return JPEG

    bus = EventBus()
    queue = SpeechQueue(bus=bus, max_item=MAX_ITEM, limit=3)
    hub = EventHub(bus=bus, queue=queue, token=None)
    preview = Preview(snapshot_jpeg)
    ptt = ListenConfig(mode="push-to-talk")
    listening = Listening(ptt, gate=Uplink(ptt), ears=NoSession(), bus=bus)
    overlay = Overlay(None)
    routes = [*hub.routes(), *panel.routes(), *preview.routes(), *listening.routes()]
    served = await Api.serve(bus=bus, queue=queue, routes=[*routes, *overlay.routes()])
    yield served
    await overlay.close()
    await hub.close()
    await preview.close()
    await served.close()


async def document(api: Api) -> Doc:
    response = await api.http.get("/v1/openapi.json")
    assert response.status == 200
    doc: Doc = await response.json()
    return doc


def documented(doc: Doc) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}


def served(api: Api) -> set[tuple[str, str]]:
    return {
        (route.method, route.resource.canonical)
        for route in api.http.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }


async def test_every_route_served_is_documented_and_nothing_else(full: Api) -> None:
    doc = await document(full)
    assert served(full) == documented(doc)
    assert ("GET", "/v1/ws") in documented(doc)  # the full app, not just the API's own routes


def test_every_route_the_daemon_serves_is_documented() -> None:
    """The app as bridge/app.py wires it (whatever it adds) has nothing undocumented."""
    raw = {"provider": "demo", "camera": {"enabled": False}, "microphone": {"enabled": False}}
    bridge = Bridge(Settings(config=parse(raw), secrets=Secrets()))
    app = bridge.control.app()
    routes = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    assert routes <= documented(openapi.document())


async def test_the_document_is_whole(full: Api) -> None:
    """Every reference resolves; every path parameter is declared; every operation answers
    something documented."""
    doc = await document(full)
    text = str(doc)
    for name in re.findall(r"#/components/schemas/(\w+)", text):
        assert name in doc["components"]["schemas"], name
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), (method, path)
            assert op["responses"], (method, path)


# --- each route's answers against its documentation --------------------------------------------


def check(schema: Doc, value: Any, doc: Doc, where: str = "$") -> None:
    """``value`` against the JSON Schema subset the document uses ($ref, type, enum, const,
    required, properties, additionalProperties: false, items, oneOf)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        check(doc["components"]["schemas"][name], value, doc, where)
        return
    if "oneOf" in schema:
        fits = 0
        for option in schema["oneOf"]:
            try:
                check(option, value, doc, where)
            except AssertionError:
                continue
            fits += 1
        assert fits == 1, f"{where}: {value!r} fits {fits} of oneOf"
        return
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        assert any(_is(kind, value) for kind in kinds), f"{where}: {value!r} is not {kinds}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if "const" in schema:
        assert value == schema["const"], f"{where}: {value!r} != {schema['const']!r}"
    if isinstance(value, dict):
        for key in schema.get("required", []):
            assert key in value, f"{where}: {key} missing"
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            assert set(value) <= set(props), f"{where}: undocumented {set(value) - set(props)}"
        for key, sub in props.items():
            if key in value:
                check(sub, value[key], doc, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for n, element in enumerate(value):
            check(schema["items"], element, doc, f"{where}[{n}]")


def _is(kind: str, value: Any) -> bool:
    return {
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "null": value is None,
    }[kind]


# (method, path as requested, the documented path, request arguments, the status it gets);
# in order: state carries over (s1 is queued by the first request, the queue holds 3).
PLAIN = {"Content-Type": "text/plain"}
FOREIGN_PLAIN = {**PLAIN, "Origin": "http://127.0.0.2:9999"}
EXAMPLES: list[tuple[str, str, str, dict[str, Any], int]] = [
    ("POST", "/v1/speak", "/v1/speak", {"json": {"text": "Hello"}}, 202),
    ("POST", "/v1/speak", "/v1/speak", {"data": "Hi", "headers": PLAIN}, 202),
    ("POST", "/v1/speak", "/v1/speak", {"json": {"text": ""}}, 400),
    ("POST", "/v1/speak", "/v1/speak", {"data": b"x" * 70_000}, 413),
    ("POST", "/v1/speak", "/v1/speak", {"data": "Hi", "headers": FOREIGN_PLAIN}, 403),
    ("GET", "/v1/speak?text=Hi", "/v1/speak", {}, 202),
    ("GET", "/v1/speak?text=Full", "/v1/speak", {}, 429),
    ("GET", "/v1/speak?mode=chat", "/v1/speak", {}, 400),
    ("GET", "/v1/speak?text=Hi&token=wrong", "/v1/speak", {}, 429),
    ("POST", "/v1/interrupt", "/v1/interrupt", {}, 409),
    ("GET", "/v1/queue", "/v1/queue", {}, 200),
    ("GET", "/v1/queue/s1", "/v1/queue/{id}", {}, 200),
    ("GET", "/v1/queue/s99", "/v1/queue/{id}", {}, 404),
    ("DELETE", "/v1/queue/s1", "/v1/queue/{id}", {}, 200),
    ("DELETE", "/v1/queue/s1", "/v1/queue/{id}", {}, 404),
    ("POST", "/v1/queue/clear", "/v1/queue/clear", {}, 200),
    ("GET", "/v1/presets", "/v1/presets", {}, 200),
    ("POST", "/v1/presets/hello", "/v1/presets/{name}", {}, 202),
    ("GET", "/v1/presets/hello", "/v1/presets/{name}", {}, 202),
    ("GET", "/v1/presets/nope", "/v1/presets/{name}", {}, 404),
    ("GET", "/v1/status", "/v1/status", {}, 200),
    ("GET", "/v1/state", "/v1/state", {}, 200),
    ("GET", "/v1/snapshot.jpg", "/v1/snapshot.jpg", {}, 200),
    ("GET", "/healthz", "/healthz", {}, 200),
    ("GET", "/readyz", "/readyz", {}, 200),
    ("GET", "/metrics", "/metrics", {}, 200),
    ("GET", "/v1/openapi.json", "/v1/openapi.json", {}, 200),
    ("GET", "/", "/", {}, 200),
    ("GET", "/static/panel.js", "/static/{name}", {}, 200),
    ("GET", "/static/nope.js", "/static/{name}", {}, 404),
    ("GET", "/v1/preview.mjpg?fps=zero", "/v1/preview.mjpg", {}, 400),
    ("GET", "/overlay", "/overlay", {}, 200),
    ("GET", "/v1/listen", "/v1/listen", {}, 200),
    ("POST", "/v1/listen/start", "/v1/listen/start", {}, 200),
    ("GET", "/v1/listen/start", "/v1/listen/start", {"headers": FOREIGN_PLAIN}, 403),
    ("POST", "/v1/listen/stop", "/v1/listen/stop", {}, 200),
    ("GET", "/v1/listen/stop", "/v1/listen/stop", {}, 200),
    ("GET", "/v1/status", "/v1/status", {"headers": {"Host": "evil.example"}}, 403),
]


async def test_every_answer_is_documented_and_matches_its_schema(full: Api) -> None:
    doc = await document(full)
    covered = set()
    for method, url, path, kwargs, expected in EXAMPLES:
        op = doc["paths"][path][method.lower()]
        response = await full.http.request(method, url, **kwargs)
        assert response.status == expected, (method, url, await response.text())
        status = str(response.status)
        assert status in op["responses"], f"{method} {url}: {status} is not documented"
        answer = op["responses"][status]
        media = response.content_type
        if "content" in answer:
            assert media in answer["content"], f"{method} {url}: {media} not documented"
            if media == "application/json":
                check(answer["content"][media]["schema"], await response.json(), doc)
        covered.add((method, path))
    websockets = {("GET", "/v1/ws"), ("GET", "/v1/overlay.ws"), ("GET", "/v1/preview.mjpg")}
    assert covered | websockets >= documented(doc)


async def test_the_websocket_and_the_preview_answer_as_documented(full: Api) -> None:
    doc = await document(full)
    async with full.http.ws_connect("/v1/ws") as ws:
        assert not ws.closed
    assert "101" in doc["paths"]["/v1/ws"]["get"]["responses"]
    response = await full.http.get("/v1/preview.mjpg?fps=1")
    assert str(response.status) in doc["paths"]["/v1/preview.mjpg"]["get"]["responses"]
    assert response.content_type == "multipart/x-mixed-replace"
    response.close()


async def test_a_guarded_api_documents_its_refusals() -> None:
    api = await Api.serve(host="0.0.0.0", token=TOKEN)
    try:
        doc = await document_with_token(api)
        for path in ("/v1/status", "/v1/speak"):
            response = await api.http.get(path)
            assert str(response.status) in doc["paths"][path]["get"]["responses"]
    finally:
        await api.close()


async def document_with_token(api: Api) -> Doc:
    response = await api.http.get("/v1/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 200
    doc: Doc = await response.json()
    return doc
