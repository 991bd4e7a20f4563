"""Fuzz the Twitch connectors: thousands of random and malformed IRC lines and EventSub frames
(seeded), through the real fakes' WebSockets.  No exception may escape, the connection must
stay up (one connection, no drop), only well-formed chat may reach the queue, and a message
sent after the storm must still be queued."""

from __future__ import annotations

import copy
import json
import random
import re
import string
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.control.twitch.service import TwitchService
from tests.kit.eventually import eventually
from tests.kit.twitch_fakes import TwitchFake, chat_service, said, twitch_fake
from tests.kit.twitch_irc_fake import escape

LINES = 3000
FRAMES = 3000
SEED = 20261129
TOKEN = "fuzz-token-123"
SOURCE = re.compile(r"twitch:#[a-z0-9_]{1,25}:[a-z0-9_]{1,25}")
WORDS = [
    "!say",
    "!ask",
    "!skip",
    "!clear",
    "!pause",
    "!resume",
    "hello",
    "Kappa",
    "",
    " ",
    "é",
    "💬",
    "\x01ACTION",
    "\x00",
    "\\",
    ";",
    ":",
    "=",
    "@",
    "#",
    "http://x.tv",
    "a" * 600,
]
COMMANDS = [
    "PRIVMSG",
    "PING",
    "NOTICE",
    "USERNOTICE",
    "CLEARCHAT",
    "001",
    "JOIN",
    "PART",
    "x",
    "",
    "99999",
    "PRIVMSG PRIVMSG",
]
TAGS = [
    "badges",
    "bits",
    "emotes",
    "first-msg",
    "mod",
    "vip",
    "custom-reward-id",
    "id",
    "display-name",
    "emote-only",
    "",
    "x",
]
TYPES = ["notification", "session_keepalive", "revocation", "session_welcome", "other", "", None, 5]


def text(r: random.Random) -> str:
    pick = r.random()
    if pick < 0.3:
        return " ".join(r.choice(WORDS) for _ in range(r.randint(0, 6)))
    if pick < 0.6:
        return "".join(r.choice(string.printable) for _ in range(r.randint(0, 80)))
    if pick < 0.8:
        return bytes(r.randrange(256) for _ in range(r.randint(0, 60))).decode("latin-1")
    # Any code point a WebSocket text frame can carry (UTF-8 has no lone surrogates).
    points = (r.randrange(0x20, 0x2FFFF) for _ in range(r.randint(0, 40)))
    return "".join(chr(p) for p in points if not 0xD800 <= p <= 0xDFFF)


def irc_line(r: random.Random) -> str:
    if r.random() < 0.15:
        return text(r).replace("\n", "").replace("\r", "")
    tags = ";".join(
        f"{r.choice(TAGS)}={escape(text(r)) if r.random() < 0.5 else text(r)}"
        for _ in range(r.randint(0, 5))
    )
    user = r.choice(["alice", "bob", "Not Valid", "", "x" * 30, "mod_1"])
    prefix = r.choice([f":{user}!{user}@{user}.tmi.twitch.tv", ":tmi.twitch.tv", "", ":"])
    channel = r.choice(["#chan", "#other", "chan", "#", "#UPPER", ""])
    line = f"@{tags} " if tags or r.random() < 0.1 else ""
    line += f"{prefix} {r.choice(COMMANDS)} {channel} :{text(r)}"
    if r.random() < 0.02:
        line += "y" * 20_000
    return line.replace("\r", "").replace("\n", "")


def random_value(r: random.Random, depth: int = 0) -> Any:
    pick = r.randrange(8 if depth < 3 else 5)
    if pick == 0:
        return None
    if pick == 1:
        return r.choice([True, False, 0, -1, 2**70, 1.5])
    if pick in (2, 3, 4):
        return text(r)
    if pick in (5, 6):
        return {r.choice(["text", "type", "id", "x"]): random_value(r, depth + 1) for _ in range(3)}
    return [random_value(r, depth + 1) for _ in range(r.randint(0, 3))]


