"""A session's media address → the source that receives its media (and its room link).

The one place that knows which source serves which kind of address, so neither the
composition root nor the session manager branches on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bridge.source.base import DataChannel, MediaHandlers, Source
from bridge.source.livekit import LiveKitSource
from bridge.source.local import LocalAvatar, LocalSource
from bridge.source.room import RoomAddress, RoomLink, RoomUplink

# Where a session's avatar is: a LiveKit room, or this process (the demo).
MediaAddress = RoomAddress | LocalAvatar


@dataclass(frozen=True, slots=True)
class SessionMedia:
    """One session's media: the source to run, and the room link its commands go through
    (None when the avatar has no room: the demo)."""

    source: Source
    room: DataChannel | None


MediaOpener = Callable[[MediaAddress, MediaHandlers], SessionMedia]


def open_media(
    address: MediaAddress, handlers: MediaHandlers, *, uplink: RoomUplink | None = None
) -> SessionMedia:
    """The source for ``address``, handing what it receives to ``handlers``.

    For a room, one :class:`RoomLink` serves both the source (tracks) and the session's
    commands (data); packets that arrive go to ``handlers.data``; ``uplink`` (listen mode)
    publishes the meeting's sound into it.
    """
    if isinstance(address, RoomAddress):
        link = RoomLink(address, on_data=handlers.data, uplink=uplink)
        return SessionMedia(LiveKitSource(link, handlers), link)
    return SessionMedia(LocalSource(address, handlers), None)
