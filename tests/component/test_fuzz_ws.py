"""Fuzz /v1/ws: thousands of random frames (text, binary, huge, invalid UTF-8, malformed JSON,
wrong types, random fields, wrong tokens) from seeded generators, against the real control
API, hub and queue over loopback.

Each frame must end in one of two ways: an answer (ack or error, with a known code), or the
connection closed with a protocol code (1007 bad UTF-8, 1009 too big, 4401 no or wrong
token).  A refused frame changes nothing in the queue; the queue ends holding exactly what
was acked; no bug is met (the hub's and the API's error counts stay 0, nothing logged at
ERROR); and the daemon still answers afterwards.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from bridge.config import RateLimitConfig
from bridge.control.ws import MAX_MESSAGE, UNAUTHORIZED
from tests.kit.wsdaemon import Json, WsDaemon, ws_daemon

FRAMES = 3000
SEED = 20261129
TOKEN = "fuzz-token"
WITHIN_S = 180.0  # generous: the run takes a few seconds
ANSWER_CODES = {"bad_request", "busy", "conflict"}
CLOSE_CODES = {1007, 1009, UNAUTHORIZED}
TYPES = ["speak", "speak", "speak", "subscribe", "clear", "interrupt", "auth", "sing", "", None]
FIELDS = ["text", "mode", "priority", "topics", "ref", "volume", "type"]
STRINGS = [
    "hello",
    "",
    "   ",
    "a\u0000b",
    "\u0007\u001b[31m",
    "\ud800",
    "x\udfffy",
    "e\u0301",
    "repeat",
    "chat",
    "now",
    "normal",
    "speech.*",
    "*",
    "[a-z]",
    "💬" * 50,
    "a" * 2001,
    "word " * 300,
]


@dataclass
class Frame:
    """What to send: ``text`` (a text frame), or ``data`` with ``opcode``."""

    text: str | None = None
    data: bytes = b""
    opcode: aiohttp.WSMsgType = aiohttp.WSMsgType.TEXT

    @property
    def has_token(self) -> bool:
        """Whether it is an object with a (wrong) "token" field: a 4401 close is right."""
        try:
            obj = json.loads(self.text or "")
        except (ValueError, RecursionError):
            return False
        return isinstance(obj, dict) and "token" in obj


def value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.choice(STRINGS)
    if kind == 1:
        return rng.choice([0, -1, 1, 2**63, 10**30, 1.5, -0.0])
    if kind == 2:
        return rng.choice([None, True, False])
    if kind == 3:
        return "".join(chr(rng.randrange(0x0, 0x3000)) for _ in range(rng.randrange(40)))
    if kind in (4, 5):
        return rng.choice(STRINGS[:4])
    if kind == 6:
        return [value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 7:
        return {rng.choice(FIELDS): value(rng, depth + 1) for _ in range(rng.randrange(4))}
    return [rng.choice(["speech.*", "session.*", "*", "", "a" * 70, 5])]


def message(rng: random.Random) -> Json:
    obj: Json = {}
    if rng.random() < 0.9:
        obj["type"] = rng.choice(TYPES)
    for _ in range(rng.randrange(4)):
        obj[rng.choice(FIELDS)] = value(rng)
    if obj.get("type") == "speak" and rng.random() < 0.5:
        obj["text"] = rng.choice(["Hello there.", "One. Two. " * 10, "hi", rng.choice(STRINGS)])
    if rng.random() < 0.03:  # a wrong token, which closes even a client let in
        obj["token"] = rng.choice([value(rng), TOKEN + "x", TOKEN.upper()])
    return obj


def frame(rng: random.Random) -> Frame:
    roll = rng.random()
    if roll < 0.55:
        obj = message(rng)
        return Frame(text=json.dumps(obj))
    if roll < 0.65:  # malformed JSON: a message cut short or with bytes changed
        text = json.dumps(message(rng))
        cut = rng.randrange(len(text) + 1)
        return Frame(text=text[:cut] + rng.choice(["", "}", "{", ",", '"', "\\", "NaN"]))
    if roll < 0.73:  # JSON, but not an object
        return Frame(text=json.dumps(value(rng)))
    if roll < 0.81:  # text that is not JSON at all
        return Frame(text="".join(chr(rng.randrange(1, 0xD7FF)) for _ in range(rng.randrange(60))))
    if roll < 0.89:
        return Frame(data=rng.randbytes(rng.randrange(200)), opcode=aiohttp.WSMsgType.BINARY)
    if roll < 0.93:  # deeply nested
        depth = rng.randrange(100, 20_000)
        return Frame(text='{"type": "clear", "ref": ' + "[" * depth + "]" * depth + "}")
    if roll < 0.97:  # invalid UTF-8 in a text frame
        return Frame(data=b'{"type": "speak", "text": "\xff\xfe"}', opcode=aiohttp.WSMsgType.TEXT)
    return Frame(text=json.dumps({"type": "speak", "text": "a" * (MAX_MESSAGE + rng.randrange(9))}))


@dataclass
class Tally:
    answers: dict[str, int] = field(default_factory=dict)
    closes: dict[int, int] = field(default_factory=dict)
    queued: list[str] = field(default_factory=list)  # what the acks say the queue holds

    def count(self, table: dict[Any, int], key: Any) -> None:
        table[key] = table.get(key, 0) + 1


async def send(ws: aiohttp.ClientWebSocketResponse, sent: Frame) -> None:
    if sent.text is not None:
        await ws.send_str(sent.text)
    else:
        await ws.send_frame(sent.data, sent.opcode)


async def outcome(ws: aiohttp.ClientWebSocketResponse) -> Json | int:
    """The answer to the frame just sent, or the close code if the server closed instead."""
    while True:
        received = await ws.receive(timeout=30)
        if received.type is aiohttp.WSMsgType.CLOSE:
            return int(received.data)
        assert received.type is aiohttp.WSMsgType.TEXT, (received.type, received.data)
        answer = json.loads(received.data)
        if answer["type"] != "event":
            return dict(answer)


def check_answer(daemon: WsDaemon, tally: Tally, answer: Json, before: object, sent: Frame) -> None:
    if sent.text is not None and '"ref"' in sent.text and answer["ref"] is not None:
        assert answer["ref"] == json.loads(sent.text)["ref"], (answer, sent)  # echoed as sent
    if answer["type"] == "error":
        assert answer["error"] in ANSWER_CODES, (answer, sent)
        assert isinstance(answer["detail"], str) and answer["detail"], answer
        assert daemon.state() == before, f"a refused frame changed the queue: {sent}"
        tally.count(tally.answers, answer["error"])
        return
    assert answer["type"] == "ack", answer
    tally.count(tally.answers, "ack")
    obj = json.loads(sent.text or "{}")
    if obj.get("type") == "speak":
        tally.queued += [item["id"] for item in answer["items"]]
    elif obj.get("type") == "clear":
        assert [item["id"] for item in answer["items"]] == tally.queued
        tally.queued = []


async def fuzz(daemon: WsDaemon, rng: random.Random, tally: Tally) -> None:
    """Send :data:`FRAMES` frames, each checked as the module says; reconnect when closed."""

    async def authorized() -> aiohttp.ClientWebSocketResponse:
        return await daemon.connect(headers={"Authorization": f"Bearer {TOKEN}"})

    ws = await authorized()
    for n in range(FRAMES):
        sent = frame(rng)
        stranger = n % 50 == 0  # now and then a client without the token
        client = await daemon.connect() if stranger else ws
        before = daemon.state()
        await send(client, sent)
        result = await outcome(client)
        if isinstance(result, int):
            assert result in CLOSE_CODES, (result, sent)
            assert result != UNAUTHORIZED or stranger or sent.has_token, sent
            assert daemon.state() == before, f"a refused frame changed the queue: {sent}"
            tally.count(tally.closes, result)
            if client is ws:
                ws = await authorized()
            continue
        assert not stranger, f"a client without the token got an answer: {result}"
        check_answer(daemon, tally, result, before, sent)
        if stranger:
            await client.close()
    last = Frame(text=json.dumps({"type": "speak", "text": "still answering"}))
    before = daemon.state()
    await send(ws, last)
    answer = await outcome(ws)
    assert isinstance(answer, dict), answer  # answered, not closed
    check_answer(daemon, tally, answer, before, last)


async def test_random_frames_never_break_the_hub(caplog: pytest.LogCaptureFixture) -> None:
    tally = Tally()
    caplog.set_level(logging.ERROR)
    rate = RateLimitConfig(per_minute=30, burst=2)
    async with ws_daemon(token=TOKEN, limit=10, rate=rate) as daemon:
        async with asyncio.timeout(WITHIN_S):
            await fuzz(daemon, random.Random(SEED), tally)
        assert daemon.hub.stats.errors == 0 and daemon.server.stats.errors == 0
        assert [item.id for item in daemon.queue.items()] == tally.queued
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    # The run met every kind of outcome (else the generator has drifted).
    assert set(tally.answers) >= {"ack", "bad_request", "busy", "conflict"}, tally.answers
    assert set(tally.closes) >= CLOSE_CODES, tally.closes
