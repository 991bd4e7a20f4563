"""doctor's camera check against a stand-in sysfs (no kernel module can load here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.cli import doctor
from bridge.config import Secrets, Settings, parse
from bridge.devices import v4l2 as v4l2devices


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
