"""Anonymous, read-only Twitch chat over IRC-over-WebSocket, against a fake that speaks the
protocol: the login, tags, several channels, PING, RECONNECT and dropped connections."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from bridge.control.twitch.service import TwitchService
from tests.kit.eventually import eventually
from tests.kit.twitch_fakes import TwitchFake, chat_service, said, twitch_fake


@pytest.fixture
async def fake() -> AsyncIterator[TwitchFake]:
    async with twitch_fake() as fake:
        yield fake


async def joined(fake: TwitchFake, service: TwitchService, *channels: str, times: int = 1) -> None:
    await eventually(
        lambda: (
            service.stats.connections == times
            and service.stats.state == "connected"
            and all(fake.joined(c) for c in channels)
        ),
        within=15,
        what=f"connection {times} joined to {channels}",
    )


async def test_anonymous_login_with_tags_in_several_channels(fake: TwitchFake) -> None:
    async with chat_service(fake, ["#First", "second"]) as (service, queue):
        await joined(fake, service, "first", "second")
        assert fake.irc_received[0] == "CAP REQ :twitch.tv/tags twitch.tv/commands"
        nick = next(line for line in fake.irc_received if line.startswith("NICK "))
        assert re.fullmatch(r"NICK justinfan[0-9]+", nick)
        assert "JOIN #first,#second" in fake.irc_received
        await fake.privmsg("first", "alice", "!say hello from one")
        await fake.privmsg("second", "bob", "!say hello from two")
        await fake.privmsg("first", "carol", "just chatting")
        await eventually(lambda: len(said(queue)) == 2, what="two requests queued")
        assert said(queue) == [
            ("twitch:#first:alice", "hello from one"),
            ("twitch:#second:bob", "hello from two"),
        ]
        assert service.snapshot()["transport"] == "irc"
        assert service.stats.ignored == 1


async def test_permissions_come_from_the_tags(fake: TwitchFake) -> None:
    async with chat_service(fake, ["chan"], allow=["subscriber", "moderator"]) as (service, queue):
        await joined(fake, service, "chan")
        await fake.privmsg("chan", "viewer", "!say no", badges="")
        await fake.privmsg("chan", "sub", "!say sub", badges="subscriber/3", subscriber="1")
        await fake.privmsg("chan", "mod", "!say mod", mod="1")
        await fake.privmsg("chan", "last", "!say last", badges="vip/1")
        await eventually(lambda: service.stats.received == 4, what="four messages read")
        assert [text for _, text in said(queue)] == ["sub", "mod"]


async def test_reward_messages_and_emotes(fake: TwitchFake) -> None:
    async with chat_service(fake, ["chan"], rewards=["reward-1"]) as (service, queue):
        await joined(fake, service, "chan")
        await fake.privmsg("chan", "fan", "make it say this", **{"custom-reward-id": "reward-1"})
        await fake.privmsg("chan", "fan", "!say hi Kappa", emotes="25:8-12")
        await fake.privmsg("chan", "fan", "!say Kappa", emotes="25:5-9", **{"emote-only": "1"})
        await eventually(lambda: service.stats.received == 3, what="three messages read")
        assert [text for _, text in said(queue)] == ["make it say this", "hi"]
        assert service.stats.refused == {"emotes only": 1}


async def test_ping_is_answered_with_pong(fake: TwitchFake) -> None:
    async with chat_service(fake, ["chan"]) as (service, _):
        await joined(fake, service, "chan")
        await fake.irc_ping()
        await eventually(lambda: fake.pongs == 1, what="PONG")
        assert "PONG :tmi.twitch.tv" in fake.irc_received


async def test_reconnect_joins_again_and_keeps_reading(fake: TwitchFake) -> None:
    async with chat_service(fake, ["chan"]) as (service, queue):
        await joined(fake, service, "chan")
        await fake.privmsg("chan", "a", "!say before")
        await eventually(lambda: len(said(queue)) == 1, what="the first queued")
        await fake.irc_reconnect()
        await joined(fake, service, "chan", times=2)
        await fake.privmsg("chan", "b", "!say after")
        await eventually(lambda: len(said(queue)) == 2, what="the second queued")
        assert [text for _, text in said(queue)] == ["before", "after"]
        assert (service.stats.reconnects, service.stats.drops) == (1, 0)


async def test_a_dropped_connection_comes_back(fake: TwitchFake) -> None:
    async with chat_service(fake, ["chan"]) as (service, queue):
        await joined(fake, service, "chan")
        await fake.irc_drop()
        await joined(fake, service, "chan", times=2)
        assert service.stats.drops == 1 and fake.irc_opened == 2
        await fake.privmsg("chan", "b", "!say still here")
        await eventually(lambda: said(queue) == [("twitch:#chan:b", "still here")], what="queued")


async def test_an_unreachable_server_is_tried_again_with_backoff(fake: TwitchFake) -> None:
    await fake.stop()  # nobody listens there any more
    async with chat_service(fake, ["chan"]) as (service, _):
        await eventually(lambda: service.stats.drops >= 2, within=15, what="two failed tries")
        assert service.stats.state == "reconnecting" and service.stats.connections == 0
        assert "Connect" in (service.stats.error or "")


async def test_malformed_lines_are_counted_and_skipped(fake: TwitchFake) -> None:
    async with chat_service(fake, ["chan"]) as (service, queue):
        await joined(fake, service, "chan")
        await fake.irc_raw("@\r\n:only-a-prefix\r\n\x00\x01\r\n")
        await fake.irc_raw(":x!x@x PRIVMSG nochannel :hi\r\n")
        await fake.irc_raw(b"\xff\xfe PRIVMSG #chan :bad bytes\r\n")
        await fake.irc_raw("@a=b :x!x@x PRIVMSG #chan :" + "y" * 20_000 + "\r\n")
        await fake.irc_raw(":tmi.twitch.tv USERNOTICE #chan :a kind of line we do not use\r\n")
        await fake.privmsg("chan", "fine", "!say still fine")
        await eventually(lambda: len(said(queue)) == 1, what="the good line queued")
        assert service.stats.malformed == 6  # three lines, no channel, bad bytes, too long
        assert fake.irc_opened == 1  # never disconnected
