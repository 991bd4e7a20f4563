"""The WebSocket /v1/ws over real loopback: the real control API (guard included), EventHub
and SpeechQueue against real aiohttp clients.

What a client can count on: every message gets an ack (with the items' ids) or an error
(the HTTP API's code, the cause named); a refused message changes nothing; events come in
the order they happened, filtered as it subscribed; a one-shot client's speech is queued; a
slow client is dropped while the others and the daemon go on; shutdown closes everyone with
1001.  (The token: test_ws_token.py.)
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
import time
from typing import Any

import aiohttp
import pytest

from bridge.config import RateLimitConfig
from bridge.control.ws import MAX_MESSAGE
from tests.kit.eventually import eventually
from tests.kit.wsdaemon import (
    WsDaemon,
    ask,
    events_until_synced,
    next_json,
    small_receive_buffer,
    ws_daemon,
)

TOKEN = "ws-s3cret-token"
TWO_SENTENCES = "The first sentence is here. And the second one follows it."


@pytest.fixture
async def daemon() -> Any:
    async with ws_daemon() as running:
        yield running


# --- commands and their answers -------------------------------------------------------------


async def test_speak_is_acked_with_its_items_in_speaking_order(daemon: WsDaemon) -> None:
    ws = await daemon.connect()
    reply = await ask(ws, {"type": "speak", "text": TWO_SENTENCES, "mode": "chat", "ref": 7})
    assert reply["type"] == "ack" and reply["ref"] == 7
    items = reply["items"]
    assert [(i["id"], i["request_id"], i["part"], i["parts"]) for i in items] == [
        ("s1", "r1", 1, 2),
        ("s2", "r1", 2, 2),
    ]
    assert [i["text"] for i in items] == ["The first sentence is here.", TWO_SENTENCES[28:]]
    assert {(i["mode"], i["state"], i["source"]) for i in items} == {("chat", "queued", "ws:1")}
    assert [item.id for item in daemon.queue.items()] == ["s1", "s2"]


async def test_control_characters_are_removed_from_spoken_text(daemon: WsDaemon) -> None:
    ws = await daemon.connect()
    reply = await ask(ws, {"type": "speak", "text": "he\u0000llo\u0007 there\u001b"})
    assert [i["text"] for i in reply["items"]] == ["hello there"]


async def test_clear_drops_what_waits_and_acks_the_dropped_items(daemon: WsDaemon) -> None:
    ws = await daemon.connect()
    await ask(ws, {"type": "speak", "text": "one"})
    await ask(ws, {"type": "speak", "text": "two"})
    reply = await ask(ws, {"type": "clear", "ref": "c"})
    assert [(i["id"], i["state"], i["detail"]) for i in reply["items"]] == [
        ("s1", "dropped", "cleared"),
        ("s2", "dropped", "cleared"),
    ]
    assert daemon.queue.items() == []


async def test_interrupt_without_a_session_is_a_conflict(daemon: WsDaemon) -> None:
    ws = await daemon.connect()
    reply = await ask(ws, {"type": "interrupt", "ref": "i"})
    assert (reply["type"], reply["ref"], reply["error"]) == ("error", "i", "conflict")


async def test_interrupt_with_nothing_spoken_acks_no_item() -> None:
    async with ws_daemon(avatar=True) as daemon:
        ws = await daemon.connect()
        assert await ask(ws, {"type": "interrupt", "ref": 1}) == {
            "type": "ack",
            "ref": 1,
            "items": [],
        }


async def test_a_source_over_its_rate_is_busy_with_retry_after() -> None:
    async with ws_daemon(rate=RateLimitConfig(per_minute=1, burst=2)) as daemon:
        ws = await daemon.connect()
        for text in ("one", "two"):
            assert (await ask(ws, {"type": "speak", "text": text}))["type"] == "ack"
        before = daemon.state()
        reply = await ask(ws, {"type": "speak", "text": "three", "ref": "x"})
        assert (reply["type"], reply["ref"], reply["error"]) == ("error", "x", "busy")
        assert isinstance(reply["retry_after"], int) and reply["retry_after"] >= 1
        assert daemon.state() == before


OBJECT_REFUSALS = [
    ({"text": "hi"}, "type: None is not one of auth, speak, interrupt, clear, subscribe"),
    ({"type": "sing"}, "type: 'sing' is not one of"),
    ({"type": 5}, "type: 5 is not one of"),
    ({"type": "speak"}, "text: must be a string"),
    ({"type": "speak", "text": 5}, "text: must be a string"),
    ({"type": "speak", "text": ""}, "text: is empty"),
    ({"type": "speak", "text": " \n\t "}, "text: is empty"),
    ({"type": "speak", "text": "\u0000\u0007\u001b\u007f"}, "text: is empty"),
    ({"type": "speak", "text": "a\ud800b"}, "text: contains a lone surrogate"),
    ({"type": "speak", "text": "a" * 2001}, "text: is 2001 characters; at most 2000"),
    ({"type": "speak", "text": "hi", "mode": "shout"}, "mode: 'shout' is not one of"),
    ({"type": "speak", "text": "hi", "mode": None}, "mode: None is not one of"),
    ({"type": "speak", "text": "hi", "priority": "later"}, "priority: 'later' is not one of"),
    ({"type": "speak", "text": "hi", "volume": 3}, "volume: unknown field for speak"),
    ({"type": "interrupt", "text": "hi"}, "text: unknown field for interrupt"),
    ({"type": "subscribe", "topics": "speech.*"}, "topics: must be a list"),
    ({"type": "subscribe", "topics": ["speech.[ab]"]}, "topics: 'speech.[ab]' is not a topic"),
    ({"type": "subscribe", "topics": [5]}, "topics: 5 is not a topic pattern"),
    ({"type": "subscribe", "topics": ["a"] * 33}, "topics: has 33 patterns; at most 32"),
]


@pytest.mark.parametrize(("message", "detail"), OBJECT_REFUSALS)
async def test_a_bad_message_gets_an_error_naming_the_cause_and_changes_nothing(
    daemon: WsDaemon, message: dict[str, Any], detail: str
) -> None:
    ws = await daemon.connect()
    before = daemon.state()
    reply = await ask(ws, {**message, "ref": ["my", "ref"]})
    assert reply["type"] == "error" and reply["ref"] == ["my", "ref"], reply
    assert reply["error"] == "bad_request"
    assert reply["detail"].startswith(detail), reply["detail"]
    assert daemon.state() == before
    assert (await ask(ws, {"type": "speak", "text": "still here"}))["type"] == "ack"


NOT_AN_OBJECT = [
    ("not json", "message: is not valid JSON"),
    ("", "message: is not valid JSON"),
    ('{"type": "speak", "text": "hi"', "message: is not valid JSON"),
    ('{"type": "speak", "text": "hi", "ref": NaN}', "message: is not valid JSON"),
    ('{"type": "speak", "text": "hi", "ref": 1e999}', "message: is not valid JSON"),
    ('{"type": "clear", "ref": ' + "[" * 20_000 + "]" * 20_000 + "}", "message: is nested"),
    ("[1, 2]", "message: must be a JSON object"),
    ('"speak"', "message: must be a JSON object"),
    ("null", "message: must be a JSON object"),
]


@pytest.mark.parametrize(("frame", "detail"), NOT_AN_OBJECT)
async def test_a_frame_that_is_not_a_json_object_gets_an_error_and_changes_nothing(
    daemon: WsDaemon, frame: str, detail: str
) -> None:
    ws = await daemon.connect()
    await ask(ws, {"type": "speak", "text": "queued before"})
    before = daemon.state()
    reply = await ask(ws, frame)
    assert (reply["type"], reply["ref"], reply["error"]) == ("error", None, "bad_request")
    assert reply["detail"].startswith(detail), reply["detail"]
    assert daemon.state() == before


async def test_a_binary_frame_gets_an_error(daemon: WsDaemon) -> None:
    ws = await daemon.connect()
    await ws.send_bytes(json.dumps({"type": "speak", "text": "hi"}).encode())
    reply = await next_json(ws)
    assert (reply["type"], reply["error"]) == ("error", "bad_request")
    assert reply["detail"] == "message: must be JSON text"
    assert daemon.queue.items() == []


async def test_a_frame_over_the_size_limit_closes_the_connection_with_1009(
    daemon: WsDaemon,
) -> None:
    ws = await daemon.connect()
    await ws.send_str(json.dumps({"type": "speak", "text": "a" * MAX_MESSAGE}))
    closed = await ws.receive(timeout=10)
    assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 1009
    assert daemon.queue.items() == []
    assert daemon.hub.stats.errors == 0


# --- events ---------------------------------------------------------------------------------


async def test_events_come_in_order_with_item_ids_after_the_ack() -> None:
    async with ws_daemon(avatar=True) as daemon:
        ws = await daemon.connect()
        await ask(ws, {"type": "subscribe", "topics": ["speech.*"]})
        reply = await ask(ws, {"type": "speak", "text": TWO_SENTENCES})
        assert [i["id"] for i in reply["items"]] == ["s1", "s2"]
        seen: list[tuple[str, str]] = []
        while len(seen) < 8:
            event = await next_json(ws)
            assert event["type"] == "event", event
            assert event["item"]["state"] == event["topic"].removeprefix("speech.")
            assert event["item"]["id"] == event["id"] and event["request_id"] == "r1"
            seen.append((event["topic"], event["id"]))
        assert seen == [
            ("speech.queued", "s1"),
            ("speech.queued", "s2"),
            ("speech.sending", "s1"),
            ("speech.speaking", "s1"),
            ("speech.done", "s1"),
            ("speech.sending", "s2"),
            ("speech.speaking", "s2"),
            ("speech.done", "s2"),
        ]
        assert daemon.avatar is not None and daemon.avatar.said == [
            i["text"] for i in reply["items"]
        ]


async def test_an_event_carries_its_topic_time_and_data(daemon: WsDaemon) -> None:
    ws = await daemon.connect()
    await events_until_synced(ws)  # registered
    before = time.time()
    daemon.bus.emit("session.state", state="live", previous="starting", session_id="abc")
    [event] = await events_until_synced(ws)
    assert event.pop("at") >= round(before, 3) - 0.001
    assert event == {
        "type": "event",
        "topic": "session.state",
        "state": "live",
        "previous": "starting",
        "session_id": "abc",
    }


async def test_each_client_gets_the_topics_it_subscribed_to(daemon: WsDaemon) -> None:
    speech, session, nothing, everything = [await daemon.connect() for _ in range(4)]
    subscriptions = [
        (speech, ["speech.*"]),
        (session, ["session.*", "camera.state"]),
        (nothing, []),
        (everything, ["speech.*", "*"]),
    ]
    for ws, patterns in subscriptions:
        reply = await ask(ws, {"type": "subscribe", "topics": patterns})
        assert reply["topics"] == (["*"] if "*" in patterns else patterns)
    daemon.bus.emit("session.state", state="live")
    daemon.bus.emit("camera.state", state="writing")
    daemon.bus.emit("camera.other", state="x")
    await ask(speech, {"type": "speak", "text": "hi"})
    daemon.bus.emit("avatar.speak_started", task_id="t1")

    async def topics(ws: aiohttp.ClientWebSocketResponse) -> list[str]:
        return [e["topic"] for e in await events_until_synced(ws)]

    assert await topics(speech) == ["speech.queued"]  # its own, after the ack
    assert await topics(session) == ["session.state", "camera.state"]
    assert await topics(nothing) == []
    assert await topics(everything) == [
        "session.state",
        "camera.state",
        "camera.other",
        "speech.queued",
        "avatar.speak_started",
    ]


# --- one-shot clients -----------------------------------------------------------------------


async def test_a_one_shot_client_gets_its_speech_queued(daemon: WsDaemon) -> None:
    """Stream Deck's WebSocket action: open, send one message, close, never read."""
    async with daemon.http.ws_connect(daemon.url) as ws:
        await ws.send_str(json.dumps({"type": "speak", "text": "from a button"}))
    await eventually(lambda: daemon.queue.items(), what="the item queued")
    [item] = daemon.queue.items()
    assert (item.text, item.state) == ("from a button", "queued")
    assert daemon.hub.stats.errors == 0


