"""The guard in front of every route (bridge/control/guard.py), over real HTTP on loopback:
the token rule, other sites' pages (Origin, Sec-Fetch-Site), DNS rebinding (Host), CORS.

Every refusal is JSON, and changes nothing: each test has a queued item in place so that a
request that slipped through (speak, clear, remove, interrupt) would show.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from bridge.app import Bridge
from bridge.config import ControlConfig, Secrets, Settings, parse
from bridge.control.guard import AUTHORIZED, host_name, token_ok
from bridge.control.http import ControlServer
from bridge.errors import ConfigError
from tests.kit.control_api import TOKEN, Api, refusal

FOREIGN_PAGE = "http://127.0.0.2:9999"
LISTED = "http://localhost:3000"


def stub_ws() -> tuple[list[bool], list[web.RouteDef]]:
    """``GET /v1/ws`` as the WebSocket hub sees it: whether the guard let it through, and
    with which word on the token."""
    reached: list[bool] = []

    async def handshake(request: web.Request) -> web.StreamResponse:
        reached.append(request[AUTHORIZED])
        return web.json_response({"authorized": request[AUTHORIZED]})

    return reached, [web.get("/v1/ws", handshake)]


async def serve(**kwargs: Any) -> tuple[Api, list[bool]]:
    reached, routes = stub_ws()
    api = await Api.serve(routes=routes, **kwargs)
    assert (
        await api.http.post("/v1/speak", json={"text": "already queued"}, **auth(api))
    ).status == 202
    return api, reached


def auth(api: Api) -> dict[str, Any]:
    """What a request needs to pass the token check of ``api``."""
    if api.token is None:
        return {}
    return {"headers": {"Authorization": f"Bearer {TOKEN}"}}


@pytest.fixture
async def open_api() -> AsyncIterator[tuple[Api, list[bool]]]:
    """On loopback, no token."""
    api, reached = await serve(allowed_origins=[LISTED])
    yield api, reached
    await api.close()


@pytest.fixture
async def guarded() -> AsyncIterator[tuple[Api, list[bool]]]:
    """Listening on every interface, with a token."""
    api, reached = await serve(host="0.0.0.0", token=TOKEN)
    yield api, reached
    await api.close()


def every_route(api: Api) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, path parameters filled in (HEAD left out)."""
    fill = {"{id}": "s1", "{name}": "hello"}
    out = []
    for route in api.http.app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        path = route.resource.canonical
        for param, value in fill.items():
            path = path.replace(param, value)
        out.append((route.method, path))
    return out


# Each route that changes state, with a request that would change it.
STATE_CHANGING: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/v1/speak", {"json": {"text": "drive-by"}}),
    ("POST", "/v1/speak", {"data": "drive-by", "headers": {"Content-Type": "text/plain"}}),
    (
        "POST",
        "/v1/speak",
        {"data": '{"text": "drive-by"}', "headers": {"Content-Type": "text/plain"}},
    ),
    ("POST", "/v1/speak", {"data": {"text": "drive-by"}}),
    ("GET", "/v1/speak", {"params": {"text": "drive-by"}}),
    ("POST", "/v1/presets/hello", {}),
    ("GET", "/v1/presets/hello", {}),
    ("POST", "/v1/interrupt", {}),
    ("POST", "/v1/queue/clear", {}),
    ("DELETE", "/v1/queue/s1", {}),
    ("GET", "/v1/ws", {}),
]
STATE_IDS = [
    "speak-json",
    "speak-text-plain",
    "speak-json-as-text-plain",
    "speak-form",
    "speak-get",
    "preset-post",
    "preset-get",
    "interrupt",
    "clear",
    "remove",
    "websocket",
]
FOREIGN: list[dict[str, str]] = [
    {"Origin": FOREIGN_PAGE},
    {"Origin": "https://evil.example"},
    {"Origin": "null"},  # a sandboxed frame, a file:// page
    {"Origin": "http://127.0.0.1:1"},  # this machine, another port: another origin
    {"Sec-Fetch-Site": "cross-site"},  # <img src>, a form: no Origin on a GET
    {"Sec-Fetch-Site": "same-site"},
    {"Origin": FOREIGN_PAGE, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"},
]


def merged(kwargs: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    return {**kwargs, "headers": {**kwargs.get("headers", {}), **headers}}


# --- the token rule ----------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "", "studio-pc.local"])
def test_listening_beyond_loopback_without_a_token_refuses_to_start(host: str) -> None:
    with pytest.raises(ConfigError) as refused:
        ControlServer(
            ControlConfig(host=host),
            queue=None,  # type: ignore[arg-type]  # refused before the queue is looked at
            status=dict,
            snapshot_jpeg=None,  # type: ignore[arg-type]  # as above
            token=None,
            presets={},
            bus=None,  # type: ignore[arg-type]  # as above
        )
    assert "control.host" in str(refused.value) and "HEYGEN_BRIDGE_TOKEN" in str(refused.value)


def test_the_daemon_refuses_to_start_on_a_public_address_without_a_token() -> None:
    raw = {"provider": "demo", "control": {"host": "0.0.0.0"}, "microphone": {"enabled": False}}
    with pytest.raises(ConfigError, match="HEYGEN_BRIDGE_TOKEN"):
        Bridge(Settings(config=parse(raw), secrets=Secrets()))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "localhost", "::1"])
