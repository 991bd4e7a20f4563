"""Reading Twitch's IRC lines and EventSub frames: the fields the rules need, and refusal of
anything malformed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge.control.twitch import eventsub, irc
from bridge.control.twitch.chat import ChatMessage

# Twitch's own PRIVMSG example (docs/chat/irc: "PRIVMSG" tags), trimmed.
TWITCH_EXAMPLE = (
    "@badge-info=subscriber/8;badges=broadcaster/1,subscriber/6;bits=100;color=#0D4200;"
    "display-name=Ronni;emotes=25:0-4,12-16/1902:6-10;first-msg=0;id=b34ccfc7-4977-403a-8a94;"
    "mod=0;room-id=1337;subscriber=1;tmi-sent-ts=1507246572675;turbo=1;user-id=1337;"
    "user-type=global_mod :ronni!ronni@ronni.tmi.twitch.tv PRIVMSG #ronni :Kappa Keepo Kappa"
)


def privmsg(text: str, **tags: str) -> ChatMessage:
    tag_text = ";".join(f"{k}={v}" for k, v in tags.items())
    prefix = f"@{tag_text} " if tags else ""
    return irc.chat_message(
        irc.parse_line(f"{prefix}:alice!alice@alice.tmi.twitch.tv PRIVMSG #chan :{text}")
    )


def test_twitch_example_line() -> None:
    line = irc.parse_line(TWITCH_EXAMPLE)
    assert line.command == "PRIVMSG" and line.params == ["#ronni", "Kappa Keepo Kappa"]
    message = irc.chat_message(line)
    assert (message.channel, message.user, message.display_name) == ("ronni", "ronni", "Ronni")
    assert message.roles == {"everyone", "broadcaster", "subscriber"}
    assert message.bits == 100 and not message.first
    assert message.text == "" and message.emote_only  # three emotes, nothing else
    assert message.message_id == "b34ccfc7-4977-403a-8a94"


def test_tag_values_are_unescaped() -> None:
    line = irc.parse_line(r"@display-name=a\sb\:c\\d\;x=\ :tmi.twitch.tv NOTICE #c :hi")
    # Tags split at ";" first; a lone trailing backslash is dropped.
    assert line.tags == {"display-name": "a b;c\\d", "x": ""}


def test_emotes_are_removed_by_code_point_positions() -> None:
    # "é" is one code point; the emote "Kappa" starts at position 6.
    assert privmsg("héllo Kappa world", emotes="25:6-10").text == "héllo world"


def test_emote_ranges_that_do_not_fit_are_disregarded() -> None:
    assert privmsg("hi Kappa", emotes="25:3-99").text == "hi Kappa"
    assert privmsg("hi Kappa", emotes="garbage").text == "hi Kappa"


def test_cheermotes_are_removed_from_a_cheer() -> None:
    assert privmsg("Cheer100 !say hello", bits="100").text == "!say hello"
    assert privmsg("mp3 hello", bits="").text == "mp3 hello"  # no cheer: words stay


def test_roles_from_badges_and_tags() -> None:
    assert "vip" in privmsg("x", badges="vip/1").roles
    assert "moderator" in privmsg("x", mod="1").roles
    assert "vip" in privmsg("x", vip="1").roles
    assert privmsg("x", badges="founder/0").roles == {"everyone", "subscriber"}


def test_first_message_and_reward_tags() -> None:
    message = privmsg("hi", **{"first-msg": "1", "custom-reward-id": "abc-123"})
    assert message.first and message.reward_id == "abc-123"


def test_action_messages_keep_their_text() -> None:
    assert privmsg("\x01ACTION !say waves\x01").text == "!say waves"


@pytest.mark.parametrize(
    "line",
    [
        "",
        "@",
        "@=x :a!a@a PRIVMSG #c :hi",
        ":prefix-only",
        "@a=b",
        "PRIVMSG\x00 #c :x",
        "123456 x",
        "x" * (irc.MAX_LINE + 1),
    ],
)
def test_malformed_lines_are_refused(line: str) -> None:
    with pytest.raises(irc.MalformedLine):
        irc.parse_line(line)


@pytest.mark.parametrize(
    "line",
    [
        ":alice!alice@alice PRIVMSG chan :no hash",
        ":alice!alice@alice PRIVMSG #chan",
        ":Not Valid!x@x PRIVMSG #chan :hi",
        ":alice!alice@alice PRIVMSG #ch@n :hi",
        "PRIVMSG #chan :no prefix",
        ":tmi.twitch.tv PING :tmi.twitch.tv",
    ],
)
def test_privmsg_without_channel_or_user_is_refused(line: str) -> None:
    with pytest.raises(irc.MalformedLine):
        irc.chat_message(irc.parse_line(line))


def frame(kind: str, payload: dict[str, Any], **metadata: str) -> str:
    meta = {"message_id": "m1", "message_type": kind, "message_timestamp": "2026-11-29T00:00:00Z"}
    return json.dumps({"metadata": meta | metadata, "payload": payload})


def chat_event(**over: Any) -> dict[str, Any]:
    return {
        "broadcaster_user_login": "chan",
        "chatter_user_login": "alice",
        "chatter_user_name": "Alice",
        "message_id": "id-1",
        "message": {
            "text": "!say hi Kappa there",
            "fragments": [
                {"type": "text", "text": "!say hi "},
                {"type": "emote", "text": "Kappa"},
                {"type": "text", "text": " there"},
            ],
        },
        "message_type": "text",
        "badges": [{"set_id": "vip", "id": "1", "info": ""}],
        "cheer": {"bits": 5},
        "channel_points_custom_reward_id": None,
        **over,
    }


def test_welcome_keepalive_reconnect_and_revocation_frames() -> None:
    welcome = eventsub.parse_frame(
        frame("session_welcome", {"session": {"id": "S", "keepalive_timeout_seconds": 10}})
    )
    assert welcome == eventsub.Welcome("m1", "S", 10)
    assert eventsub.parse_frame(frame("session_keepalive", {})) == eventsub.Keepalive("m1")
    moved = frame("session_reconnect", {"session": {"id": "S", "reconnect_url": "wss://x/ws"}})
    assert eventsub.parse_frame(moved) == eventsub.Reconnect("m1", "wss://x/ws")
    revoked = frame(
        "revocation", {"subscription": {"type": "channel.chat.message", "status": "user_removed"}}
    )
    assert eventsub.parse_frame(revoked) == eventsub.Revocation(
        "m1", "channel.chat.message", "user_removed"
    )
    assert eventsub.parse_frame(frame("brand_new", {})) == eventsub.Unknown("m1", "brand_new")


def notification(kind: str, event: dict[str, Any]) -> eventsub.Notification:
    parsed = eventsub.parse_frame(
        frame("notification", {"subscription": {"type": kind}, "event": event})
    )
    assert isinstance(parsed, eventsub.Notification)
    return parsed


def test_a_chat_notification_without_emotes() -> None:
    message = eventsub.chat_message(notification(eventsub.CHAT, chat_event()))
    assert message is not None
    assert (message.channel, message.user, message.text) == ("chan", "alice", "!say hi there")
    assert message.roles == {"everyone", "vip"} and message.bits == 5


def test_an_intro_is_a_first_message_and_emotes_alone_are_emote_only() -> None:
    only_emotes = {"text": "Kappa", "fragments": [{"type": "emote", "text": "Kappa"}]}
    message = eventsub.chat_message(
        notification(eventsub.CHAT, chat_event(message_type="user_intro", message=only_emotes))
    )
    assert message is not None and message.first and message.emote_only and message.text == ""


def test_a_redemption_carries_the_viewers_text() -> None:
    event = {
        "broadcaster_user_login": "chan",
        "user_login": "bob",
        "user_name": "Bob",
        "user_input": "  say   this ",
        "reward": {"id": "r1", "title": "Say"},
    }
    message = eventsub.chat_message(notification(eventsub.REDEMPTION, event))
    assert message is not None and message.redemption
    assert (message.user, message.text, message.reward_id) == ("bob", "say this", "r1")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[]",
        "{}",
        '{"metadata": {}, "payload": {}}',
        frame("session_welcome", {}),
        frame("session_welcome", {"session": {"id": 5}}),
        frame("session_reconnect", {"session": {"reconnect_url": "http://x"}}),
        frame("notification", {"subscription": {"type": "x"}}),
        json.dumps({"metadata": {"message_id": "m", "message_type": "x"}, "payload": []}),
        "[" * 100_000,
    ],
)
def test_malformed_frames_are_refused(text: str) -> None:
    with pytest.raises(eventsub.MalformedFrame):
        eventsub.parse_frame(text)


@pytest.mark.parametrize(
    "event",
    [
        chat_event(broadcaster_user_login="Not A Login"),
        chat_event(message="text"),
        chat_event(message={"text": "x", "fragments": ["no"]}),
        chat_event(chatter_user_login=None),
    ],
)
def test_chat_events_missing_fields_are_refused(event: dict[str, Any]) -> None:
    with pytest.raises(eventsub.MalformedFrame):
        eventsub.chat_message(notification(eventsub.CHAT, event))
