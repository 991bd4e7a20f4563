"""How a simulator puts its avatar into a LiveKit room: the seam between REST fakes and media.

A :class:`MediaHost` mints room tokens and makes an avatar join a room; the avatar it returns
(:class:`AvatarLink`) speaks, is interrupted and leaves.  :class:`NoMedia` is the host for a
simulator without a LiveKit server: sessions work over REST and speech only takes time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from bridge.media.frames import I16
from bridge.synthetic.performer import SpeechEvent
from bridge.synthetic.voice import estimate_duration

# (payload, topic) data packets an avatar publishes for one speech event.
Packets = list[tuple[bytes, str]]
# A data packet the avatar received in its room: (payload, topic).
OnData = Callable[[bytes, str | None], None]
# The avatar to whom every provider gives this LiveKit identity (reference §3.1).
AVATAR_IDENTITY = "heygen"
# Whether the avatar's ears are open now (push-to-talk closes them).
Gate = Callable[[], bool]


@dataclass(frozen=True, slots=True)
class Heard:
    """An utterance began (``started``) or ended (``ended``, ``seconds`` from its first to its
    last loud frame) in the audio of participant ``speaker`` (see :mod:`bridge.sim.listening`)."""

    kind: Literal["started", "ended"]
    speaker: str
    seconds: float = 0.0


OnHeard = Callable[[Heard], None]


class Dialect(Protocol):
    """How a provider spells speech events on the data channel."""

    def packets(self, event: SpeechEvent) -> Packets: ...


@dataclass(frozen=True, slots=True)
class RoomSpec:
    url: str
    room: str
    token: str  # what the avatar joins with
    width: int
    height: int
    identity: str = AVATAR_IDENTITY
    codec: str = "VP8"  # H264 | VP8, as the session asked


@dataclass(frozen=True, slots=True)
class Hooks:
    """How an avatar and its service talk: speech events go out in the service's ``dialect``;
    ``on_data`` hears packets sent into the room; ``on_lost`` hears that the room dropped it;
    ``on_heard`` hears what other participants say on their audio tracks (none: the avatar does
    not listen), while ``gate`` (none: always) lets it."""

    dialect: Dialect
    on_data: OnData | None = None
    on_lost: Callable[[], None] | None = None
    on_heard: OnHeard | None = None
    gate: Gate | None = None


class JoinFailed(Exception):
    """The avatar could not enter its room (the LiveKit server refused it or is unreachable).

    The one failure a fake turns into a failed session, as the real service would; any other
    exception from a join is a bug of the simulator and propagates.
    """


class AvatarLink(Protocol):
    async def say(self, text: str, task_id: str) -> float:
        """Queue speech; returns its duration in seconds."""
        ...

    def interrupt(self) -> None: ...

    def play_signal(self, samples: I16, task_id: str) -> None:
        """Queue a known raw signal (tests measure it at the microphone)."""
        ...

    async def publish(self, payload: bytes, topic: str) -> None:
        """Send a data packet into the room as the avatar (session events)."""
        ...

    async def leave(self) -> None: ...


class MediaHost(Protocol):
    livekit_url: str | None

    def token(self, room: str, identity: str, *, publish: bool) -> str: ...

    async def join(self, spec: RoomSpec, hooks: Hooks) -> AvatarLink:
        """The avatar in the room; raises :class:`JoinFailed` when the room cannot be joined."""
        ...

    async def close_room(self, room: str) -> None: ...

    async def aclose(self) -> None: ...


class _SilentAvatar:
    """Speech that only takes time: enough for REST-level behaviour (sync tasks, interrupt)."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._busy_until = 0.0

    async def say(self, text: str, task_id: str) -> float:
        duration = estimate_duration(text, self._rate)
        loop = asyncio.get_running_loop()
        self._busy_until = max(self._busy_until, loop.time()) + duration
        return duration

    def interrupt(self) -> None:
        self._busy_until = 0.0

    def play_signal(self, samples: I16, task_id: str) -> None:
        return None  # no media: nothing to play

    async def publish(self, payload: bytes, topic: str) -> None:
        return None

    async def leave(self) -> None:
        self._busy_until = 0.0


class NoMedia:
    """A media host for simulators run without a LiveKit server."""

    livekit_url: str | None = None

    def token(self, room: str, identity: str, *, publish: bool) -> str:
        return f"sim-no-livekit.{room}.{identity}"

    async def join(self, spec: RoomSpec, hooks: Hooks) -> AvatarLink:
        return _SilentAvatar(1.0)

    async def close_room(self, room: str) -> None:
        return None

    async def aclose(self) -> None:
        return None