async def test_a_one_shot_client_with_its_token_in_the_message() -> None:
    async with ws_daemon(token=TOKEN) as daemon:
        async with daemon.http.ws_connect(daemon.url) as ws:
            await ws.send_str(json.dumps({"type": "speak", "text": "button", "token": TOKEN}))
        await eventually(lambda: daemon.queue.items(), what="the item queued")


# --- slow clients and shutdown --------------------------------------------------------------


async def test_a_slow_client_is_dropped_while_a_fast_one_gets_every_event() -> None:
    async with (
        ws_daemon(buffer=16) as daemon,
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(socket_factory=small_receive_buffer)
        ) as never_reads,
    ):
        fast = await daemon.connect()
        slow = await daemon.connect(session=never_reads)
        await eventually(lambda: daemon.hub.snapshot()["clients"] == 2, what="both connected")
        payload = "x" * 8192
        sent, longest_emit = 0, 0.0
        while daemon.hub.stats.dropped_slow == 0:
            assert sent < 5000, "the slow client was never dropped"
            for _ in range(4):
                started = time.perf_counter()
                daemon.bus.emit("test.big", seq=sent, text=payload)
                longest_emit = max(longest_emit, time.perf_counter() - started)
                sent += 1
            for expected in range(sent - 4, sent):  # the fast client keeps up
                event = await next_json(fast)
                assert event["seq"] == expected
        assert daemon.hub.stats.dropped_slow == 1
        assert longest_emit < 0.5, "emit waited for a client"  # generous: it takes µs
        # The others go on: the fast client still gets events, a new one gets its answers.
        daemon.bus.emit("test.after", seq=sent)
        assert (await next_json(fast))["seq"] == sent
        late = await daemon.connect()
        assert (await ask(late, {"type": "speak", "text": "hi"}))["type"] == "ack"
        # The slow one cannot even take its close frame: it is cut (its unread data would
        # otherwise hold the server's socket open for ever), and gone from the hub.
        await eventually(
            lambda: daemon.hub.snapshot()["clients"] == 2, within=20, what="slow one gone"
        )
        await eventually(
            lambda: server_side_connections(daemon.server.port) == 2,
            within=20,
            what="the slow client's connection cut",
        )
        await slow.close()


