"""doctor's checks: the camera against a stand-in sysfs (no kernel module can load here), the
sound server through a stand-in ``pactl``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.cli import doctor
from bridge.config import Secrets, Settings, parse
from bridge.devices import v4l2 as v4l2devices
from bridge.devices.pactl import server_fix


def settings(**camera: object) -> Settings:
    return Settings(config=parse({"camera": camera}), secrets=Secrets())


@pytest.fixture
def sysfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "video4linux"
    for number, label in ((0, "Integrated Camera"), (10, "HeyGen Avatar"), (11, "OBS Cam")):
        node = root / f"video{number}"
        node.mkdir(parents=True)
        (node / "name").write_text(label + "\n")
    monkeypatch.setattr(v4l2devices, "SYSFS", root)
    return root


def test_devices_are_found_by_label_in_number_order(sysfs: Path) -> None:
    devices = v4l2devices.loopback_devices()
    assert [d.path for d in devices] == ["/dev/video0", "/dev/video10", "/dev/video11"]
    found = v4l2devices.find_by_label("HeyGen Avatar")
    assert found is not None and found.path == "/dev/video10"


def test_a_missing_label_lists_what_exists_and_the_fix(sysfs: Path) -> None:
    check = doctor.check_camera(settings(card_label="Avatar Cam"))
    assert not check.ok
    assert "no v4l2loopback device labelled 'Avatar Cam'" in check.detail
    assert "/dev/video10 ('HeyGen Avatar')" in check.detail
    assert "card_label='Avatar Cam' exclusive_caps=1" in check.fix


def test_an_unwritable_device_says_join_the_video_group(sysfs: Path) -> None:
    check = doctor.check_camera(settings())  # /dev/video10 does not exist here
    assert not check.ok and "not writable" in check.detail
    assert "usermod -aG video" in check.fix


def test_no_video4linux_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(v4l2devices, "SYSFS", tmp_path / "absent")
    check = doctor.check_camera(settings())
    assert not check.ok and "loopback devices: none" in check.detail
    assert check.fix.startswith("install the module with 'sudo apt install v4l2loopback-dkms'")


def test_camera_disabled_is_fine() -> None:
    check = doctor.check_camera(settings(enabled=False))
    assert check.ok and not check.required


# --- the sound server, through a stand-in pactl ---------------------------------------------------

PactlScript = Callable[[str], None]


@pytest.fixture
def pactl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PactlScript:
    """Installs a ``pactl`` that runs the given shell lines, first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")

    def install(script: str) -> None:
        path = bin_dir / "pactl"
        path.write_text(f"#!/bin/sh\n{script}\n")
        path.chmod(0o755)

    return install


async def test_a_running_sound_server_is_named(pactl: PactlScript) -> None:
    pactl('[ "$1 $LC_ALL" = "info C" ] && echo "Server Name: PulseAudio (on PipeWire 1.0.5)"')
    check = await doctor.check_sound_server(settings())
    assert check.ok and check.detail == "PulseAudio (on PipeWire 1.0.5)"


async def test_no_sound_server_says_how_to_start_one(pactl: PactlScript) -> None:
    pactl('echo "Connection failure: Connection refused" >&2; exit 1')
    check = await doctor.check_sound_server(settings())
    assert not check.ok and check.required
    assert "Connection refused" in check.detail and check.fix == server_fix()


async def test_a_sound_server_that_does_not_answer_does_not_hang_doctor(
    pactl: PactlScript, monkeypatch: pytest.MonkeyPatch
) -> None:
    pactl("exec sleep 60")
    monkeypatch.setattr(doctor, "PACTL_TIMEOUT_S", 0.2)
    check = await doctor.check_sound_server(settings())
    assert not check.ok
    assert "did not answer 'pactl info' within 0.2 s" in check.detail
    assert check.fix == server_fix()


async def test_no_pactl_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    check = await doctor.check_sound_server(settings())
    assert not check.ok and check.detail == "pactl not found"
    assert check.fix == "sudo apt install pulseaudio-utils"


async def test_microphone_disabled_needs_no_sound_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    config = parse({"microphone": {"enabled": False}})
    check = await doctor.check_sound_server(Settings(config=config, secrets=Secrets()))
    assert check.ok and not check.required
