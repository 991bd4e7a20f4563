"""Twitch chat over the EventSub WebSocket with Helix, against fakes that speak the protocol:
token validation, subscriptions in the welcome's session, notifications, keepalive timeout,
session_reconnect to a new URL, revocation, scope errors, reward redemptions and replies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.control.twitch.service import TwitchService
from tests.kit.eventually import eventually
from tests.kit.twitch_fakes import (
    CHAT,
    REDEMPTION,
    TwitchFake,
    chat_service,
    said,
    twitch_fake,
)

TOKEN = "bot-token-abc123"
BROADCASTER_TOKEN = "broadcaster-token-xyz789"


@pytest.fixture
async def fake() -> AsyncIterator[TwitchFake]:
    async with twitch_fake() as fake:
        fake.token(TOKEN, "chatbot", ("user:read:chat", "user:write:chat"))
        fake.token(BROADCASTER_TOKEN, "chan")
        fake.user("other")
        yield fake


async def subscribed(fake: TwitchFake, service: TwitchService, count: int, times: int = 1) -> None:
    await eventually(
        lambda: (
            service.stats.state == "connected"
            and service.stats.connections == times
            and len(fake.subscriptions) == count
        ),
        within=15,
        what=f"{count} subscriptions on connection {times}",
    )


async def test_welcome_subscribes_and_chat_is_queued_in_order(fake: TwitchFake) -> None:
    async with chat_service(fake, ["chan", "other"], token=TOKEN) as (service, queue):
        await subscribed(fake, service, 2)
        session = fake.current().session_id
        assert {(s["type"], s["transport"]["session_id"]) for s in fake.subscriptions} == {
            (CHAT, session)
        }
        assert [s["condition"] for s in fake.subscriptions] == [
            {"broadcaster_user_id": fake.users["chan"], "user_id": fake.users["chatbot"]},
            {"broadcaster_user_id": fake.users["other"], "user_id": fake.users["chatbot"]},
        ]
        for n in range(5):
            await fake.chat("chan" if n % 2 else "other", f"user{n}", f"!say number {n}")
        await eventually(lambda: len(said(queue)) == 5, what="five requests queued")
        assert said(queue) == [
            (f"twitch:#{'chan' if n % 2 else 'other'}:user{n}", f"number {n}") for n in range(5)
        ]
        assert service.snapshot()["transport"] == "eventsub"


async def test_roles_bits_and_first_messages_from_the_event(fake: TwitchFake) -> None:
    twitch = {"allow": ["vip", "moderator"], "min_bits": 10, "first_time": "hold"}
    async with chat_service(fake, ["chan"], token=TOKEN, **twitch) as (service, queue):
        await subscribed(fake, service, 1)
        await fake.chat("chan", "pleb", "!say no", bits=50)
        await fake.chat("chan", "vip", "!say stingy", badges=("vip",))
        await fake.chat("chan", "vip2", "!say paid", badges=("vip",), bits=10)
        await fake.chat(
            "chan", "mod", "!say hello", badges=("moderator",), message_type="user_intro"
        )
        await fake.chat("chan", "mod2", "!say staff", badges=("moderator",))
        await eventually(lambda: service.stats.received == 5, what="five messages read")
        assert [text for _, text in said(queue)] == ["paid", "staff"]


async def test_emotes_and_cheermotes_are_not_said(fake: TwitchFake) -> None:
    fragments: list[dict[str, Any]] = [
        {"type": "cheermote", "text": "Cheer100", "cheermote": {"prefix": "cheer", "bits": 100}},
        {"type": "text", "text": " !say so "},
        {"type": "emote", "text": "Kappa", "emote": {"id": "25"}},
        {"type": "text", "text": " good"},
    ]
    async with chat_service(fake, ["chan"], token=TOKEN) as (service, queue):
        await subscribed(fake, service, 1)
        await fake.chat("chan", "a", "Cheer100 !say so Kappa good", fragments=fragments, bits=100)
        await eventually(lambda: said(queue) == [("twitch:#chan:a", "so good")], what="queued")


async def test_a_reward_redemption_is_said_once(fake: TwitchFake) -> None:
    twitch = {"rewards": ["reward-say"], "allow": ["broadcaster"], "user_cooldown_s": 60}
    async with chat_service(fake, ["chan"], token=BROADCASTER_TOKEN, **twitch) as (service, queue):
        await subscribed(fake, service, 2)
        assert {s["type"] for s in fake.subscriptions} == {CHAT, REDEMPTION}
        await fake.redeem("chan", "fan", "reward-say", "hello from the points")
        # Twitch also shows the text in chat, with the reward's id: said once, not twice.
        await fake.chat("chan", "fan", "hello from the points", reward_id="reward-say")
        await fake.redeem("chan", "fan", "reward-say", "and again")
        await fake.redeem("chan", "fan", "another-reward", "not ours")
        await eventually(lambda: service.stats.received == 4, what="four messages read")
        assert said(queue) == [
            ("twitch:#chan:fan", "hello from the points"),
            ("twitch:#chan:fan", "and again"),
        ]


async def test_a_missed_keepalive_means_a_new_connection(fake: TwitchFake) -> None:
    fake.keepalive_s = 1
    async with chat_service(fake, ["chan"], token=TOKEN) as (service, queue):
        await subscribed(fake, service, 1)
        first = fake.current().session_id
        fake.silent = True
        await eventually(lambda: service.stats.drops == 1, within=15, what="the silence noticed")
        assert "no keepalive" in (service.stats.error or "")
        fake.silent = False
        await eventually(
            lambda: (
                service.stats.state == "connected"
                and any(s["transport"]["session_id"] != first for s in fake.subscriptions)
            ),
            within=15,
            what="subscribed again on a new session",
        )
        await fake.chat("chan", "a", "!say back again")
        await eventually(lambda: len(said(queue)) == 1, what="queued after reconnecting")


async def test_session_reconnect_moves_without_losing_messages(fake: TwitchFake) -> None:
    async with chat_service(fake, ["chan"], token=TOKEN) as (service, queue):
        await subscribed(fake, service, 1)
        await fake.chat("chan", "a", "!say one")
        old, new = await fake.move()
        assert new.path == "/eventsub/moved" and new.session_id == old.session_id
        await fake.chat("chan", "b", "!say two", via=old)  # still in flight on the old one
        await fake.close(old)
        await fake.chat("chan", "c", "!say three", via=new)
        await eventually(lambda: len(said(queue)) == 3, what="all three queued")
        assert [text for _, text in said(queue)] == ["one", "two", "three"]
        assert (service.stats.reconnects, service.stats.drops) == (1, 0)
        assert len(fake.subscriptions) == 1  # they moved with the session: none made again
        assert service.stats.state == "connected"


async def test_a_duplicate_delivery_is_said_once(fake: TwitchFake) -> None:
    async with chat_service(fake, ["chan"], token=TOKEN) as (service, queue):
        await subscribed(fake, service, 1)
        event = {
            "broadcaster_user_login": "chan",
            "chatter_user_login": "a",
            "chatter_user_name": "A",
            "message_id": "x",
            "message": {"text": "!say once", "fragments": [{"type": "text", "text": "!say once"}]},
        }
        for _ in range(2):
            await fake.notify(CHAT, fake.users["chan"], event, message_id="same-id")
        await fake.chat("chan", "b", "!say after")
        await eventually(lambda: len(said(queue)) == 2, what="two queued")
        assert [text for _, text in said(queue)] == ["once", "after"]
        assert service.stats.duplicates == 1


async def test_a_revocation_is_counted_and_shown(fake: TwitchFake) -> None:
    async with chat_service(fake, ["chan"], token=TOKEN) as (service, _):
        await subscribed(fake, service, 1)
        await fake.revoke(CHAT)
        await eventually(lambda: service.stats.revocations[CHAT] == 1, what="the revocation")
        assert "revoked channel.chat.message (authorization_revoked)" in str(service.snapshot())


async def test_a_closed_connection_comes_back_and_subscribes_again(fake: TwitchFake) -> None:
    async with chat_service(fake, ["chan"], token=TOKEN) as (service, queue):
        await subscribed(fake, service, 1)
        await fake.close(fake.current(), code=4000)
        await subscribed(fake, service, 2, times=2)
        assert service.stats.drops == 1 and "4000" in (service.stats.last_drop or "")
        await fake.chat("chan", "a", "!say hi")
        await eventually(lambda: len(said(queue)) == 1, what="queued")


async def test_a_refused_token_stops_chat_with_a_clear_error(fake: TwitchFake) -> None:
    async with chat_service(fake, ["chan"], token="wrong-token-123") as (service, _):
        await eventually(lambda: service.stats.state == "failed", what="failed")
        error = service.stats.error or ""
        assert "refused TWITCH_TOKEN" in error and "wrong-token-123" not in error
        assert fake.es_opened == 0


async def test_a_missing_scope_is_named_at_start(fake: TwitchFake) -> None:
    fake.token("read-only-token", "chatbot", ("user:read:chat",))
    async with chat_service(fake, ["chan"], token="read-only-token", replies=True) as (service, _):
        await eventually(lambda: service.stats.state == "failed", what="failed")
        assert "user:write:chat" in (service.stats.error or "")
        assert fake.es_opened == 0


async def test_a_refused_subscription_names_the_scope(fake: TwitchFake) -> None:
    # The bot's token has the scope, but only the broadcaster's token may read redemptions.
    fake.token("bot-with-scope", "chatbot")
    twitch = {"rewards": ["r"]}
    async with chat_service(fake, ["chan"], token="bot-with-scope", **twitch) as (service, _):
        await eventually(lambda: service.stats.state == "failed", within=15, what="failed")
        error = service.stats.error or ""
        assert REDEMPTION in error and "channel:read:redemptions" in error
        assert "subscription missing proper authorization" in error


async def test_an_unknown_channel_is_named(fake: TwitchFake) -> None:
    async with chat_service(fake, ["nobody_here"], token=TOKEN) as (service, _):
        await eventually(lambda: service.stats.state == "failed", what="failed")
        assert "no channel nobody_here" in (service.stats.error or "")


async def test_replies_go_through_helix(fake: TwitchFake) -> None:
    twitch = {"replies": True, "allow": ["subscriber"]}
    async with chat_service(fake, ["chan"], token=TOKEN, **twitch) as (service, _):
        await subscribed(fake, service, 1)
        await fake.chat("chan", "sub", "!say hi", badges=("subscriber",))
        await fake.chat("chan", "pleb", "!say hi")
        await eventually(lambda: len(fake.chat_sent) == 2, what="two replies")
        assert [m["message"] for m in fake.chat_sent] == [
            "@Sub queued #1",
            "@Pleb only for subscriber",
        ]
        assert {m["broadcaster_id"] for m in fake.chat_sent} == {fake.users["chan"]}
        assert {m["sender_id"] for m in fake.chat_sent} == {fake.users["chatbot"]}
        assert all(m["reply_parent_message_id"] for m in fake.chat_sent)


async def test_replies_stay_within_twitchs_rate(fake: TwitchFake) -> None:
    twitch = {"replies": True, "allow": ["broadcaster"]}
    async with chat_service(fake, ["chan"], token=TOKEN, **twitch) as (service, _):
        await subscribed(fake, service, 1)
        for n in range(30):
            await fake.chat("chan", f"user{n}", "!say refused")
        await eventually(lambda: service.stats.received == 30, what="thirty read")
        await eventually(lambda: len(fake.chat_sent) == 20, what="twenty replies")
        assert service.stats.replies_dropped == 10
        assert service.snapshot()["replies"] == {"sent": 20, "dropped": 10}


async def test_replies_are_off_unless_enabled(fake: TwitchFake) -> None:
    async with chat_service(fake, ["chan"], token=TOKEN) as (service, queue):
        await subscribed(fake, service, 1)
        await fake.chat("chan", "a", "!say hi")
        await eventually(lambda: len(said(queue)) == 1, what="queued")
        assert fake.chat_sent == []


async def test_garbage_frames_are_counted_not_fatal(fake: TwitchFake) -> None:
    async with chat_service(fake, ["chan"], token=TOKEN) as (service, queue):
        await subscribed(fake, service, 1)
        await fake.send_raw("not json")
        await fake.send_raw(b"\xff\xfe\x00")
        await fake.send_raw(
            json.dumps({"metadata": {"message_id": "1", "message_type": "new"}, "payload": {}})
        )
        await fake.send_raw("[" + "1," * 200_000 + "1]")
        await fake.chat("chan", "a", "!say fine")
        await eventually(lambda: len(said(queue)) == 1, what="queued")
        assert (service.stats.malformed, service.stats.unknown) == (3, 1)
        assert fake.es_opened == 1
