"""Twitch chat rules, through the gate into a real speech queue: who may speak, how often, how
much, what text, and what moderators can do."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.config import RateLimitConfig, TwitchConfig
from bridge.control.queue import SpeechQueue
from bridge.control.twitch.chat import ChatMessage
from bridge.control.twitch.gate import ChatGate
from bridge.control.twitch.rules import Rules
from bridge.control.twitch.stats import TwitchStats
from bridge.eventbus import EventBus
from bridge.providers.base import SpeakMode
from tests.kit.eventually import eventually


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Chat:
    """A gate over a real queue (not running: items stay queued), its clock and counters."""

    def __init__(self, rate: RateLimitConfig | None = None, **twitch: Any) -> None:
        cfg = TwitchConfig.model_validate(
            {"enabled": True, "channels": ["chan"], "user_cooldown_s": 0, **twitch}
        )
        self.clock = Clock()
        self.queue = SpeechQueue(bus=EventBus(), max_item=200, limit=50, rate=rate)
        self.stats = TwitchStats(transport="irc", channels=["chan"])
        self.gate = ChatGate(rules=Rules(cfg, clock=self.clock), queue=self.queue, stats=self.stats)

    async def say(self, text: str, user: str = "viewer", **fields: Any) -> str | None:
        message = ChatMessage(channel="chan", user=user, text=text, **fields)
        return (await self.gate.handle(message)).reply

    def queued(self) -> list[tuple[str, str, SpeakMode]]:
        return [(i.text, i.source, i.mode) for i in self.queue.items()]


async def test_a_command_is_queued_with_its_source_and_mode() -> None:
    chat = Chat(chat_commands=["ask"])
    assert await chat.say("!say hello everyone", user="alice") == "@alice queued #1"
    await chat.say("!ask what is the weather", user="bob")
    assert chat.queued() == [
        ("hello everyone", "twitch:#chan:alice", "repeat"),
        ("what is the weather", "twitch:#chan:bob", "chat"),
    ]
    assert chat.stats.accepted == 2


@pytest.mark.parametrize("text", ["hello", "say hello", "!unknown hi", "?say hi", "!sayhello"])
async def test_what_is_not_a_command_is_ignored(text: str) -> None:
    chat = Chat()
    assert await chat.say(text) is None
    assert chat.queued() == [] and chat.stats.ignored == 1


async def test_the_prefix_and_words_are_configurable() -> None:
    chat = Chat(prefix="~", commands=["tts", "Speak"])
    await chat.say("~TTS one")
    await chat.say("~speak two")
    await chat.say("!say three")
    assert [text for text, _, _ in chat.queued()] == ["one", "two"]


async def test_messages_reach_the_queue_in_order() -> None:
    chat = Chat(max_queued=0)
    for n in range(12):
        await chat.say(f"!say message {n}", user=f"user{n}")
    assert [text for text, _, _ in chat.queued()] == [f"message {n}" for n in range(12)]


ROLE_BADGES = {
    "everyone": frozenset(),
    "subscriber": frozenset({"subscriber"}),
    "founder": frozenset({"founder"}),
    "vip": frozenset({"vip"}),
    "moderator": frozenset({"moderator"}),
    "broadcaster": frozenset({"broadcaster"}),
}


@pytest.mark.parametrize(
    ("allow", "allowed"),
    [
        (["everyone"], set(ROLE_BADGES)),
        (["subscriber"], {"subscriber", "founder"}),
        (["vip"], {"vip"}),
        (["moderator"], {"moderator"}),
        (["broadcaster"], {"broadcaster"}),
        (["subscriber", "vip", "moderator", "broadcaster"], set(ROLE_BADGES) - {"everyone"}),
    ],
)
async def test_who_may_use_the_commands(allow: list[str], allowed: set[str]) -> None:
    chat = Chat(allow=allow)
    for role, badges in ROLE_BADGES.items():
        await chat.say(f"!say from {role}", user=role, badges=badges)
    assert {source.rpartition(":")[2] for _, source, _ in chat.queued()} == allowed
    assert chat.stats.refused[f"only for {', '.join(allow)}"] == len(ROLE_BADGES) - len(allowed)


async def test_a_minimum_of_bits_moderators_excepted() -> None:
    chat = Chat(min_bits=100)
    assert await chat.say("!say cheap", user="a", bits=99) == "@a needs a cheer of 100 bits"
    await chat.say("!say paid", user="b", bits=100)
    await chat.say("!say staff", user="c", badges=frozenset({"moderator"}))
    assert [text for text, _, _ in chat.queued()] == ["paid", "staff"]


async def test_a_reward_is_said_without_prefix_permission_or_cooldown() -> None:
    chat = Chat(
        rewards=["r-say"],
        chat_rewards=["r-ask"],
        allow=["moderator"],
        user_cooldown_s=60,
        user_queued=0,
    )
    await chat.say("first redemption", user="fan", reward_id="r-say", redemption=True)
    await chat.say("second redemption", user="fan", reward_id="r-say", redemption=True)
    await chat.say("a question", user="fan", reward_id="r-ask")  # IRC: the tag on the line
    assert await chat.say("other reward", reward_id="r-other", redemption=True) is None
    assert chat.queued() == [
        ("first redemption", "twitch:#chan:fan", "repeat"),
        ("second redemption", "twitch:#chan:fan", "repeat"),
        ("a question", "twitch:#chan:fan", "chat"),
    ]


async def test_a_reward_still_passes_the_filters() -> None:
    chat = Chat(rewards=["r"], banned_words=["darn"])
    assert await chat.say("oh darn", user="fan", reward_id="r", redemption=True) == (
        "@fan not allowed"
    )
    assert chat.queued() == []


async def test_per_user_cooldown() -> None:
    chat = Chat(user_cooldown_s=30)
    await chat.say("!say one", user="alice")
    assert await chat.say("!say two", user="alice") == "@alice cooldown, 31 s left"
    await chat.say("!say three", user="bob")  # others are not held back
    chat.clock.now += 30
    await chat.say("!say four", user="alice")
    assert [text for text, _, _ in chat.queued()] == ["one", "three", "four"]
    assert chat.stats.refused == {"cooldown, N s left": 1}


async def test_global_cooldown() -> None:
    chat = Chat(global_cooldown_s=10)
    await chat.say("!say one", user="alice")
    assert await chat.say("!say two", user="bob") == "@bob cooldown, 11 s left"
    chat.clock.now += 10.5
    await chat.say("!say three", user="bob")
    assert [text for text, _, _ in chat.queued()] == ["one", "three"]


async def test_a_refused_request_does_not_start_a_cooldown() -> None:
    chat = Chat(user_cooldown_s=30, max_length=5)
    await chat.say("!say far too long", user="alice")
    await chat.say("!say short", user="alice")
    assert [text for text, _, _ in chat.queued()] == ["short"]


async def test_per_user_limit_on_queued_items() -> None:
    chat = Chat(user_queued=2)
    for n in range(3):
        await chat.say(f"!say {n}", user="alice")
    await chat.say("!say other", user="bob")
    assert [text for text, _, _ in chat.queued()] == ["0", "1", "other"]
    assert chat.stats.refused == {"you have N waiting": 1}


async def test_global_limit_on_chat_items_counts_only_chat() -> None:
    chat = Chat(max_queued=2, user_queued=0)
    chat.queue.submit("from the panel", source="http:127.0.0.1")
    await chat.say("!say a", user="a")
    await chat.say("!say b", user="b")
    assert await chat.say("!say c", user="c") == "@c chat's queue is full"
    assert len(chat.queued()) == 3


async def test_the_queue_rate_limit_applies_per_chat_user() -> None:
    chat = Chat(rate=RateLimitConfig(per_minute=1, burst=1), user_queued=0)
    await chat.say("!say one", user="alice")
    assert await chat.say("!say two", user="alice") == "@alice the avatar is busy, try later"
    await chat.say("!say three", user="bob")
    assert [text for text, _, _ in chat.queued()] == ["one", "three"]


async def test_maximum_length() -> None:
    chat = Chat(max_length=10, user_queued=0)
    assert await chat.say("!say 0123456789X") == "@viewer too long (at most 10 characters)"
    await chat.say("!say 0123456789")
    assert [text for text, _, _ in chat.queued()] == ["0123456789"]


async def test_banned_words_match_whole_words_in_any_case() -> None:
    chat = Chat(banned_words=["heck", "no way"], user_queued=0)
    assert await chat.say("!say what the HECK") == "@viewer not allowed"
    assert await chat.say("!say no way!") == "@viewer not allowed"
    await chat.say("!say checking heckle")
    assert [text for text, _, _ in chat.queued()] == ["checking heckle"]


async def test_banned_patterns_are_regular_expressions() -> None:
    chat = Chat(banned_patterns=[r"(?i)free\s+v-?bucks", r"\d{6,}"], user_queued=0)
    assert await chat.say("!say get Free VBucks") == "@viewer not allowed"
    assert await chat.say("!say call 5551234567") == "@viewer not allowed"
    await chat.say("!say call me at 5")
    assert [text for text, _, _ in chat.queued()] == ["call me at 5"]


@pytest.mark.parametrize(
    ("links", "said", "reply"),
    [
        ("strip", ["look at this"], "@viewer queued #1"),
        ("reject", [], "@viewer no links"),
        ("allow", ["look at https://example.com/x this"], "@viewer queued #1"),
    ],
)
async def test_links(links: str, said: list[str], reply: str) -> None:
    chat = Chat(links=links)
    assert await chat.say("!say look at https://example.com/x this") == reply
    assert [text for text, _, _ in chat.queued()] == said


@pytest.mark.parametrize("text", ["!say www.spam.example", "!say see bit.ly/abc", "!say evil.tv"])
async def test_links_without_a_scheme_are_links_too(text: str) -> None:
    chat = Chat(links="reject")
    assert await chat.say(text) == "@viewer no links"


async def test_a_message_that_is_only_a_link_says_nothing() -> None:
    chat = Chat()
    assert await chat.say("!say https://example.com") == "@viewer nothing to say"


async def test_first_time_chatters_can_be_held_back() -> None:
    held = Chat(first_time="hold")
    assert await held.say("!say hi", first=True) == "@viewer first messages are held"
    await held.say("!say hi again")
    assert [text for text, _, _ in held.queued()] == ["hi again"]
    open_chat = Chat()
    await open_chat.say("!say hi", first=True)
    assert len(open_chat.queued()) == 1


async def test_emote_only_and_empty_commands_are_refused() -> None:
    chat = Chat()
    assert await chat.say("!say", emote_only=True) == "@viewer emotes only"
    assert await chat.say("!say   ") == "@viewer nothing to say"
    assert chat.queued() == []


MOD = frozenset({"moderator"})


async def test_moderators_pause_and_resume() -> None:
    chat = Chat()
    assert await chat.say("!pause", user="mod", badges=MOD) == "paused"
    assert await chat.say("!say hello") == "@viewer paused"
    assert chat.stats.paused
    assert await chat.say("!resume", user="boss", badges=frozenset({"broadcaster"})) == "resumed"
    await chat.say("!say hello")
    assert [text for text, _, _ in chat.queued()] == ["hello"]
    assert chat.stats.moderation == {"pause": 1, "resume": 1}


async def test_moderators_clear_chat_items_only() -> None:
    chat = Chat(user_queued=0)
    chat.queue.submit("from the panel", source="http:127.0.0.1")
    await chat.say("!say one", user="a")
    await chat.say("!say two", user="b")
    assert await chat.say("!clear", user="mod", badges=MOD) == "cleared 2"
    assert [text for text, _, _ in chat.queued()] == ["from the panel"]


async def test_viewers_cannot_use_moderator_commands() -> None:
    chat = Chat()
    await chat.say("!say one")
    for word in ("!skip", "!clear", "!pause", "!resume"):
        assert await chat.say(word, user="troll") == "@troll moderators only"
    assert len(chat.queued()) == 1 and not chat.stats.paused


async def test_moderator_command_words_are_configurable() -> None:
    chat = Chat(moderator_commands={"pause": "hush"})
    assert await chat.say("!hush", user="mod", badges=MOD) == "paused"
    assert await chat.say("!pause", user="mod", badges=MOD) is None


class Avatar:
    """Says nothing until interrupted: what a moderator's skip stops."""

    def __init__(self) -> None:
        self.live = asyncio.Event()
        self.live.set()
        self.said: list[str] = []
        self.interrupts = 0

    async def speak(self, text: str, mode: SpeakMode) -> str:
        self.said.append(text)
        return f"task{len(self.said)}"

    async def interrupt(self) -> None:
        self.interrupts += 1


@pytest.fixture
async def running() -> AsyncIterator[tuple[Chat, Avatar]]:
    chat, avatar = Chat(), Avatar()
    async with asyncio.TaskGroup() as group:
        task = group.create_task(chat.queue.run(avatar))
        yield chat, avatar
        task.cancel()


async def test_moderators_skip_what_is_being_said(running: tuple[Chat, Avatar]) -> None:
    chat, avatar = running
    await chat.say("!say a very long story", user="a")
    await chat.say("!say the next one", user="b")
    await eventually(lambda: avatar.said == ["a very long story"], what="the first sent")
    assert await chat.say("!skip", user="mod", badges=MOD) == "skipped"
    assert avatar.interrupts == 1
    await eventually(lambda: avatar.said[-1] == "the next one", what="the next one sent")
    recent = chat.queue.snapshot()["recent"]
    assert (recent[0]["state"], recent[0]["detail"]) == ("dropped", "interrupted")


async def test_skip_with_nothing_being_said() -> None:
    chat = Chat()
    assert await chat.say("!skip", user="mod", badges=MOD) == "nothing to skip"
