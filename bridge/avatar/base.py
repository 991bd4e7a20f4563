"""The provider interface: what the bridge needs from HeyGen, LiveAvatar or the demo avatar.

A :class:`Provider` is the account (list avatars and sessions, stop sessions, open one); an
:class:`AvatarSession` is one live avatar: where its media is, how to make it speak, and how to
read its data-channel events.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

from bridge.avatar.events import AvatarEvent

if TYPE_CHECKING:
    from bridge.avatar.performer import Performer

SpeakMode = Literal["repeat", "chat"]

# Publishes a data packet into the avatar's room: (payload, topic).
PublishData = Callable[[bytes, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class AvatarInfo:
    avatar_id: str
    name: str
    status: str
    public: bool | None = None


@dataclass(frozen=True, slots=True)
class SessionInfo:
    session_id: str
    status: str
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LiveKitMedia:
    """The avatar is in a LiveKit room; the bridge joins it with ``token``."""

    url: str
    token: str
    avatar_identity: str = "heygen"


@dataclass(frozen=True, slots=True)
class LocalMedia:
    """The avatar runs in this process (demo): frames and audio come from a performer."""

    performer: Performer
    fps: float


class AvatarSession(Protocol):
    @property
    def provider(self) -> str: ...

    @property
    def session_id(self) -> str: ...

    @property
    def media(self) -> LiveKitMedia | LocalMedia: ...

    @property
    def keep_alive_every(self) -> float | None:
        """Send keep-alives this often (seconds); None when the session needs none."""
        ...

    @property
    def max_text(self) -> int:
        """The most characters one speak request may carry."""
        ...

    async def speak(self, text: str, mode: SpeakMode) -> str:
        """Make the avatar speak; returns the provider's task id."""
        ...

    async def interrupt(self) -> None: ...

    async def keep_alive(self) -> None: ...

    async def stop(self) -> None:
        """End the session at the provider (a session already gone is not an error)."""
        ...

    def decode(self, payload: bytes, topic: str | None) -> list[AvatarEvent]:
        """The bridge events carried by one data packet from the avatar's room."""
        ...

    def attach(self, publish: PublishData) -> None:
        """Give the session a way to send data packets into its room (LiveAvatar commands)."""
        ...


class Provider(Protocol):
    name: str

    async def list_avatars(self) -> list[AvatarInfo]: ...

    async def list_sessions(self) -> list[SessionInfo]: ...

    async def stop_session(self, session_id: str) -> None: ...

    async def open_session(self) -> AvatarSession: ...

    async def aclose(self) -> None: ...
