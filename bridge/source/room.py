"""The avatar's LiveKit room: where it is (:class:`RoomAddress`) and the bridge's place in it
(:class:`RoomLink`).

One session, one room link.  The session manager opens it for the session's address and hands
it to both of its users:

* the media source (:class:`~bridge.source.livekit.LiveKitSource`) joins through it, rejoins
  when the room is lost, and consumes the avatar's tracks;
* the provider session sends its commands through it (:meth:`RoomLink.publish`: LiveAvatar's
  speak, interrupt and listening commands);
* in listen mode the uplink (:class:`~bridge.source.uplink.Uplink`) publishes the meeting's
  sound into the room once joined (``uplink.attach``), and forgets it on leaving.

Data packets that arrive in the room go to ``on_data`` (the manager, which has the session
decode them into the bridge's events).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from livekit import rtc
from livekit.rtc.participant import PublishDataError

from bridge.cleanup import finish_despite_cancel
from bridge.source import livekit_join
from bridge.source.base import DataHandler

# The identity the avatar joins its room with, at HeyGen and at LiveAvatar alike (their SDKs
# and pipecat attach only this participant's tracks: reference/heygen-api.md §3.1,
# reference/liveavatar-api.md §3).  Also the identity the bridge gives it in your own room.
AVATAR_IDENTITY = "heygen"


@dataclass(frozen=True, slots=True)
class RoomAddress:
    """The avatar is in a LiveKit room; the bridge joins it at ``url`` with ``token``."""

    url: str
    token: str
    avatar_identity: str = AVATAR_IDENTITY


class RoomUplink(Protocol):
    """What publishes the user's side into every room joined (:class:`Uplink`)."""

    async def attach(self, room: rtc.Room) -> None: ...

    async def detach(self, room: rtc.Room) -> None: ...


class RoomLink:
    """The bridge's place in one session's room: joining, leaving, and data both ways.

    One stay at a time: :meth:`join`, then :meth:`lost` returns when the room is lost, then
    :meth:`leave`.  :meth:`publish` works while joined and raises ``ConnectionError`` otherwise.

    Joining and leaving are safe to cancel, and a cancelled caller waits a bounded time: the
    SDK's connect is never cut in half (that makes it panic and end the process 15 s later),
    it runs to its end and the room is left before the cancellation goes on (see
    :mod:`bridge.source.livekit_join`).
    """

    def __init__(
        self, address: RoomAddress, *, on_data: DataHandler, uplink: RoomUplink | None = None
    ) -> None:
        self.address = address
        self._on_data = on_data
        self._uplink = uplink
        self._room: rtc.Room | None = None
        self._lost = asyncio.Event()
        self._lost_reason = ""
        self.deleted = False  # the last stay ended because the server closed the room
        self.data_packets = 0

    @property
    def identity(self) -> str:
        """The bridge's own identity in the room ("" when not joined)."""
        room = self._room
        return room.local_participant.identity if room is not None and room.isconnected() else ""

    async def join(self, watch: Callable[[rtc.Room], None]) -> None:
        """Join the room.  ``watch(room)`` runs first, so the caller's own handlers see every
        event of the stay (tracks the avatar already publishes included).

        ``rtc.ConnectError`` when the room cannot be joined.  Cancelled while connecting: the
        connect ends, the room is left, then the cancellation goes on.
        """
        room = rtc.Room()
        self._lost.clear()
        self.deleted = False
        room.on("data_received", self._received)
        room.on("disconnected", self._disconnected)
        watch(room)
        self._room = room
        await livekit_join.connect(room, self.address.url, self.address.token, name="room-join")
        if self._uplink is not None:  # a publish is not cut in half either
            await finish_despite_cancel(self._uplink.attach(room), name="uplink-attach")

    async def lost(self) -> str:
        """Wait until the room is lost (disconnected by the server or the network); the reason."""
        await self._lost.wait()
        return self._lost_reason

    async def leave(self) -> None:
        """Leave the room (a room already gone is fine); a cancel waits until it is left."""
        room, self._room = self._room, None
        if room is not None:
            if self._uplink is not None:
                await finish_despite_cancel(self._uplink.detach(room), name="uplink-detach")
            with contextlib.suppress(rtc.ConnectError):  # already gone is fine
                await livekit_join.disconnect(room, name="room-leave")

    async def publish(self, payload: bytes, topic: str) -> None:
        """Send a data packet into the room (reliable); ``ConnectionError`` when it cannot."""
        room = self._room
        if room is None or not room.isconnected():
            raise ConnectionError("not in the avatar's room")
        try:
            await room.local_participant.publish_data(payload, reliable=True, topic=topic)
        except PublishDataError as exc:  # one contract for callers: ConnectionError
            raise ConnectionError(f"could not send into the avatar's room: {exc}") from exc

    def _received(self, packet: rtc.DataPacket) -> None:
        self.data_packets += 1
        self._on_data(packet.data, packet.topic)

    def _disconnected(self, reason: Any) -> None:
        self._lost_reason = f"room disconnected ({reason})"
        self.deleted = reason == rtc.DisconnectReason.ROOM_DELETED
        self._lost.set()
