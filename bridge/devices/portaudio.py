"""The virtual mic's output on Windows and macOS: a named device through ``sounddevice``.

No null sink exists there; users install a virtual cable and the bridge plays into its input
side, which apps then list as a microphone:

* Windows: VB-Audio Virtual Cable (https://vb-audio.com/Cable/) — play into "CABLE Input",
  apps record "CABLE Output";
* macOS: BlackHole (``brew install blackhole-2ch``) — play into "BlackHole 2ch", apps record
  "BlackHole 2ch".

The device is chosen by name (``microphone.output_device``, default per system above) every
time the stream opens, never by index: PortAudio's indexes differ per machine and change
when devices come and go.  An exact name wins over a name that merely contains the text;
among host APIs, the ones that resample for us come first (DirectSound, MME, then WASAPI on
Windows; Core Audio on macOS).  Mono is copied to every channel the device has (both cables
are stereo).  ``write`` blocks at the device's pace, like the PulseAudio stream, so the same
writer thread and jitter buffer drive it (:class:`bridge.sinks.mic.MicSink`).

Optional: ``pip install 'heygen-bridge[othersystems]'`` installs ``sounddevice`` (which
bundles PortAudio on Windows and macOS).  Not testable on the Linux CI; tests use a fake
``sounddevice`` module for the name matching.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import numpy as np

from bridge.errors import DeviceUnavailable
from bridge.media.frames import I16

DEVICE = "microphone"
RATE = 48000
INSTALL_FIX = "pip install 'heygen-bridge[othersystems]'"
HOSTAPI_PREFERENCE = ("Windows DirectSound", "MME", "Windows WASAPI", "Core Audio")


def default_device_name(platform: str = sys.platform) -> str:
    return "BlackHole 2ch" if platform == "darwin" else "CABLE Input"


def install_fix(platform: str = sys.platform) -> str:
    if platform == "darwin":
        return "brew install blackhole-2ch"
    return "install VB-Audio Virtual Cable from https://vb-audio.com/Cable/"


def _sounddevice() -> Any:
    try:
        import sounddevice
    except ImportError as exc:
        raise DeviceUnavailable(DEVICE, "sounddevice is not installed", INSTALL_FIX) from exc
    except OSError as exc:  # sounddevice imports, but finds no PortAudio library
        raise DeviceUnavailable(DEVICE, f"PortAudio is missing ({exc})", INSTALL_FIX) from exc
    return sounddevice


def find_output(sd: Any, name: str) -> tuple[int, int]:
    """``(index, output channels)`` of the output device called ``name``, resolved now."""
    hostapis = [str(api["name"]) for api in sd.query_hostapis()]
    candidates: list[tuple[int, int, int, int]] = []
    wanted = name.casefold()
    for index, dev in enumerate(sd.query_devices()):
        channels = int(dev["max_output_channels"])
        label = str(dev["name"]).casefold()
        if channels <= 0 or wanted not in label:
            continue
        api = hostapis[int(dev["hostapi"])] if int(dev["hostapi"]) < len(hostapis) else ""
        rank = HOSTAPI_PREFERENCE.index(api) if api in HOSTAPI_PREFERENCE else 99
        candidates.append((0 if label == wanted else 1, rank, index, channels))
    if not candidates:
        raise DeviceUnavailable(
            DEVICE, f"no output device named {name!r}", f"{install_fix()}, then restart"
        )
    _, _, index, channels = min(candidates)
    return index, channels


class PortAudioOutput:
    """A blocking PortAudio output stream on the device called ``name``."""

    def __init__(self, name: str | None) -> None:
        sd = _sounddevice()
        self.device_name = name or default_device_name()
        index, channels = find_output(sd, self.device_name)
        self.channels = min(channels, 2)
        self.name = f"sounddevice → {sd.query_devices(index)['name']}"
        try:
            self._stream: Any = sd.OutputStream(
                samplerate=RATE, channels=self.channels, dtype="int16", device=index, latency="low"
            )
            self._stream.start()
        except sd.PortAudioError as exc:
            raise DeviceUnavailable(
                DEVICE, f"cannot open {self.device_name!r}: {exc}", install_fix()
            ) from exc
        self._error = sd.PortAudioError

    def write(self, block: I16) -> None:
        data = block if self.channels == 1 else np.repeat(block[:, None], self.channels, axis=1)
        try:
            self._stream.write(data)
        except self._error as exc:
            raise DeviceUnavailable(
                DEVICE, f"{self.device_name!r} stopped: {exc}", install_fix()
            ) from exc

    def latency_ms(self) -> float | None:
        return float(self._stream.latency) * 1000

    def close(self) -> None:
        with contextlib.suppress(self._error):  # the device is gone already: just close
            self._stream.stop()
        self._stream.close()
