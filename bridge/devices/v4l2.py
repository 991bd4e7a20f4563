"""Finding v4l2loopback devices by card label (sysfs), and saying how to create one.

v4l2loopback names each device after its ``card_label`` in
``/sys/devices/virtual/video4linux/videoN/name`` (reference/devices.md §2).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

SYSFS = Path("/sys/devices/virtual/video4linux")


@dataclass(frozen=True, slots=True)
class LoopbackDevice:
    path: str  # /dev/videoN
    label: str

    @property
    def writable(self) -> bool:
        return os.access(self.path, os.W_OK)


def loopback_devices(sysfs: Path | None = None) -> list[LoopbackDevice]:
    """Every v4l2loopback device, in device-number order."""
    sysfs = sysfs or SYSFS
    if not sysfs.is_dir():
        return []
    found = []
    for node in sysfs.iterdir():
        if not node.name.startswith("video"):
            continue
        try:
            label = (node / "name").read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            continue
        found.append(LoopbackDevice(path=f"/dev/{node.name}", label=label))
    return sorted(found, key=lambda d: int(d.path.removeprefix("/dev/video") or 0))


def find_by_label(label: str, sysfs: Path | None = None) -> LoopbackDevice | None:
    for device in loopback_devices(sysfs):
        if device.label == label:
            return device
    return None


def modprobe_command(label: str, video_nr: int = 10) -> str:
    """The one command that creates the camera now (until reboot)."""
    return (
        f"sudo modprobe v4l2loopback devices=1 video_nr={video_nr} "
        f"card_label={shlex.quote(label)} exclusive_caps=1"
    )


def setup_hint(label: str) -> str:
    return (
        "install the module with 'sudo apt install v4l2loopback-dkms', then run: "
        f"{modprobe_command(label)} (to keep it across reboots see README, 'Virtual camera')"
    )
