"""Fuzz the control API over real HTTP on loopback: thousands of random requests — methods,
paths, query strings, content types, bodies, and the headers the guard reads — then raw bytes
that are barely HTTP.  The outcome a user cares about: no answer is a 5xx, the daemon keeps
answering, every refusal is JSON ``{error, detail}``, and a refused request changes nothing
(the queue, its finished counts and the event stream are as they were before it).

Deterministic: ``FUZZ_SEED`` picks the run (default fixed), ``FUZZ_REQUESTS`` its size; a
failure names the seed and the request, so it can be replayed.  Bounded in time: it stops at
``FUZZ_REQUESTS`` or after :data:`BUDGET_S`, whichever comes first.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import string
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from yarl import URL

from bridge.control.http import MAX_BODY
from tests.kit.control_api import MAX_TEXT, TOKEN, Api

SEED = int(os.environ.get("FUZZ_SEED", "20261129"))
REQUESTS = int(os.environ.get("FUZZ_REQUESTS", "4000"))
RAW_REQUESTS = 300
BUDGET_S = 120.0  # generous: the run takes ~10 s on a 2-core machine
MIN_REQUESTS = 500  # below this the run proved little (a very slow machine: say so)
RAW_READ_TIMEOUT_S = 30.0  # the server answers garbage at once; this only stops a hang

METHODS = ["POST"] * 8 + ["GET"] * 7 + ["PUT", "DELETE", "DELETE", "PATCH", "OPTIONS", "HEAD"]
PATHS = [
    "/v1/speak", "/v1/interrupt", "/v1/queue", "/v1/queue/clear", "/v1/queue/s1",
    "/v1/queue/s2", "/v1/queue/s99999999999999999999", "/v1/status", "/v1/state",
    "/v1/snapshot.jpg", "/v1/presets", "/v1/presets/hello", "/v1/presets/break",
    "/v1/presets/nope", "/healthz", "/readyz", "/metrics", "/v1/openapi.json", "/v1/ws", "/",
]  # fmt: skip
KEYS = ["text", "text", "mode", "priority", "token", "volume", "", "ref", "text[]"]
CONTENT_TYPES = [
    None, "application/json", "application/json; charset=utf-16", "text/plain",
    "text/plain; charset=latin-1", "text/plain; charset=bogus", "text/plain; charset=utf-16",
    "application/x-www-form-urlencoded", "multipart/form-data; boundary=XyZ",
    "multipart/form-data", "application/octet-stream", "text/html", "image/png", ";;;",
    "application/x-www-form-urlencoded; charset=klingon", "*/*",
]  # fmt: skip
ORIGINS = ["http://127.0.0.2:9999", "null", "http://localhost:3000", "https://evil.example", "::"]
SITES = ["cross-site", "same-site", "same-origin", "none", "bogus", ""]


class Fuzz:
    """Random requests from one seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def text(self, longest: int = 40) -> str:
        r = self.rng
        pools = [
            string.printable,
            "\x00\x01\x07\x1b\x7f\u200b\u202e\ufeff\ud800\udfff",
            "héllo wörld ñ 漢字 🙂 \u0301",
            " \t\n\r",
        ]
        return "".join(r.choice(r.choice(pools)) for _ in range(r.randint(0, longest)))

    def value(self, depth: int = 0) -> Any:
        r = self.rng
        kind = r.randrange(9 if depth < 3 else 6)
        simple = [
            None,
            r.choice([True, False]),
            r.randint(-(2**70), 2**70),
            r.random() * 1e6,
            self.text(),
            r.choice(["repeat", "chat", "now", "normal", "Hello there."]),
        ]
        if kind < len(simple):
            return simple[kind]
        if kind == 6:
            return [self.value(depth + 1) for _ in range(r.randint(0, 3))]
        return {r.choice(KEYS): self.value(depth + 1) for _ in range(r.randint(0, 4))}

    def speak_object(self) -> dict[str, Any]:
        """Often a valid request, often a nearly valid one."""
        r = self.rng
        body: dict[str, Any] = {"text": r.choice([self.text(), "Hello there.", "a" * MAX_TEXT])}
        for key in ("mode", "priority", r.choice(KEYS)):
            if r.random() < 0.4:
                body[key] = self.value(2)
        return body

    def body(self) -> bytes:
        r = self.rng
        kind = r.randrange(9)
        if kind == 0:
            return b""
        if kind == 1:
            return r.randbytes(r.randint(1, 200))
        if kind == 2:
            return self.text(200).encode("utf-8", "surrogatepass")
        if kind == 3:
            depth = r.choice([10, 1000, 20_000])
            return b"[" * depth + b"]" * depth
        if kind == 4:
            return b"x" * r.choice([65_000, 66_000, 200_000])
        if kind == 5:
            return self.query().encode()
        if kind == 6:
            return self.multipart()
        raw = json.dumps(self.speak_object() if kind == 7 else self.value(), ensure_ascii=False)
        return raw.encode("utf-8", "surrogatepass")

    def multipart(self) -> bytes:
        r = self.rng
        parts = []
        for _ in range(r.randint(0, 3)):
            name = r.choice(KEYS)
            filename = '; filename="a.txt"' if r.random() < 0.2 else ""
            value = self.text(30).encode("utf-8", "surrogatepass")
            parts.append(
                b'--XyZ\r\nContent-Disposition: form-data; name="%s"%s\r\n\r\n%s\r\n'
                % (name.encode(), filename.encode(), value)
            )
        end = b"--XyZ--\r\n" if r.random() < 0.8 else r.randbytes(5)
        return b"".join(parts) + end

    def query(self) -> str:
        r = self.rng
        if r.random() < 0.1:
            return r.choice(["%", "&&&", "=", "a=%zz", "text=%ff", "text=%ED%A0%80", "%00=1"])
        pairs = []
        for _ in range(r.randint(0, 4)):
            value = (
                self.text(30) if r.random() < 0.7 else r.choice(["now", "x" * 3000, "x" * 70_000])
            )
            pairs.append(f"{quote(r.choice(KEYS))}={quote(value, errors='surrogatepass')}")
        return "&".join(pairs)

    def path(self) -> str:
        r = self.rng
        path = r.choice(PATHS)
        kind = r.randrange(10)
        if kind == 0:
            path += "/" + quote(self.text(10), safe="", errors="surrogatepass")
        elif kind == 1:
            path = path.upper()
        elif kind == 2:
            path = path.replace("/", "//", 1)
        elif kind == 3:
            path = "/static/" + r.choice(["panel.js", "../../etc/passwd", "%2e%2e%2f", "x" * 500])
        return path

    def headers(self, port: int) -> dict[str, str]:
        r = self.rng
        headers: dict[str, str] = {}
        content_type = r.choice(CONTENT_TYPES)
        if content_type is not None:
            headers["Content-Type"] = content_type
        if r.random() < 0.25:
            origin = r.choice([*ORIGINS, f"http://127.0.0.1:{port}"])
            headers["Origin"] = origin
        if r.random() < 0.25:
            headers["Sec-Fetch-Site"] = r.choice(SITES)
        if r.random() < 0.3:
            headers["Authorization"] = r.choice(
                [f"Bearer {TOKEN}", "Bearer wrong", f"Basic {TOKEN}", "Bearer", "garbage  ", ""]
            )
        if r.random() < 0.1:
            headers["Host"] = r.choice(["evil.example", "localhost", "[::1]:1", "", "a:b:c"])
        if r.random() < 0.1:
            headers["Accept"] = r.choice(["text/plain; version=abc", "*/*", ";;", "x" * 200])
        return headers


