"""Your own LiveKit room for the avatar (HeyGen ``livekit_settings``, reference §1.3).

The bridge mints two tokens with your LiveKit key/secret: one the avatar joins with (it
publishes), and one the bridge joins with (it subscribes, sends data, and in listen mode
publishes the meeting's sound).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from livekit import api

from bridge.config import Secret
from bridge.source.room import AVATAR_IDENTITY

BRIDGE_IDENTITY = "heygen-bridge"
TOKEN_TTL = timedelta(hours=6)


@dataclass(frozen=True, slots=True)
class OwnRoom:
    url: str
    room: str
    api_key: Secret
    api_secret: Secret

    def _token(self, identity: str, *, publish: bool) -> str:
        grants = api.VideoGrants(
            room_join=True,
            room=self.room,
            can_publish=publish,
            can_subscribe=True,
            can_publish_data=True,
        )
        return (
            api.AccessToken(self.api_key.reveal(), self.api_secret.reveal())
            .with_identity(identity)
            .with_name(identity)
            .with_ttl(TOKEN_TTL)
            .with_grants(grants)
            .to_jwt()
        )

    def avatar_token(self) -> str:
        return self._token(AVATAR_IDENTITY, publish=True)

    def bridge_token(self) -> str:
        return self._token(BRIDGE_IDENTITY, publish=True)