async def test_loopback_needs_no_token(host: str) -> None:
    api = await Api.serve(host=host)
    try:
        assert (await api.http.get("/v1/status")).status == 200
    finally:
        await api.close()


def test_token_ok_compares_in_full() -> None:
    from bridge.config import Secret

    assert token_ok(None, None) and token_ok(None, "anything")
    assert token_ok(Secret(TOKEN), TOKEN)
    for given in (None, "", TOKEN[:-1], TOKEN + "x", TOKEN.upper()):
        assert not token_ok(Secret(TOKEN), given)


PUBLIC = {"/healthz", "/readyz"}


async def test_without_a_token_every_route_but_the_probes_is_401_and_changes_nothing(
    guarded: tuple[Api, list[bool]],
) -> None:
    api, reached = guarded
    before = api.state()
    routes = every_route(api)
    assert len(routes) >= 18
    for method, path in routes:
        response = await api.http.request(method, path)
        if path in PUBLIC:
            assert response.status in (200, 503), (method, path)
        elif path == "/v1/ws":  # the hub asks for the token in the first message
            assert response.status == 200 and reached == [False]
        else:
            status, error, detail = await refusal(response)
            assert (status, error) == (401, "unauthorized"), (method, path)
            assert detail.startswith("token: missing;") and "HEYGEN_BRIDGE_TOKEN" in detail
            assert response.headers["WWW-Authenticate"] == "Bearer"
    assert api.state() == before


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"Authorization": "bearer not-the-token"}, {}),
        ({"Authorization": "Bearer not-the-token"}, {}),
        ({"Authorization": f"Bearer {TOKEN}x"}, {}),
        ({"Authorization": f"Basic {TOKEN}"}, {}),
        ({}, {"token": "not-the-token"}),
        ({}, {"token": TOKEN[:-1]}),
        ({"Authorization": "Bearer not-the-token"}, {"token": TOKEN}),
    ],
)
async def test_a_wrong_token_is_401_on_every_route_and_changes_nothing(
    guarded: tuple[Api, list[bool]], headers: dict[str, str], query: dict[str, str]
) -> None:
    api, reached = guarded
    before = api.state()
    for method, path in every_route(api):
        response = await api.http.request(method, path, headers=headers, params=query)
        status, error, detail = await refusal(response)
        assert (status, error) == (401, "unauthorized"), (method, path)
        assert detail.startswith("token: wrong;") and TOKEN not in detail
    assert reached == [] and api.state() == before


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
    guarded: tuple[Api, list[bool]], headers: dict[str, str], query: dict[str, str]
) -> None:
    api, reached = guarded
    assert (await api.http.get("/v1/status", headers=headers, params=query)).status == 200
    speak = await api.http.get("/v1/speak", headers=headers, params={**query, "text": "hi"})
    assert speak.status == 202
    assert api.texts() == ["already queued", "hi"]
    assert (await api.http.get("/v1/ws", headers=headers, params=query)).status == 200
    assert reached == [True]
    # Past the token, the other refusals are as without one.
    response = await api.http.get("/v1/nope", headers=headers, params=query)
    assert (await refusal(response))[:2] == (404, "not_found")


# --- pages of other sites ----------------------------------------------------------------------


@pytest.mark.parametrize("foreign", FOREIGN)
@pytest.mark.parametrize(("method", "path", "kwargs"), STATE_CHANGING, ids=STATE_IDS)
async def test_a_page_of_another_site_is_refused_on_every_route_that_changes_state(
    open_api: tuple[Api, list[bool]],
    method: str,
    path: str,
    kwargs: dict[str, Any],
    foreign: dict[str, str],
) -> None:
    api, reached = open_api
    before = api.state()
    response = await api.http.request(method, path, **merged(kwargs, foreign))
    status, error, detail = await refusal(response)
    assert (status, error) == (403, "forbidden")
    assert detail.startswith(("Origin:", "Sec-Fetch-Site:"))
    assert "control.allowed_origins" in detail
    assert "Access-Control-Allow-Origin" not in response.headers
    assert reached == [] and api.state() == before


@pytest.mark.parametrize(("method", "path", "kwargs"), STATE_CHANGING, ids=STATE_IDS)
async def test_a_foreign_page_is_refused_on_a_guarded_api_and_the_token_lets_it_in(
    guarded: tuple[Api, list[bool]], method: str, path: str, kwargs: dict[str, Any]
) -> None:
    api, reached = guarded
    before = api.state()
    page = {"Origin": FOREIGN_PAGE, "Sec-Fetch-Site": "cross-site"}
    refused = await api.http.request(method, path, **merged(kwargs, page))
    assert (await refusal(refused))[0] in (401, 403) and reached == []
    assert api.state() == before
    # A Stream Deck plugin runs in a web view: with the right token its Origin does not matter.
    passed = await api.http.request(
        method, path, **merged(kwargs, {**page, "Authorization": f"Bearer {TOKEN}"})
    )
    assert passed.status < 400 or passed.status == 409, await passed.text()