def mutate(r: random.Random, data: Any) -> Any:
    """``data`` with a few values replaced, keys deleted or added, anywhere in it."""
    for _ in range(r.randint(1, 3)):
        node = data
        while isinstance(node, dict | list) and node and r.random() < 0.7:
            key = r.choice(list(node)) if isinstance(node, dict) else r.randrange(len(node))
            child = node[key]
            if not isinstance(child, dict | list) or r.random() < 0.3:
                action = r.random()
                if action < 0.3 and isinstance(node, dict):
                    del node[key]
                else:
                    node[key] = random_value(r)
                break
            node = child
    return data


def eventsub_frame(r: random.Random, chat: dict[str, Any]) -> str | bytes:
    pick = r.random()
    if pick < 0.1:
        return bytes(r.randrange(256) for _ in range(r.randint(1, 40)))
    if pick < 0.2:
        return text(r)
    if pick < 0.3:
        return json.dumps(random_value(r))
    frame = copy.deepcopy(chat)
    frame["metadata"]["message_id"] = str(r.random())
    if r.random() < 0.3:
        frame["metadata"]["message_type"] = r.choice(TYPES)
    event = frame["payload"]["event"]
    said = r.choice(["!say ", "!ask ", ""]) + text(r)
    event["message"]["text"] = event["message"]["fragments"][0]["text"] = said
    if r.random() < 0.8:
        mutate(r, frame)
    if r.random() < 0.01:
        frame["pad"] = "z" * 300_000
    return json.dumps(frame)


@pytest.fixture
async def fake() -> AsyncIterator[TwitchFake]:
    async with twitch_fake() as fake:
        fake.token(TOKEN, "chan")
        yield fake


def only_chat_was_queued(service: TwitchService, queued: list[tuple[str, str]]) -> None:
    for source, spoken in queued:
        assert SOURCE.fullmatch(source), source
        assert 0 < len(spoken) <= 500
    assert service.stats.drops == 0 and service.stats.connections == 1
    assert service.stats.state == "connected"


async def test_random_irc_lines(fake: TwitchFake) -> None:
    r = random.Random(SEED)
    async with chat_service(fake, ["chan", "other"], chat_commands=["ask"]) as (service, queue):
        await eventually(lambda: fake.joined("chan"), within=15, what="joined")
        for n in range(LINES):
            if n % 100 == 99:
                await fake.irc_raw(bytes(r.randrange(256) for _ in range(30)))
            else:
                await fake.irc_raw(irc_line(r) + "\r\n")
        await fake.privmsg("chan", "boss", "!resume", mod="1")  # the storm may have paused it
        await fake.privmsg("chan", "sentinel", "!say the end")
        await eventually(
            lambda: said(queue)[-1:] == [("twitch:#chan:sentinel", "the end")],
            within=60,
            what="the message after the storm queued",
        )
        only_chat_was_queued(service, said(queue))
        assert service.stats.malformed > LINES // 10


async def test_random_eventsub_frames(fake: TwitchFake) -> None:
    r = random.Random(SEED)
    twitch = {"chat_commands": ["ask"], "rewards": ["r1"]}
    async with chat_service(fake, ["chan"], token=TOKEN, **twitch) as (service, queue):
        await eventually(lambda: service.stats.state == "connected", within=15, what="subscribed")
        connection = fake.current()
        chat = {
            "metadata": {
                "message_id": "",
                "message_type": "notification",
                "message_timestamp": "2026-11-29T12:00:00Z",
            },
            "payload": {
                "subscription": {"type": "channel.chat.message", "version": "1"},
                "event": {
                    "broadcaster_user_login": "chan",
                    "chatter_user_login": "alice",
                    "chatter_user_name": "Alice",
                    "message_id": "m",
                    "message": {"text": "", "fragments": [{"type": "text", "text": ""}]},
                    "message_type": "text",
                    "badges": [{"set_id": "moderator"}],
                    "cheer": None,
                },
            },
        }
        for _ in range(FRAMES):
            await fake.send_raw(eventsub_frame(r, chat), via=connection)
        await fake.chat("chan", "boss", "!resume", badges=("moderator",))  # maybe paused
        await fake.chat("chan", "sentinel", "!say the end")
        await eventually(
            lambda: said(queue)[-1:] == [("twitch:#chan:sentinel", "the end")],
            within=60,
            what="the message after the storm queued",
        )
        only_chat_was_queued(service, said(queue))
        assert service.stats.malformed > FRAMES // 10
        assert service.stats.accepted > 10  # some of the random chat was well-formed
