"""The token on /v1/ws, over real loopback (the real guard, EventHub and SpeechQueue): a
client the handshake did not authorize gets nothing until its first message carries the
token, and is closed with 4401 without it; a wrong token is refused wherever it is sent.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from bridge.control import ws as ws_module
from bridge.control.ws import UNAUTHORIZED
from tests.kit.eventually import eventually
from tests.kit.wsdaemon import ask, closed_with, events_until_synced, ws_daemon

TOKEN = "ws-s3cret-token"


@pytest.mark.parametrize(
    "how",
    [{"headers": {"Authorization": f"Bearer {TOKEN}"}}, {"params": {"token": TOKEN}}],
    ids=["bearer", "query"],
)
async def test_a_token_on_the_handshake_lets_the_client_in_at_once(how: dict[str, Any]) -> None:
    async with ws_daemon(token=TOKEN) as daemon:
        ws = await daemon.connect(**how)
        assert (await ask(ws, {"type": "speak", "text": "hi"}))["type"] == "ack"


async def test_the_token_in_the_first_message_lets_the_client_in() -> None:
    async with ws_daemon(token=TOKEN) as daemon:
        ws = await daemon.connect()
        await eventually(lambda: daemon.hub.snapshot()["clients"] == 1, what="connected")
        daemon.bus.emit("session.state", state="before the token")  # not for it
        assert await ask(ws, {"type": "auth", "token": TOKEN, "ref": "a"}) == {
            "type": "ack",
            "ref": "a",
            "items": [],
        }
        daemon.bus.emit("session.state", state="after the token")
        assert [e["state"] for e in await events_until_synced(ws)] == ["after the token"]


async def test_a_first_speak_message_may_carry_the_token() -> None:
    async with ws_daemon(token=TOKEN) as daemon:
        ws = await daemon.connect()
        reply = await ask(ws, {"type": "speak", "text": "hi", "token": TOKEN})
        assert [i["id"] for i in reply["items"]] == ["s1"]


@pytest.mark.parametrize(
    ("first", "why"),
    [
        ('{"type": "speak", "text": "hi"}', "token: missing"),
        ('{"type": "auth"}', "token: missing"),
        ('{"type": "auth", "token": null}', "token: missing"),
        ('{"type": "auth", "token": "nope"}', "token: wrong"),
        ('{"type": "auth", "token": 12}', "token: wrong"),
        ('{"type": "speak", "text": "hi", "token": "' + TOKEN + 'x"}', "token: wrong"),
        ("not json", "token: missing"),
    ],
)
async def test_without_the_right_token_first_the_client_is_closed_with_4401(
    first: str, why: str
) -> None:
    async with ws_daemon(token=TOKEN) as daemon:
        ws = await daemon.connect()
        await ws.send_str(first)
        code, reason = await closed_with(ws)
        assert code == UNAUTHORIZED and reason is not None and reason.startswith(why), reason
        assert TOKEN not in reason
        assert daemon.queue.items() == []
        assert daemon.hub.stats.unauthorized == 1


async def test_a_binary_first_message_is_not_a_token() -> None:
    async with ws_daemon(token=TOKEN) as daemon:
        ws = await daemon.connect()
        await ws.send_bytes(TOKEN.encode())
        assert (await closed_with(ws))[0] == UNAUTHORIZED


async def test_a_client_that_never_sends_the_token_is_closed_with_4401(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ws_module, "AUTH_WITHIN_S", 0.05)
    async with ws_daemon(token=TOKEN) as daemon:
        ws = await daemon.connect()
        code, reason = await closed_with(ws)
        assert code == UNAUTHORIZED and str(reason).startswith("token: not sent within")


async def test_a_client_that_leaves_before_its_token_is_forgotten() -> None:
    async with ws_daemon(token=TOKEN) as daemon:
        ws = await daemon.connect()
        await eventually(lambda: daemon.hub.snapshot()["clients"] == 1, what="connected")
        await ws.close()
        await eventually(lambda: daemon.hub.snapshot()["clients"] == 0, what="forgotten")


async def test_a_wrong_token_later_closes_even_a_client_let_in() -> None:
    async with ws_daemon(token=TOKEN) as daemon:
        ws = await daemon.connect(headers={"Authorization": f"Bearer {TOKEN}"})
        await ws.send_str(json.dumps({"type": "speak", "text": "hi", "token": "guess"}))
        assert (await closed_with(ws))[0] == UNAUTHORIZED
        assert daemon.queue.items() == []


@pytest.mark.parametrize(
    ("how", "status"),
    [
        ({"params": {"token": "wrong"}}, 401),
        ({"headers": {"Authorization": "Bearer wrong"}}, 401),
        ({"headers": {"Origin": "http://127.0.0.2:9999"}}, 403),
        ({"headers": {"Host": "evil.example"}}, 403),
    ],
    ids=["wrong-query-token", "wrong-bearer", "foreign-origin", "foreign-host"],
)
async def test_the_guard_refuses_the_handshake(how: dict[str, Any], status: int) -> None:
    async with ws_daemon(token=TOKEN) as daemon:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await daemon.connect(**how)
        assert refused.value.status == status
        assert daemon.hub.stats.connections == 0