async def test_a_foreign_page_opening_the_websocket_without_a_token_is_403(
    guarded: tuple[Api, list[bool]],
) -> None:
    api, reached = guarded
    response = await api.http.get("/v1/ws", headers={"Origin": FOREIGN_PAGE})
    assert (await refusal(response))[:2] == (403, "forbidden") and reached == []


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl, Stream Deck's Website action, Companion, bots
        {"Sec-Fetch-Site": "same-origin"},  # the panel
        {"Sec-Fetch-Site": "none"},  # a URL typed or bookmarked in the browser
        {"Origin": "__own__", "Sec-Fetch-Site": "same-origin"},
        {"Origin": LISTED, "Sec-Fetch-Site": "same-site"},
        {"Origin": LISTED.upper() + "/"},
    ],
    ids=["no-origin", "same-origin", "none", "own-origin", "listed", "listed-spelled-otherwise"],
)
@pytest.mark.parametrize(("method", "path", "kwargs"), STATE_CHANGING, ids=STATE_IDS)
async def test_own_listed_and_non_browser_clients_pass(
    open_api: tuple[Api, list[bool]],
    method: str,
    path: str,
    kwargs: dict[str, Any],
    headers: dict[str, str],
) -> None:
    api, _ = open_api
    if headers.get("Origin") == "__own__":
        headers = {**headers, "Origin": f"http://127.0.0.1:{api.http.port}"}
    response = await api.http.request(method, path, **merged(kwargs, headers))
    assert response.status < 400 or (path, response.status) == ("/v1/interrupt", 409), (
        await response.text()
    )


async def test_a_foreign_page_may_read_nothing(open_api: tuple[Api, list[bool]]) -> None:
    """Reads pass (an <img> of the snapshot in an OBS overlay), but no CORS header lets a
    script of another origin read an answer."""
    api, _ = open_api
    for path in ("/v1/status", "/v1/state", "/v1/queue", "/v1/snapshot.jpg"):
        response = await api.http.get(path, headers={"Origin": FOREIGN_PAGE})
        assert response.status == 200
        assert "Access-Control-Allow-Origin" not in response.headers


# --- CORS --------------------------------------------------------------------------------------


async def test_cors_answers_only_the_listed_origins(open_api: tuple[Api, list[bool]]) -> None:
    api, _ = open_api
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    listed = await api.http.options("/v1/speak", headers={"Origin": LISTED, **preflight})
    assert listed.status == 204
    assert listed.headers["Access-Control-Allow-Origin"] == LISTED
    assert "POST" in listed.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in listed.headers["Access-Control-Allow-Headers"]
    spoken = await api.http.post(
        "/v1/speak", json={"text": "from the listed page"}, headers={"Origin": LISTED}
    )
    assert spoken.status == 202 and spoken.headers["Access-Control-Allow-Origin"] == LISTED
    assert "Origin" in spoken.headers["Vary"]
    refused = await api.http.options("/v1/speak", headers={"Origin": FOREIGN_PAGE, **preflight})
    assert (await refusal(refused))[0] == 403
    assert "Access-Control-Allow-Origin" not in refused.headers


async def test_without_listed_origins_there_is_no_cors_at_all() -> None:
    api = await Api.serve()
    try:
        own = f"http://127.0.0.1:{api.http.port}"
        response = await api.http.get("/v1/status", headers={"Origin": own})
        assert response.status == 200
        assert not any(h.startswith("Access-Control-") for h in response.headers)
        preflight = await api.http.options(
            "/v1/speak", headers={"Origin": own, "Access-Control-Request-Method": "POST"}
        )
        assert preflight.status == 403
    finally:
        await api.close()


# --- DNS rebinding -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:8765",
        "127.0.0.1.nip.io",
        "localhost.evil.example:80",
        "192.168.1.20:8765",
        "",
        "[::2]:8765",
    ],
)
async def test_a_foreign_host_is_refused_on_every_route(
    open_api: tuple[Api, list[bool]], host: str
) -> None:
    api, reached = open_api
    before = api.state()
    for method, path in [*every_route(api), ("GET", "/healthz")]:
        response = await api.http.request(method, path, headers={"Host": host})
        status, error, detail = await refusal(response)
        assert (status, error) == (403, "forbidden") and detail.startswith("Host:"), path
    assert reached == [] and api.state() == before


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.1:8765", "LOCALHOST:1", "localhost.", "[::1]:8765", "127.1.2.3"]
)
async def test_loopback_names_are_any_port_of_this_server(
    open_api: tuple[Api, list[bool]], host: str
) -> None:
    api, _ = open_api
    assert (await api.http.get("/v1/state", headers={"Host": host})).status == 200


def test_host_name_drops_the_port_and_spelling() -> None:
    assert host_name("[::1]:8765") == "::1"
    assert host_name("LocalHost.:80") == "localhost"
    assert host_name("example.com") == "example.com"
    assert host_name("::1") == "::1"
