"""The composition root: the only place that builds providers, sources, sinks and control."""

from __future__ import annotations

from bridge.avatar.base import Provider
from bridge.avatar.heygen import HeyGenProvider
from bridge.avatar.own_room import OwnRoom
from bridge.config import Secret, Settings
from bridge.errors import ConfigError
from bridge.heygen.client import HeyGenClient


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
    from bridge.avatar.demo import DemoProvider

    return DemoProvider(avatar=cfg.avatar, camera=cfg.camera)
