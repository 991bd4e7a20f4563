"""``heygen-bridge doctor``: every piece the daemon needs, checked, each with the fix."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from bridge.cli import keycheck
from bridge.config import Settings
from bridge.devices import v4l2 as v4l2devices
from bridge.devices.pactl import COMMAND_TIMEOUT_S, Pactl, parse_info, server_fix
from bridge.errors import BridgeError, DeviceUnavailable, Unauthorized

# As long as the daemon waits for any pactl command (5 s).
PACTL_TIMEOUT_S = COMMAND_TIMEOUT_S


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


async def run_checks(settings: Settings) -> list[Check]:
    return [
        Check("config", True, str(settings.source or "built-in defaults (no config file)")),
        await check_provider(settings),
        check_camera(settings),
        await check_sound_server(settings),
        check_speech(),
        check_conversion(),
        await check_twitch(settings),
    ]


async def check_provider(settings: Settings) -> Check:
    from bridge.app import make_provider

    name = settings.config.provider
    if name == "demo":
        return Check("provider", True, "demo avatar (no key or network needed)")
    try:
        provider = make_provider(settings)
    except BridgeError as exc:
        return Check("provider", False, str(exc), fix=f"set the API key for provider {name}")
    try:
        avatars = await provider.list_avatars()
    except Unauthorized as exc:
        return Check("provider", False, await keycheck.explain(settings, exc))
    except BridgeError as exc:
        return Check("provider", False, str(exc))
    finally:
        await provider.aclose()
    return Check("provider", True, f"{provider.name} accepted the API key ({len(avatars)} avatars)")


def check_camera(settings: Settings) -> Check:
    cam = settings.config.camera
    if not cam.enabled:
        return Check("camera", True, "disabled in config (camera.enabled: false)", required=False)
    devices = v4l2devices.loopback_devices()
    if cam.device is not None:
        match = next((d for d in devices if d.path == cam.device), None)
        if match is None:
            return Check(
                "camera",
                False,
                f"{cam.device} is not a v4l2loopback device",
                fix=v4l2devices.setup_hint(cam.card_label),
            )
    else:
        match = v4l2devices.find_by_label(cam.card_label)
        if match is None:
            others = ", ".join(f"{d.path} ({d.label!r})" for d in devices) or "none"
            return Check(
                "camera",
                False,
                f"no v4l2loopback device labelled {cam.card_label!r} (loopback devices: {others})",
                fix=v4l2devices.setup_hint(cam.card_label),
            )
    if not match.writable:
        return Check(
            "camera",
            False,
            f"{match.path} is not writable by this user",
            fix="sudo usermod -aG video $USER  (then log out and in)",
        )
    return Check("camera", True, f"{match.path} ({match.label!r})")


async def check_sound_server(settings: Settings) -> Check:
    if not settings.config.microphone.enabled:
        return Check("sound server", True, "microphone disabled in config", required=False)
    try:
        # Pactl bounds the call (a hung server must not hang doctor) and runs it in the C
        # locale, whose "Server Name:" label is what is read here.
        answer = await Pactl(timeout=PACTL_TIMEOUT_S).run("info")
    except DeviceUnavailable as exc:  # no pactl, no server, or no answer in time
        return Check("sound server", False, exc.reason, fix=exc.fix)
    if not answer.ok:
        return Check(
            "sound server",
            False,
            "no PulseAudio/PipeWire server is running for this user",
            fix=server_fix(),
        )
    return Check("sound server", True, parse_info(answer.stdout).server_name)


async def check_twitch(settings: Settings) -> Check:
    from bridge.control.twitch.check import check_token
    from bridge.control.twitch.service import channel_logins

    cfg = settings.config.twitch
    if not cfg.enabled:
        return Check("twitch", True, "not enabled (twitch.enabled: false)", required=False)
    token = settings.secrets.twitch_token
    if token is None:
        channels = ", ".join(f"#{c}" for c in channel_logins(cfg))
        return Check(
            "twitch",
            True,
            f"anonymous read-only chat in {channels} (no TWITCH_TOKEN: no rewards, no replies)",
        )
    report = await check_token(cfg, token, settings.secrets.twitch_client_id)
    return Check("twitch", report.ok, report.detail, fix=report.fix)


def check_conversion() -> Check:
    from bridge.pipeline import libyuv

    return _optional(
        "video conversion",
        "libyuv" if libyuv.load() is not None else None,
        missing="libyuv not found: conversion falls back to swscale (about 15x slower to YUYV)",
        fix="sudo apt install libyuv0",
    )


def check_speech() -> Check:
    return _optional(
        "demo voice",
        "espeak-ng" if shutil.which("espeak-ng") else None,
        missing="espeak-ng not found: the demo avatar speaks in tones",
        fix="sudo apt install espeak-ng",
    )


def _optional(name: str, found: str | None, *, missing: str, fix: str) -> Check:
    """A part the bridge works without (worse): ``found`` names it, None when it is absent."""
    if found is not None:
        return Check(name, True, found, required=False)
    return Check(name, False, missing, fix=fix, required=False)
