"""IRC lines as Twitch sends them (IRCv3 tags), parsed without I/O.

A line is ``[@tags ][:prefix ]COMMAND[ params][ :trailing]``; tag values are escaped
(``\\s`` space, ``\\:`` semicolon, ``\\\\`` backslash, ``\\r``, ``\\n``).  A ``PRIVMSG`` becomes a
:class:`~bridge.control.twitch.chat.ChatMessage`: roles from ``badges`` (and ``mod``/``vip``),
``bits``, ``first-msg``, ``custom-reward-id``, and the text without the emotes the ``emotes``
tag places (positions count code points) or the cheermotes of a cheer.  Anything that does not
read as IRC raises :class:`MalformedLine`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bridge.control.twitch.chat import LOGIN, ChatMessage

__all__ = ["MAX_LINE", "IrcLine", "MalformedLine", "chat_message", "parse_line"]

# Twitch's lines stay far below this (tags included); longer is not Twitch.
MAX_LINE = 16_384
_COMMAND = re.compile(r"[A-Za-z]+|[0-9]{3}")
_ESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_EMOTE_RANGE = re.compile(r"([0-9]+)-([0-9]+)")
_CHEERMOTE = re.compile(r"(?<!\S)[A-Za-z]+[0-9]+(?!\S)")
_ACTION = re.compile(r"\x01ACTION (.*)\x01", re.DOTALL)
_SPACES = re.compile(r"\s+")


class MalformedLine(ValueError):
    """The line is not IRC, or not the Twitch message it claims to be."""


@dataclass(frozen=True, slots=True)
class IrcLine:
    tags: dict[str, str]
    prefix: str | None
    command: str
    params: list[str]


def parse_line(line: str) -> IrcLine:
    """One line, without its CR LF."""
    if len(line) > MAX_LINE:
        raise MalformedLine(f"longer than {MAX_LINE} characters")
    if "\r" in line or "\n" in line or "\0" in line:
        raise MalformedLine("contains CR, LF or NUL")
    rest = line
    tags: dict[str, str] = {}
    if rest.startswith("@"):
        raw_tags, _, rest = rest[1:].partition(" ")
        tags = _tags(raw_tags)
    prefix = None
    rest = rest.lstrip(" ")
    if rest.startswith(":"):
        prefix, _, rest = rest[1:].partition(" ")
    rest = rest.lstrip(" ")
    head, colon, trailing = rest.partition(" :")
    words = head.split()
    if not words or _COMMAND.fullmatch(words[0]) is None:
        raise MalformedLine("no command")
    params = words[1:] + ([trailing] if colon else [])
    return IrcLine(tags=tags, prefix=prefix, command=words[0].upper(), params=params)


def _tags(raw: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in raw.split(";"):
        key, _, value = item.partition("=")
        if not key:
            raise MalformedLine("empty tag name")
        tags[key] = _unescape(value)
    return tags


def _unescape(value: str) -> str:
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        following = next(chars, "")  # a lone trailing backslash is dropped
        out.append(_ESCAPES.get(following, following))
    return "".join(out)


def chat_message(line: IrcLine) -> ChatMessage:
    """The chat message of a ``PRIVMSG #channel :text`` line."""
    if line.command != "PRIVMSG" or len(line.params) != 2:
        raise MalformedLine("not a PRIVMSG to one channel")
    target, raw_text = line.params
    channel = target.removeprefix("#")
    user = (line.prefix or "").partition("!")[0]
    if not target.startswith("#") or LOGIN.fullmatch(channel) is None:
        raise MalformedLine("no channel")
    if LOGIN.fullmatch(user) is None:
        raise MalformedLine("no user")
    tags = line.tags
    action = _ACTION.fullmatch(raw_text)
    text = action.group(1) if action else raw_text
    text = _without_emotes(text, tags.get("emotes", "")) if not action else text
    bits = _count(tags.get("bits", ""))
    if bits:
        text = _CHEERMOTE.sub("", text)
    text = _SPACES.sub(" ", text).strip()
    return ChatMessage(
        channel=channel,
        user=user,
        text=text,
        display_name=tags.get("display-name", "")[:64],
        badges=_badges(tags),
        bits=bits,
        first=tags.get("first-msg") == "1",
        reward_id=tags.get("custom-reward-id") or None,
        message_id=tags.get("id") or None,
        emote_only=bool(raw_text.strip()) and (not text or tags.get("emote-only") == "1"),
    )


def _badges(tags: dict[str, str]) -> frozenset[str]:
    names = {badge.partition("/")[0] for badge in tags.get("badges", "").split(",") if badge}
    if tags.get("mod") == "1":
        names.add("moderator")
    if tags.get("vip", "0") != "0":  # present (as 1) on a VIP's messages only
        names.add("vip")
    return frozenset(names)


def _count(value: str) -> int:
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 9 else 0


def _without_emotes(text: str, emotes: str) -> str:
    """``text`` with the emote ranges of the ``emotes`` tag blanked; a tag that does not fit
    the text is disregarded (the text is then said as sent)."""
    if not emotes:
        return text
    spans: list[tuple[int, int]] = []
    for emote in emotes.split("/"):
        _, _, ranges = emote.partition(":")
        for one in ranges.split(","):
            match = _EMOTE_RANGE.fullmatch(one)
            if match is None:
                return text
            start, end = int(match.group(1)), int(match.group(2))
            if not start <= end < len(text):
                return text
            spans.append((start, end))
    chars = list(text)
    for start, end in spans:
        chars[start : end + 1] = [" "] * (end + 1 - start)
    return "".join(chars)
