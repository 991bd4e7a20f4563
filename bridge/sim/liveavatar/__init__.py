"""A faithful fake of LiveAvatar: REST API and FULL-mode data protocol (liveavatar-api.md).

``schemas``: request bodies as the FastAPI service validates them, and its 422 answers;
``catalog``: the avatars; ``session``: a session's state and the limits; ``rest``: the
endpoints and state machine; ``room``: the avatar's side of the data channel.
"""

from bridge.sim.liveavatar.catalog import PUBLIC_AVATARS, USER_AVATARS, WAYNE
from bridge.sim.liveavatar.rest import LiveAvatarSim
from bridge.sim.liveavatar.room import LiveAvatarDialect
from bridge.sim.liveavatar.session import LiveAvatarLimits, LiveAvatarSession

__all__ = [
    "PUBLIC_AVATARS",
    "USER_AVATARS",
    "WAYNE",
    "LiveAvatarDialect",
    "LiveAvatarLimits",
    "LiveAvatarSession",
    "LiveAvatarSim",
]
