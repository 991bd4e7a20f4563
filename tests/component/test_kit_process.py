"""tests/kit/process.py, the one launcher: a child is ready when its READY message says so,
and one that dies, dawdles or stops badly fails with the end of its log."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.kit.process import launch, launched

URL = "http://127.0.0.1:4711"

# A stand-in server: ``ready`` announces itself with bridge/sdnotify.py as the daemon does
# (after a status line the launcher must skip); ``dies`` exits before it is ready; ``mute``
# never says it is ready; ``ready-then-fails`` is ready but exits 1 on SIGTERM.
CHILD = f"""
import signal, sys, time
from bridge import sdnotify

mode = sys.argv[1]
print("starting", flush=True)
if mode == "dies":
    print("cannot start: no config file", flush=True)
    sys.exit(2)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1 if mode == "ready-then-fails" else 0))
if mode != "mute":
    sdnotify.notify("STATUS=warming up")
    sdnotify.ready("{URL}")
time.sleep(60)
"""


def argv(mode: str) -> list[str]:
    return [sys.executable, "-c", CHILD, mode]


async def test_the_url_comes_from_the_ready_message_and_sigterm_stops_it(tmp_path: Path) -> None:
    async with launched("the child", argv("ready"), log_path=tmp_path / "log") as child:
        assert child.url == URL
        assert child.ready["STATUS"] == f"serving at {URL}"
        child.check_running()
    assert child.proc.returncode == 0


async def test_a_child_that_exits_before_ready_fails_with_its_log(tmp_path: Path) -> None:
    with pytest.raises(AssertionError) as failed:
        await launch("the child", argv("dies"), log_path=tmp_path / "log")
    assert "the child exited with code 2" in str(failed.value)
    assert "cannot start: no config file" in str(failed.value)


async def test_a_child_that_never_says_ready_fails_in_time_and_is_ended(tmp_path: Path) -> None:
    with pytest.raises(AssertionError) as failed:
        await launch("the child", argv("mute"), log_path=tmp_path / "log", ready_within=1)
    assert "the child was not ready within 1 s" in str(failed.value)
    assert "starting" in str(failed.value)  # the end of its log


async def test_a_child_that_does_not_exit_cleanly_on_sigterm_fails(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="the child exited with code 1"):
        async with launched("the child", argv("ready-then-fails"), log_path=tmp_path / "log"):
            pass


async def test_a_killed_child_is_not_held_to_a_clean_exit(tmp_path: Path) -> None:
    async with launched("the child", argv("ready"), log_path=tmp_path / "log") as child:
        await child.kill()
        with pytest.raises(AssertionError, match="the child exited with code -9"):
            child.check_running()


async def test_an_error_inside_gets_the_childs_log_as_a_note(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="the test's own error") as failed:
        async with launched("the child", argv("ready"), log_path=tmp_path / "log"):
            raise ValueError("the test's own error")
    assert any("starting" in note for note in failed.value.__notes__)
