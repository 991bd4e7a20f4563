"""Twitch chat drives the demo avatar end to end: a real daemon (``heygen-bridge run --demo``)
reads a channel anonymously from the IRC fake, and a chat command is spoken."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.kit.demo_daemon import demo_daemon
from tests.kit.eventually import eventually
from tests.kit.twitch_fakes import twitch_fake


def item_from(status: dict[str, Any], source: str) -> dict[str, Any] | None:
    return next((i for i in status["speech"]["recent"] if i["source"] == source), None)


async def test_a_chat_command_is_spoken_by_the_demo_avatar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TWITCH_TOKEN", raising=False)  # anonymous IRC, whatever the shell has
    async with twitch_fake() as fake:
        config = {"twitch": fake.config(["demo"]), "control": {"persist_queue": False}}
        async with demo_daemon(tmp_path, config=config) as daemon:
            await eventually(
                daemon.status,
                until=lambda s: s["twitch"]["state"] == "connected" and fake.joined("demo"),
                within=30,
                what="the daemon in #demo",
                every=0.1,
            )
            await fake.privmsg("demo", "lurker", "nice stream")
            await fake.privmsg("demo", "viewer", "!say Hello from Twitch chat.")
            status = await eventually(
                daemon.status,
                until=lambda s: (item_from(s, "twitch:#demo:viewer") or {}).get("state") == "done",
                within=30,
                what="the chat command spoken",
                every=0.1,
            )
        item = item_from(status, "twitch:#demo:viewer")
        assert item is not None and item["text"] == "Hello from Twitch chat."
        assert item_from(status, "twitch:#demo:lurker") is None
        twitch = status["twitch"]
        assert (twitch["transport"], twitch["accepted"], twitch["ignored"]) == ("irc", 1, 1)
        # The event stream (WebSocket clients, the panel) told of it with its source.
        topics = {
            e["topic"]
            for e in status["events"]
            if (e.get("item") or {}).get("source") == "twitch:#demo:viewer"
        }
        assert "speech.done" in topics
