"""The composition root: the only place that builds providers, sources, sinks and control.

::

    provider ─► SessionManager ─► source (LiveKit room | in-process demo), per session
                    │                 ├─ video ─► WebcamSink (delay line, convert, pace, slate)
                    │                 ├─ audio ─► MicSink (jitter buffer ─► PulseAudio/PipeWire)
                    │                 └─ data  ─► manager ─► session.decode ─► EventBus, SpeechQueue
    ControlServer ──┴─ SpeechQueue ─► manager.speak() ─► session (─► room link)
                                                             PulseDevices keep the mic there
    AvAligner: video delay = audio path latency + microphone.av_offset_ms
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from bridge import __version__, sdnotify
from bridge import log as bridge_log
from bridge.config import Config, Secret, Settings, changed_keys
from bridge.control import panel
from bridge.control.http import ControlServer
from bridge.control.listen import Listening
from bridge.control.overlay import Overlay
from bridge.control.persist import default_path as queue_store_path
from bridge.control.preview import Preview
from bridge.control.problems import Conflict
from bridge.control.queue import SpeechQueue
from bridge.control.snapshot import to_jpeg
from bridge.control.transcript import Transcript
from bridge.control.twitch.service import TwitchService
from bridge.control.watch import StatusWatch
from bridge.control.ws import EventHub
from bridge.devices.pactl import SinkOnly
from bridge.devices.pulse_modules import PulseDevices
from bridge.errors import ConfigError
from bridge.eventbus import EventBus
from bridge.media.frames import AudioChunk, VideoFrame
from bridge.providers.base import Provider
from bridge.providers.heygen.client import HeyGenClient
from bridge.providers.heygen.own_room import OwnRoom
from bridge.providers.heygen.provider import HeyGenProvider
from bridge.providers.liveavatar.client import LiveAvatarClient
from bridge.providers.liveavatar.provider import LiveAvatarProvider
from bridge.session.manager import SessionManager
from bridge.session.orphans import OpenedSessions, default_path
from bridge.sinks.av_align import AvAligner
from bridge.sinks.mic import MicSink
from bridge.sinks.webcam import WebcamSink
from bridge.source.open import open_media
from bridge.source.uplink import Uplink
from bridge.watchdog import HealthCheck, Progress

log = logging.getLogger(__name__)

SWITCH_INTERVAL_S = 0.001
# The camera writer writes ``camera.fps`` times a second, avatar or not; this long without a
# write means it hangs (the systemd watchdog then stops being pinged).
CAMERA_STALE_S = 5.0
# What a reload changes while running (a key, or a section whose every key may change); the
# rest of a changed config waits for a restart.
LIVE_KEYS = (
    "presets",
    "control.max_text",
    "control.queue_limit",
    "control.rate_limit",
    "log.level",
    "camera.slate_after",
)


def _required(secret: Secret | None, name: str, provider: str) -> Secret:
    if secret is None:
        raise ConfigError(
            [
                f"{name} is not set (provider: {provider}); export it, or put {name}=... "
                "in the file named by secrets_file"
            ]
        )
    return secret


def own_room(settings: Settings) -> OwnRoom | None:
    lk = settings.config.livekit
    if lk.url is None or lk.room is None:
        return None
    return OwnRoom(
        url=lk.url,
        room=lk.room,
        api_key=_required(settings.secrets.livekit_api_key, "LIVEKIT_API_KEY", "livekit"),
        api_secret=_required(settings.secrets.livekit_api_secret, "LIVEKIT_API_SECRET", "livekit"),
    )


def make_provider(settings: Settings, *, preflight: bool = False) -> Provider:
    """The configured provider.  ``preflight``: a config that cannot open a session fails now
    (ConfigError), not at the first session (the daemon; listing avatars needs less)."""
    cfg = settings.config
    if cfg.provider == "heygen":
        key = _required(settings.secrets.heygen_api_key, "HEYGEN_API_KEY", "heygen")
        return HeyGenProvider(
            client=HeyGenClient.from_config(cfg.heygen, key),
            avatar=cfg.avatar,
            own_room=own_room(settings),
        )
    if cfg.provider == "liveavatar":
        key = _required(settings.secrets.liveavatar_api_key, "LIVEAVATAR_API_KEY", "liveavatar")
        liveavatar = LiveAvatarProvider(
            client=LiveAvatarClient.from_config(cfg.liveavatar, key),
            avatar=cfg.avatar,
            push_to_talk=cfg.listen.mode == "push-to-talk",
        )
        if preflight:
            liveavatar.token_request()
        return liveavatar
    if cfg.provider == "demo":
        from bridge.providers.demo import DemoProvider

        return DemoProvider(avatar=cfg.avatar, camera=cfg.camera, demo=cfg.demo)
    raise ConfigError([f"provider: {cfg.provider!r} was not resolved (a bug: please report)"])


def _is_live(key: str) -> bool:
    return any(key == live or key.startswith(f"{live}.") for live in LIVE_KEYS)


def _no_camera(frame: VideoFrame) -> None:
    """The camera is disabled: the avatar's picture goes nowhere."""


