"""Browsers are no way in: pages of another origin, opened in a real browser (headless Debian
Chromium driven by Playwright), try every request a page can send without the API's consent,
against the real daemon on the demo avatar with no token (the default loopback set-up, the
one the issue's drive-by worked against).

The attacking page is served from another loopback address and port (127.0.0.2), so it is
another origin but the same machine, as a page the user visits is to the browser.  It tries:
a ``no-cors`` fetch POST with a JSON body, a ``text/plain`` POST (no CORS preflight), an
``<img>`` GET of ``/v1/speak`` and of a preset, an auto-submitted form, and a WebSocket that
sends a speak.  Afterwards nothing reached the queue, and each attempt was refused by the
daemon itself (its count of 403s rose by one per attempt: they arrived, and were turned
away).  The daemon's own panel, same origin, still speaks.  A request naming a foreign ``Host``
(DNS rebinding) is refused too.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import expect

from tests.kit.browser import chromium
from tests.kit.demo_daemon import DemoDaemon, demo_daemon

PRESET = "hello"
ATTACKS = ["no-cors", "text/plain", "img speak", "img preset", "form", "websocket"]
SETTLE_MS = 15_000
WITHIN_MS = 30_000  # speaking a sentence on a busy 2-core machine: generous
OWN_TEXT = "Only my own panel can make me speak."

# Every attempt, one after the other; window.attacks holds how each ended, for the test.
ATTACK_PAGE = """<!doctype html>
<html><body>
<iframe name="sink" id="sink"></iframe>
<script>
const target = __TARGET__;
const preset = __PRESET__;
const said = (what) => JSON.stringify({text: "drive-by " + what});

function image(path) {
  return new Promise((done) => {
    const img = new Image();
    img.onload = () => done("loaded");
    img.onerror = () => done("error");
    img.src = target + path;
  });
}

function form() {
  return new Promise((done) => {
    const sink = document.getElementById("sink");
    sink.onload = () => done("submitted");
    const f = document.createElement("form");
    f.method = "POST";
    f.action = target + "/v1/speak";
    f.target = "sink";
    const field = document.createElement("input");
    field.name = "text";
    field.value = "drive-by form";
    f.appendChild(field);
    document.body.appendChild(f);
    f.submit();
  });
}

function socket() {
  return new Promise((done) => {
    const ws = new WebSocket(target.replace("http:", "ws:") + "/v1/ws");
    let opened = false;
    ws.onopen = () => {
      opened = true;
      ws.send(JSON.stringify({type: "speak", text: "drive-by websocket"}));
      setTimeout(() => ws.close(), 1000);
    };
    ws.onclose = (closed) => done(opened ? "opened, then closed " + closed.code : "refused");
  });
}

async function attempt(name, how) {
  try {
    window.attacks[name] = String(await how());
  } catch (error) {
    window.attacks[name] = "failed: " + error;
  }
}

