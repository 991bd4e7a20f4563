"""The composition root: the only place that builds providers, sources, sinks and control.

::

    provider ─► SessionManager ─► source (LiveKit room | in-process demo)
                    │                 ├─ video ─► WebcamSink (converter, pacing, slate)
                    │                 ├─ audio ─► (mic sink)
                    │                 └─ data  ─► provider events ─► EventBus, SpeechQueue
    ControlServer ──┴─ SpeechQueue ─► manager.speak()
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bridge import __version__, sdnotify
from bridge.avatar.base import AvatarSession, LiveKitMedia, Provider
from bridge.avatar.heygen import HeyGenProvider
from bridge.avatar.liveavatar import LiveAvatarProvider
from bridge.avatar.manager import MediaSource, SessionManager
from bridge.avatar.own_room import OwnRoom
from bridge.config import Secret, Settings
from bridge.control.http import ControlServer
from bridge.control.queue import SpeechQueue
from bridge.errors import BadInput, ConfigError
from bridge.eventbus import EventBus
from bridge.heygen.client import HeyGenClient
from bridge.liveavatar.client import LiveAvatarClient
from bridge.media.frames import AudioChunk
from bridge.pipeline.snapshot import to_jpeg
from bridge.sinks.webcam import WebcamSink
from bridge.source.livekit import LiveKitSource
from bridge.source.local import LocalSource

log = logging.getLogger(__name__)

SWITCH_INTERVAL_S = 0.001


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


def make_provider(settings: Settings) -> Provider:
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
        return LiveAvatarProvider(
            client=LiveAvatarClient.from_config(cfg.liveavatar, key), avatar=cfg.avatar
        )
    if cfg.provider == "demo":
        from bridge.avatar.demo import DemoProvider

        return DemoProvider(avatar=cfg.avatar, camera=cfg.camera)
    raise ConfigError([f"provider: {cfg.provider!r} was not resolved (a bug: please report)"])


@dataclass
class AudioTap:
    """Counts the avatar audio that arrives (the mic sink consumes it when enabled)."""

    chunks: int = 0
    seconds: float = 0.0
    last: float = field(default=0.0)

    def __call__(self, chunk: AudioChunk) -> None:
        self.chunks += 1
        self.seconds += chunk.duration
        self.last = time.perf_counter()


class Bridge:
    """Everything ``heygen-bridge run`` runs, wired together."""

    def __init__(self, settings: Settings) -> None:
        cfg = settings.config
        self.settings = settings
        self.bus = EventBus()
        self.provider = make_provider(settings)
        if isinstance(self.provider, LiveAvatarProvider):
            self.provider.token_request()  # a config LiveAvatar cannot serve fails now
        self.queue = SpeechQueue(bus=self.bus)
        self.webcam = WebcamSink(cfg.camera) if cfg.camera.enabled else None
        self.audio = AudioTap()
        self.manager = SessionManager(
            provider=self.provider,
            make_source=self._make_source,
            bus=self.bus,
            on_event=self.queue.on_event,
            on_session_end=self.queue.drop_unfinished,
        )
        self.control = ControlServer(
            cfg.control,
            queue=self.queue,
            status=self.status,
            snapshot=self.snapshot,
            token=settings.secrets.control_token,
        )

    def _make_source(self, session: AvatarSession, manager: SessionManager) -> MediaSource:
        on_video = self.webcam.put if self.webcam is not None else (lambda frame: None)
        if isinstance(session.media, LiveKitMedia):
            return LiveKitSource(
                session.media,
                on_video=on_video,
                on_audio=self.audio,
                on_data=manager.on_data,
                on_avatar=manager.on_avatar,
            )
        return LocalSource(
            session.media, on_video=on_video, on_audio=self.audio, on_event=manager.on_event
        )

    def status(self) -> dict[str, Any]:
        source = self.manager.source
        return {
            "version": __version__,
            "provider": self.provider.name,
            "session": self.manager.snapshot(),
            "source": source.snapshot() if source is not None else None,
            "camera": self.webcam.stats.snapshot() if self.webcam else {"state": "disabled"},
            "audio": {"chunks": self.audio.chunks, "seconds": round(self.audio.seconds, 2)},
            "speech": self.queue.snapshot(),
            "events": [e.as_json() for e in list(self.bus.recent)[-20:]],
        }

    async def snapshot(self) -> bytes:
        if self.webcam is None:
            raise BadInput("camera", "is disabled (camera.enabled: false)")
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
        try:
            await self.control.start()
            # Everything built so far lives as long as the daemon: keep it out of the
            # collector's full scans, which otherwise stall every thread for tens of ms.
            gc.freeze()
            self._announce()
            sdnotify.notify("READY=1")
            async with asyncio.TaskGroup() as group:
                group.create_task(self.manager.run(), name="session-manager")
                group.create_task(self.queue.run(self.manager), name="speech-queue")
        finally:
            await self.control.stop()
            if self.webcam is not None:
                await asyncio.to_thread(self.webcam.close)
            await self.provider.aclose()

    def _announce(self) -> None:
        cfg = self.settings.config
        base = f"http://{cfg.control.host}:{self.control.port}"
        log.info("heygen-bridge %s: provider %s", __version__, self.provider.name)
        log.info("control API %s/v1/status; snapshot %s/v1/snapshot.jpg", base, base)