@dataclass
class Tally:
    statuses: dict[int, int] = field(default_factory=dict)
    requests: int = 0

    def count(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.requests += 1


@pytest.fixture
async def apis() -> AsyncIterator[list[Api]]:
    """The API open on loopback (with a listed origin), and guarded by a token."""
    served = [
        await Api.serve(allowed_origins=["http://localhost:3000"]),
        await Api.serve(host="0.0.0.0", token=TOKEN),
    ]
    yield served
    for api in served:
        await api.close()


def plausible(api: Api, fuzz: Fuzz) -> tuple[str, str, bytes, dict[str, str]]:
    """A request a real client might send (most are accepted): keeps acceptance exercised."""
    r = fuzz.rng
    headers = {"Authorization": f"Bearer {TOKEN}"} if api.token else {}
    if r.random() < 0.5:
        query = "text=" + quote(r.choice(["Hello there.", fuzz.text()]), errors="surrogatepass")
        return "GET", f"/v1/speak?{query}", b"", headers
    body = json.dumps(fuzz.speak_object(), ensure_ascii=False).encode("utf-8", "surrogatepass")
    if r.random() < 0.05:
        body = b'{"text": "' + b"a" * r.choice([MAX_BODY, 10 * MAX_BODY]) + b'"}'
    content_type = r.choice(["application/json", "text/plain", "text/plain;charset=UTF-8"])
    return "POST", "/v1/speak", body, {**headers, "Content-Type": content_type}


def random_request(api: Api, fuzz: Fuzz) -> tuple[str, str, bytes, dict[str, str]]:
    r = fuzz.rng
    method = r.choice(METHODS)
    query = fuzz.query() if r.random() < 0.6 else ""
    target = fuzz.path() + (f"?{query}" if query else "")
    body = fuzz.body() if method not in ("GET", "HEAD") or r.random() < 0.1 else b""
    return method, target, body, fuzz.headers(api.http.port or 0)


async def one_request(api: Api, fuzz: Fuzz, tally: Tally, number: int) -> None:
    maker = plausible if fuzz.rng.random() < 0.25 else random_request
    method, target, body, headers = maker(api, fuzz)
    url = URL(f"http://127.0.0.1:{api.http.port}{target}", encoded=True)
    where = f"seed {SEED}, request {number}: {method} {str(url)[:200]} {headers} {body[:100]!r}"
    if api.queue.depth > 80:  # room for more: keep exercising acceptance, not only 429
        api.queue.clear("fuzz: making room")
    before = api.state()
    oversized = len(str(url)) > MAX_BODY
    try:
        async with api.http.session.request(method, url, data=body, headers=headers) as response:
            status, raw = response.status, await response.read()
    except aiohttp.ClientResponseError:
        # Only a request line over the limit may be cut off by the server's parser.
        assert oversized, where
        tally.count(400)
        assert api.state() == before, where
        return
    tally.count(status)
    assert status < 500, f"{where} → {status} {raw[:300]!r}"
    if status < 400:
        return
    assert api.state() == before, f"{where}: refused {status} yet changed state"
    if method == "HEAD" or (status == 400 and oversized):
        return  # no body; or aiohttp's parser refused the request line, in plain text
    refusal = json.loads(raw)
    assert set(refusal) == {"error", "detail"}, f"{where}: {raw[:300]!r}"


async def test_thousands_of_random_requests_get_no_5xx_and_refusals_change_nothing(
    apis: list[Api],
) -> None:
    fuzz = Fuzz(SEED)
    tally = Tally()
    deadline = time.monotonic() + BUDGET_S
    for number in range(REQUESTS):
        if time.monotonic() > deadline:
            break
        await one_request(fuzz.rng.choice(apis), fuzz, tally, number)
    assert tally.requests >= min(REQUESTS, MIN_REQUESTS), f"only {tally.requests} in {BUDGET_S} s"
    # Both outcomes were exercised, not only refusals.
    assert tally.statuses.get(202, 0) > 50 and tally.statuses.get(400, 0) > 50, tally.statuses
    assert {401, 403, 404, 405, 413} <= set(tally.statuses), tally.statuses
    for api in apis:
        assert api.server.snapshot()["errors"] == 0
        assert (await api.http.get("/healthz")).status == 200


# --- raw bytes ---------------------------------------------------------------------------------

RAW_STARTS = [
    b"POST /v1/speak HTTP/1.1\r\n",
    b"GET /v1/speak?text=hi HTTP/1.1\r\n",
    b"GET / HTTP/1.0\r\n",
    b"POST /v1/speak HTTP/9.9\r\n",
    b"\x00\xff GARBAGE\r\n",
    b"GET /v1/%zz%00 HTTP/1.1\r\n",
    b"POST /v1/speak HTTP/1.1\r\nTransfer-Encoding: chunked\r\n",
    b"POST /v1/speak HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n",
    b"POST /v1/speak HTTP/1.1\r\nContent-Length: -1\r\n",
    b"GET /v1/status HTTP/1.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n",
]


async def raw_exchange(port: int, payload: bytes) -> bytes:
    """Send ``payload``, end the sending side, read whatever comes back until the server
    closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        writer.write_eof()
        async with asyncio.timeout(RAW_READ_TIMEOUT_S):
            return await reader.read()
    except ConnectionResetError:  # the server may hang up on garbage: fine
        return b""
    finally:
        writer.close()
        await writer.wait_closed()


async def test_raw_garbage_gets_no_5xx_and_changes_nothing(apis: list[Api]) -> None:
    rng = random.Random(SEED)
    api = apis[0]
    port = api.http.port
    assert port is not None
    before = api.state()
    for number in range(RAW_REQUESTS):
        payload = rng.choice(RAW_STARTS)
        if rng.random() < 0.5:
            payload += b"Host: 127.0.0.1\r\n"
        payload += rng.randbytes(rng.randint(0, 64)).replace(b"\r\n\r\n", b"") + b"\r\n\r\n"
        payload += rng.randbytes(rng.randint(0, 64))
        answer = await raw_exchange(port, payload)
        status_line = answer.split(b"\r\n", 1)[0]
        assert not status_line.startswith((b"HTTP/1.1 5", b"HTTP/1.0 5")), (
            f"seed {SEED}, raw {number}: {payload[:200]!r} → {status_line!r}"
        )
        if b" 202 " not in status_line:
            assert api.state() == before, f"seed {SEED}, raw {number}: {payload[:200]!r}"
        before = api.state()
    assert (await api.http.get("/healthz")).status == 200
    assert api.server.snapshot()["errors"] == 0
