"""The media source contract: what every source of avatar media offers, and what it takes.

A source (the LiveKit room, :mod:`bridge.source.livekit`; the in-process demo avatar,
:mod:`bridge.source.local`) runs until it is cancelled and hands everything it receives to
one :class:`MediaHandlers` bundle::

    source ──► video(frame)          a frame as a view (no copy), with its arrival time
           ├─► audio(chunk)          48 kHz mono PCM
           ├─► data(payload, topic)  the provider's events, still in the provider's words
           └─► presence(bool)        the avatar's picture arrived (True) or went (False)

The handlers are called on the event loop, once per frame or packet: each must return at
once (a sink's ``put``, a decode), never block or await.  A source that cannot go on (one of
its consumers died) raises :class:`SourceFailed`; the session manager then ends the session
and opens a new one.  Room loss is not a failure: a source rejoins on its own, unless the
server closed the room (:class:`RoomClosed`: the provider ended the session).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.media.frames import AudioChunk, VideoFrame

VideoHandler = Callable[[VideoFrame], None]
AudioHandler = Callable[[AudioChunk], None]
DataHandler = Callable[[bytes, str | None], None]  # (payload, topic or None)
PresenceHandler = Callable[[bool], None]


@dataclass(frozen=True, slots=True)
class MediaHandlers:
    """Where a source hands what it receives (see the module doc for the contract)."""

    video: VideoHandler
    audio: AudioHandler
    data: DataHandler
    presence: PresenceHandler


class Source(Protocol):
    async def run(self) -> None:
        """Receive media until cancelled; :class:`SourceFailed` when it cannot go on."""
        ...

    def snapshot(self) -> dict[str, Any]:
        """Status for ``/v1/status`` (state, counters, last error)."""
        ...


class DataChannel(Protocol):
    """Sends data packets into the avatar's room (a provider's commands)."""

    async def publish(self, payload: bytes, topic: str) -> None:
        """Send reliably; ``ConnectionError`` when not in the room (or the send failed)."""
        ...


class SourceFailed(Exception):
    """The source cannot go on: one of its consumers died (the cause is chained)."""


class RoomClosed(SourceFailed):
    """The server closed the avatar's room (LiveKit ``ROOM_DELETED``): the provider ended
    the session, and rejoining would only open an empty room of the same name."""
