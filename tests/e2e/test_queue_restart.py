"""Queued speech survives a restart of the daemon process (`control.persist_queue`, the default):
what was waiting is said by the next run, what was being said is not said twice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp

from tests.kit.bridge_process import USERS_BRIDGE, BridgeProcess, bridge_process

DEMO = ("run", "--demo")
QUIET = {"microphone": {"enabled": False}, "camera": {"enabled": False}}


async def speak(daemon: BridgeProcess, text: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{daemon.url}/v1/speak", data=json.dumps({"text": text})) as resp,
    ):
        assert resp.status == 202, await resp.text()


def speaking(status: dict[str, Any]) -> bool:
    current = status["speech"]["current"]
    return current is not None and current["state"] == "speaking"


def by_text(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["text"]: item for item in status["speech"]["recent"]}


async def test_queued_speech_survives_a_restart_of_the_daemon(tmp_path: Path) -> None:
    own_state = {"XDG_STATE_HOME": str(tmp_path / "state")}  # this test's queue file alone
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    texts = ["This first sentence is being said at the stop.", "Second.", "Third."]
    async with bridge_process(
        QUIET, own_state, tmp_path / "first", program=USERS_BRIDGE, run=DEMO
    ) as first:
        for text in texts:
            await speak(first, text)
        await first.wait(speaking, within=20, what="the first sentence being said")
        before = await first.status()
    ids = {text: item["id"] for text, item in by_text(before).items()}
    assert [item["text"] for item in before["speech"]["queue"]] == texts[1:]

    async with bridge_process(
        QUIET, own_state, tmp_path / "second", program=USERS_BRIDGE, run=DEMO
    ) as second:
        after = await second.wait(
            lambda s: all(by_text(s).get(t, {}).get("state") == "done" for t in texts[1:]),
            within=30,
            what="the restored sentences said",
        )
        await speak(second, "New.")
        status = await second.status()
    restored = by_text(after)
    assert texts[0] not in restored  # the avatar may have said it: not replayed
    assert {t: restored[t]["id"] for t in texts[1:]} == {t: ids[t] for t in texts[1:]}
    assert by_text(status)["New."]["id"] == "s4"  # ids go on after the restored ones
