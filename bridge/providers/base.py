"""The provider interface: what the bridge needs from HeyGen, LiveAvatar or the demo avatar.

A :class:`Provider` is the account (list avatars and sessions, stop sessions, open one); an
:class:`AvatarSession` is one live avatar: where its media is, how to make it speak, and how to
read its data-channel events.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

from bridge.errors import RemoteError
from bridge.providers.events import AvatarEvent

if TYPE_CHECKING:
    from bridge.synthetic.performer import Performer

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


class SessionRecorder(Protocol):
    """Told the moment a remote session exists, and when it is stopped (see orphans.py)."""

    async def created(self, session_id: str) -> None: ...

    async def stopped(self, session_id: str) -> None: ...


class _NoRecord:
    async def created(self, session_id: str) -> None:
        return None

    async def stopped(self, session_id: str) -> None:
        return None


NO_RECORD: SessionRecorder = _NoRecord()


async def discard(
    stop_session: Callable[[str], Awaitable[None]], session_id: str, recorder: SessionRecorder
) -> None:
    """Stop a session that failed to start; if that fails too, the record keeps it (and the
    next start stops it)."""
    with contextlib.suppress(RemoteError):
        await stop_session(session_id)
        await recorder.stopped(session_id)


class Provider(Protocol):
    name: str
    # Where its sessions live ("<name> <API base URL>"); None when nothing runs remotely.
    account: str | None

    async def list_avatars(self) -> list[AvatarInfo]: ...

    async def list_sessions(self) -> list[SessionInfo]: ...

    async def stop_session(self, session_id: str) -> None: ...

    async def open_session(self, recorder: SessionRecorder = NO_RECORD) -> AvatarSession:
        """Create and start a session; ``recorder`` hears of it as soon as it exists, and
        of its stop if starting fails."""
        ...

    async def aclose(self) -> None: ...