async def test_a_client_that_vanishes_while_the_server_waits_to_write_is_forgotten(
    caplog: pytest.LogCaptureFixture,
) -> None:
    made: list[socket.socket] = []

    def recorded(addr_info: Any) -> socket.socket:
        made.append(small_receive_buffer(addr_info))
        return made[-1]

    async with ws_daemon() as daemon:
        vanishing = aiohttp.ClientSession(connector=aiohttp.TCPConnector(socket_factory=recorded))
        await daemon.connect(session=vanishing)
        await eventually(lambda: daemon.hub.snapshot()["clients"] == 1, what="connected")
        for seq in range(2000):
            daemon.bus.emit("test.big", seq=seq, text="x" * 8192)
            await asyncio.sleep(0)  # the writer takes each at once, until it waits to write
            if daemon.hub.snapshot()["waiting"] > 8:
                break
        else:
            raise AssertionError("the server's writes never had to wait")
        # SO_LINGER 0: closing sends a reset, as a client whose machine drops off does.
        made[0].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await vanishing.close()
        await eventually(lambda: daemon.hub.snapshot()["clients"] == 0, what="forgotten")
        assert daemon.hub.stats.errors == 0 and daemon.server.stats.errors == 0
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def server_side_connections(port: int) -> int:
    """Established TCP connections whose local port is ``port``: the server's ends."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            next(rows)
            for row in rows:
                local, state = row.split()[1], row.split()[3]
                count += state == "01" and int(local.rpartition(":")[2], 16) == port
    return count


async def test_close_sends_going_away_to_every_client(daemon: WsDaemon) -> None:
    clients = [await daemon.connect() for _ in range(3)]
    await eventually(lambda: daemon.hub.snapshot()["clients"] == 3, what="all connected")
    await daemon.hub.close()
    for ws in clients:
        message = await ws.receive(timeout=10)
        assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1001)
    assert daemon.hub.snapshot()["clients"] == 0
    late = await daemon.connect()
    message = await late.receive(timeout=10)
    assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1001)


async def test_a_client_that_leaves_is_forgotten(daemon: WsDaemon) -> None:
    ws = await daemon.connect()
    await events_until_synced(ws)
    await ws.close()
    await eventually(lambda: daemon.hub.snapshot()["clients"] == 0, what="forgotten")
    daemon.bus.emit("session.state", state="nobody listens")
    await asyncio.sleep(0)
    assert daemon.hub.stats.dropped_slow == 0