(async () => {
  window.attacks = {};
  await attempt("no-cors", async () => {
    const r = await fetch(target + "/v1/speak", {
      method: "POST", mode: "no-cors", body: said("no-cors")});
    return r.type;  // "opaque": sent, the answer unreadable
  });
  await attempt("text/plain", async () => {
    const r = await fetch(target + "/v1/speak", {
      method: "POST", headers: {"Content-Type": "text/plain"}, body: said("text/plain")});
    return r.status;
  });
  await attempt("img speak", () => image("/v1/speak?text=drive-by+img"));
  await attempt("img preset", () => image("/v1/presets/" + preset));
  await attempt("form", form);
  await attempt("websocket", socket);
  window.done = true;
})();
</script>
</body></html>
"""


@asynccontextmanager
async def attack_site(target: str) -> AsyncIterator[str]:
    """A page of another origin (127.0.0.2, its own port) attacking ``target``; its URL."""
    page = ATTACK_PAGE.replace("__TARGET__", json.dumps(target)).replace(
        "__PRESET__", json.dumps(PRESET)
    )

    async def serve(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    app = web.Application()
    app.add_routes([web.get("/", serve)])
    server = TestServer(app, host="127.0.0.2")
    await server.start_server()
    try:
        yield str(server.make_url("/"))
    finally:
        await server.close()


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[DemoDaemon]:
    config = {"presets": {PRESET: {"text": "drive-by preset"}}}
    async with demo_daemon(tmp_path, config=config) as daemon:
        yield daemon


async def nothing_queued(daemon: DemoDaemon) -> None:
    code, queue = await daemon.get("/v1/queue")
    assert code == 200 and queue["items"] == [] and queue["recent"] == [], queue
    speech = (await daemon.status())["speech"]
    assert speech["pending"] == 0 and speech["current"] is None and speech["recent"] == [], speech


def refused_403(status: dict[str, Any]) -> int:
    return int(status["control"]["refused"].get("403", 0))


async def test_a_page_of_another_origin_cannot_make_it_speak(daemon: DemoDaemon) -> None:
    before = refused_403(await daemon.status())
    async with attack_site(daemon.url) as site, chromium() as browser:
        page = await browser.new_page()
        await page.goto(site)
        assert urlsplit(page.url).hostname == "127.0.0.2"  # another origin, same machine
        await page.wait_for_function("() => window.done === true", timeout=SETTLE_MS)
        outcomes = await page.evaluate("() => window.attacks")
    assert sorted(outcomes) == sorted(ATTACKS), outcomes
    assert outcomes["no-cors"] == "opaque", outcomes  # the browser sent it
    assert outcomes["websocket"] == "refused", outcomes  # the handshake itself was refused
    await nothing_queued(daemon)
    # Every attempt reached the daemon and was refused there, with 403, once each.
    assert refused_403(await daemon.status()) - before == len(ATTACKS)
    # The daemon's own page (its panel, same origin) still may: the refusal is of origins.
    await own_panel_speaks(daemon)


async def own_panel_speaks(daemon: DemoDaemon) -> None:
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(f"{daemon.url}/")  # no token set: the loopback default
        await expect(page.locator("#link .value")).to_have_text("connected")
        await page.fill("#text", OWN_TEXT)
        await page.click("#speak")
        row = page.locator("#queue li", has_text=OWN_TEXT)
        await expect(row).to_have_attribute("data-state", "done", timeout=WITHIN_MS)
    code, queue = await daemon.get("/v1/queue")
    assert code == 200 and [i["text"] for i in queue["recent"]] == [OWN_TEXT], queue


async def test_a_foreign_host_is_refused(daemon: DemoDaemon) -> None:
    port = urlsplit(daemon.url).port
    rebound = f"attacker.example:{port}"  # a name re-pointed at 127.0.0.1 (DNS rebinding)
    async with aiohttp.ClientSession() as http:
        for method, path, body in [
            ("GET", "/v1/status", None),
            ("GET", "/", None),
            ("POST", "/v1/speak", b'{"text": "drive-by rebinding"}'),
            ("GET", "/v1/speak?text=drive-by+rebinding", None),
        ]:
            async with http.request(
                method, f"{daemon.url}{path}", data=body, headers={"Host": rebound}
            ) as response:
                assert response.status == 403, (method, path, response.status)
                answer = await response.json()
                assert answer["error"] == "forbidden" and "Host" in answer["detail"], answer
    # The same from a browser that resolves the name to the daemon: not even the page.
    async with chromium(args=[f"--host-resolver-rules=MAP attacker.example {_host(daemon)}"]) as b:
        page = await b.new_page()
        shown = await page.goto(f"http://{rebound}/")
        assert shown is not None and shown.status == 403
    await nothing_queued(daemon)


def _host(daemon: DemoDaemon) -> str:
    host = urlsplit(daemon.url).hostname
    assert host is not None
    return host
