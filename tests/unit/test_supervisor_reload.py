"""A config reload (SIGHUP) on a built, not started, bridge: what can change live changes,
the rest is reported as needing a restart, a bad config changes nothing; and the unit that
``heygen-bridge service install`` writes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from bridge import config
from bridge import log as bridge_log
from bridge.app import Bridge
from bridge.cli import service
from bridge.config import Secrets, Settings
from bridge.errors import ConfigError

BASE: dict[str, Any] = {
    "provider": "demo",
    "camera": {"enabled": False},
    "microphone": {"enabled": False},
    "control": {"persist_queue": False, "port": 0},
    "presets": {"hello": {"text": "Hello there."}},
}


def settings(**changes: Any) -> Settings:
    raw = {**BASE, **changes}
    return Settings(config=config.parse(raw), secrets=Secrets())


def test_changed_keys_name_leaves_and_whole_presets() -> None:
    old = config.parse(BASE)
    new = config.parse(
        {
            **BASE,
            "camera": {"enabled": False, "fit": "crop"},
            "presets": {"hello": {"text": "Hi."}, "bye": {"text": "Bye."}},
        }
    )
    assert config.changed_keys(old, new) == ["camera.fit", "presets.hello.text", "presets.bye"]
    assert config.changed_keys(old, old) == []


def test_live_changes_apply_and_the_rest_waits_for_a_restart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    levels: list[str] = []
    monkeypatch.setattr(bridge_log, "setup", levels.append)
    bridge = Bridge(settings())
    report = bridge.reload(
        settings(
            control={"persist_queue": False, "port": 0, "max_text": 50, "queue_limit": 3},
            presets={"hello": {"text": "Good morning."}},
            camera={"enabled": False, "width": 640},
            log={"level": "DEBUG"},
        )
    )
    assert report["applied"] == [
        "control.max_text",
        "control.queue_limit",
        "presets.hello.text",
        "log.level",
    ]
    assert report["needs_restart"] == ["camera.width"]
    assert report["error"] is None
    assert bridge.status()["reload"] == report
    assert bridge.queue.max_text == 50 and bridge.queue.limit == 3
    assert bridge.control._presets["hello"].text == "Good morning."
    assert levels == ["DEBUG"]
    # Not applied, so still in effect: the next reload reports it again.
    assert bridge.settings.config.camera.width == 1280
    again = bridge.reload(settings(camera={"enabled": False, "width": 640}))
    assert again["needs_restart"] == ["camera.width"]


def test_a_refused_config_changes_nothing_and_says_why() -> None:
    bridge = Bridge(settings())
    with pytest.raises(ConfigError) as refused:
        config.parse({**BASE, "control": {"max_text": 0}})
    report = bridge.reload_refused(refused.value.problems)
    assert report["applied"] == [] and "control.max_text" in report["error"]
    assert bridge.queue.max_text == 2000
    assert bridge.status()["reload"]["error"] == report["error"]


def test_the_unit_runs_this_install_and_the_checked_in_one_is_the_template(
    tmp_path: Path,
) -> None:
    command, folder = service.exec_start(tmp_path / "my config.yaml")
    text = service.unit_text(command, working_directory=folder)
    assert "Type=notify\n" in text and "WatchdogSec=" in text
    assert "ExecReload=/bin/kill -HUP $MAINPID\n" in text
    exec_line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    assert exec_line.endswith(f' --config "{tmp_path}/my config.yaml" run')
    checked_in = Path(__file__).parents[2] / "systemd" / service.UNIT_NAME
    assert checked_in.read_text() == service.UNIT_TEMPLATE.format(
        working_directory="", exec_start="%h/heygen-bridge/.venv/bin/heygen-bridge run"
    )


def test_install_writes_the_user_unit_and_says_how_to_enable_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    said: list[str] = []
    args = argparse.Namespace(dry_run=True, config=None)
    assert service.install(args, said.append) == 0
    unit = tmp_path / "systemd" / "user" / "heygen-bridge.service"
    assert not unit.exists()
    args.dry_run = False
    assert service.install(args, said.append) == 0
    assert "Type=notify" in unit.read_text()
    assert "  systemctl --user daemon-reload && systemctl --user enable --now heygen-bridge" in said
    assert any(line.strip().startswith("loginctl enable-linger") for line in said)


def test_the_slate_delay_changes_on_the_running_camera() -> None:
    camera = {"width": 64, "height": 36, "card_label": "no-such-camera-here"}
    bridge = Bridge(settings(camera=camera))
    assert bridge.webcam is not None
    report = bridge.reload(settings(camera={**camera, "slate_after": 7.5, "fit": "crop"}))
    assert report["applied"] == ["camera.slate_after"]
    assert report["needs_restart"] == ["camera.fit"]
    assert bridge.webcam.cfg.slate_after == 7.5  # what the writer thread reads per frame
    assert bridge.webcam.cfg.fit == "letterbox"