def _no_mic(chunk: AudioChunk) -> None:
    """The microphone is disabled: the avatar's voice goes nowhere."""


def _listen_parts(cfg: Config) -> tuple[Uplink | None, PulseDevices | None, str | None]:
    """Listen mode's uplink and the virtual speaker it hears, or why there are none."""
    if cfg.listen.mode == "off":
        return None, None, None
    if not sys.platform.startswith("linux"):
        why = "the virtual speaker needs PulseAudio or PipeWire (Linux)"
        log.warning("listen.mode %s: %s; the avatar will not hear", cfg.listen.mode, why)
        return None, None, why
    uplink = Uplink(cfg.listen)
    speaker = SinkOnly(cfg.listen.speaker_name, cfg.listen.speaker_description)
    devices = PulseDevices(speaker, on_change=uplink.on_devices, label="virtual speaker")
    return uplink, devices, None


class Bridge:
    """Everything ``heygen-bridge run`` runs, wired together."""

    def __init__(self, settings: Settings) -> None:
        cfg = settings.config
        self.settings = settings
        self.bus = EventBus()
        self.provider = make_provider(settings, preflight=True)
        self.queue = SpeechQueue(
            bus=self.bus,
            max_item=self.provider.max_text,
            max_text=cfg.control.max_text,
            limit=cfg.control.queue_limit,
            rate=cfg.control.rate_limit,
            store_path=queue_store_path() if cfg.control.persist_queue else None,
        )
        # Twitch chat feeds the same queue (EventSub with TWITCH_TOKEN, else anonymous IRC).
        self.twitch = (
            TwitchService(
                cfg.twitch,
                queue=self.queue,
                token=settings.secrets.twitch_token,
                client_id=settings.secrets.twitch_client_id,
            )
            if cfg.twitch.enabled
            else None
        )
        self.overlay = Overlay(settings.secrets.control_token)
        self.webcam = (
            WebcamSink(cfg.camera, cfg.video.background, self.overlay)
            if cfg.camera.enabled
            else None
        )
        self.mic = MicSink(cfg.microphone) if cfg.microphone.enabled else None
        self.mic_devices = (
            PulseDevices(cfg.microphone, on_change=self.mic.on_devices)
            if self.mic is not None and sys.platform.startswith("linux")
            else None
        )
        # Listen mode: the meeting's sound into the avatar's room (bridge/source/uplink.py).
        self.uplink, self.speaker_devices, deaf = _listen_parts(cfg)
        self.aligner = (
            AvAligner(self.webcam, self.mic, cfg.microphone.av_offset_ms)
            if self.webcam is not None
            else None
        )
        self.manager = SessionManager(
            provider=self.provider,
            bus=self.bus,
            video=self.webcam.put if self.webcam is not None else _no_camera,
            audio=self.mic.put if self.mic is not None else _no_mic,
            on_event=self.queue.on_event,
            on_session_end=self.queue.drop_unfinished,
            opened=OpenedSessions(default_path()),
            renew_margin_s=cfg.avatar.renew_margin_s,
            open_session_media=functools.partial(open_media, uplink=self.uplink),
        )
        self.listening = Listening(
            cfg.listen, gate=self.uplink, ears=self.manager, bus=self.bus, unavailable=deaf
        )
        self.transcript = Transcript(self.bus)
        token = settings.secrets.control_token
        self.hub = EventHub(bus=self.bus, queue=self.queue, token=token, listen=self.listening.set)
        self.preview = Preview(self.snapshot_jpeg)
        self.watch = StatusWatch(self.bus, self.status)
        self.control = ControlServer(
            cfg.control,
            queue=self.queue,
            status=self.status,
            snapshot_jpeg=self.snapshot_jpeg,
            token=token,
            presets=cfg.presets,
            bus=self.bus,
            routes=[
                *self.hub.routes(),
                *panel.routes(),
                *self.preview.routes(),
                *self.overlay.routes(),
                *self.listening.routes(),
            ],
        )
        # The last reload: when, what it applied, what waits for a restart, or why it failed.
        self.last_reload: dict[str, Any] | None = None

    def health_checks(self) -> list[HealthCheck]:
        """What the systemd watchdog needs to pass before it pings (the event loop is checked
        by the ping itself): the camera writer keeps writing, when there is a camera."""
        webcam = self.webcam
        if webcam is None:
            return []
        # At a very low frame rate a few frame intervals, not the fixed few seconds.
        stale_after = max(CAMERA_STALE_S, 3.0 / webcam.cfg.fps)
        return [Progress("camera writer", lambda: webcam.stats.frames_out, stale_after=stale_after)]

    def reload(self, settings: Settings) -> dict[str, Any]:
        """Apply what of ``settings`` can change live (:data:`LIVE_KEYS`); report the rest as
        needing a restart.  The report is logged, kept for status (``reload``), emitted
        (``config.reloaded``) and returned.  What is in effect stays comparable: the next
        reload reports a change still waiting for a restart again."""
        old = self.settings.config
        new = settings.config
        changed = changed_keys(old, new)
        if settings.secrets != self.settings.secrets:
            changed.append("secrets")
        applied = [key for key in changed if _is_live(key)]
        waiting = [key for key in changed if not _is_live(key)]
        effective = old.model_copy(
            update={
                "presets": new.presets,
                "control": old.control.model_copy(
                    update={
                        "max_text": new.control.max_text,
                        "queue_limit": new.control.queue_limit,
                        "rate_limit": new.control.rate_limit,
                    }
                ),
                "log": new.log,
                "camera": old.camera.model_copy(update={"slate_after": new.camera.slate_after}),
            }
        )
        self._apply(old, effective)
        if self.manager.state == "failed":
            # Whatever refused the last session (credits run out, say) may be fixed by now.
            self.manager.try_again()
        self.settings = Settings(
            config=effective, secrets=self.settings.secrets, source=self.settings.source
        )
        return self._reloaded(applied=applied, needs_restart=waiting, error=None)

    def reload_refused(self, problems: list[str]) -> dict[str, Any]:
        """A reload whose config failed validation: nothing changed; reported like one."""
        return self._reloaded(applied=[], needs_restart=[], error="; ".join(problems))

    def _apply(self, old: Config, new: Config) -> None:
        control = new.control
        self.queue.set_limits(
            max_text=control.max_text, limit=control.queue_limit, rate=control.rate_limit
        )
        self.control.set_presets(new.presets)
        if new.log.level != old.log.level:
            bridge_log.setup(new.log.level)
        if self.webcam is not None:
            # The writer thread reads slate_after from its config at every frame.
            self.webcam.cfg = self.webcam.cfg.model_copy(
                update={"slate_after": new.camera.slate_after}
            )

    def _reloaded(
        self, *, applied: list[str], needs_restart: list[str], error: str | None
    ) -> dict[str, Any]:
        report = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "applied": applied,
            "needs_restart": needs_restart,
            "error": error,
        }
        self.last_reload = report
        if error is not None:
            log.error("reload refused, nothing changed: %s", error)
        else:
            log.info(
                "config reloaded: applied %s; needs a restart: %s",
                ", ".join(applied) or "nothing",
                ", ".join(needs_restart) or "nothing",
            )
        self.bus.emit("config.reloaded", quiet=True, **report)
        return report

    def status(self) -> dict[str, Any]:
        source = self.manager.source
        return {
            "version": __version__,
            "provider": self.provider.name,
            "session": self.manager.snapshot(),
            "source": source.snapshot() if source is not None else None,
            "camera": self.webcam.stats.snapshot() if self.webcam else {"state": "disabled"},
            "microphone": (
                {
                    **self.mic.stats.snapshot(),
                    "devices": self.mic_devices.snapshot() if self.mic_devices else None,
                }
                if self.mic is not None
                else {"state": "disabled"}
            ),
            "speech": self.queue.snapshot(),
            "listen": {
                **self.listening.snapshot(),
                "devices": self.speaker_devices.snapshot() if self.speaker_devices else None,
            },
            "twitch": self.twitch.snapshot() if self.twitch is not None else None,
            "control": {
                **self.control.snapshot(),
                "websocket": self.hub.snapshot(),
                "preview_watchers": self.preview.watchers,
                "overlay_watchers": self.overlay.watchers,
            },
            "events": [e.as_json() for e in list(self.bus.recent)[-20:]],
            "reload": self.last_reload,
        }

    async def snapshot_jpeg(self) -> bytes:
        if self.webcam is None:
            raise Conflict("camera: is disabled (camera.enabled: false)")
        cam = self.settings.config.camera
        frame = self.webcam.current_frame()
        return await asyncio.to_thread(to_jpeg, frame, cam.width, cam.height, cam.pixel_format)

    async def run(self) -> None:
        """Until cancelled; on the way out stop the session, then release devices."""
        # The camera and mic writers are threads that must get the GIL within a millisecond
        # or two of their deadline, not after CPython's default 5 ms slices of other threads.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        if self.webcam is not None:
            self.webcam.start()
        if self.mic is not None:
            self.mic.start()
        try:
            await self.control.start()
            # Everything built so far lives as long as the daemon: keep it out of the
            # collector's full scans, which otherwise stall every thread for tens of ms.
            gc.freeze()
            self._announce()
            sdnotify.ready(self.control_url)
            async with asyncio.TaskGroup() as group:
                if self.mic_devices is not None:  # first: apps should find the mic early
                    group.create_task(self.mic_devices.maintain(), name="mic-devices")
                if self.speaker_devices is not None and self.uplink is not None:
                    group.create_task(self.speaker_devices.maintain(), name="speaker-devices")
                    group.create_task(self.uplink.run(), name="uplink")
                if self.aligner is not None:
                    group.create_task(self.aligner.run(), name="av-aligner")
                group.create_task(self.manager.run(), name="session-manager")
                group.create_task(self.queue.run(self.manager), name="speech-queue")
                group.create_task(self.watch.run(), name="status-watch")
                if self.twitch is not None:
                    group.create_task(self.twitch.run(), name="twitch")
        finally:
            await self.hub.close()  # clients hear GOING_AWAY before the server goes
            await self.preview.close()
            await self.overlay.close()
            await self.control.stop()
            if self.mic is not None:
                await self.mic.aclose()
            if self.webcam is not None:
                await self.webcam.aclose()
            await self.provider.aclose()

    @property
    def control_url(self) -> str:
        return f"http://{self.settings.config.control.host}:{self.control.port}"

    def _announce(self) -> None:
        base = self.control_url
        log.info("heygen-bridge %s: provider %s", __version__, self.provider.name)
        log.info("control API %s/v1/status; snapshot %s/v1/snapshot.jpg", base, base)
