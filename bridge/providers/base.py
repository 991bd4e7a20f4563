"""The provider interface: what the bridge needs from HeyGen, LiveAvatar or the demo avatar.

A :class:`Provider` is the account (list avatars and sessions, stop sessions, open one); an
:class:`AvatarSession` is one live avatar: where its media is, how to make it speak, and how to
read its events.  Commands that travel through the avatar's room (LiveAvatar's) go through the
room link the session manager hands to each call; events come back through the manager, which
has the session :meth:`~AvatarSession.decode` them.

Also here, for every provider: :func:`start_or_discard`, the rule that a remote session whose
start fails is stopped again (never leaked), and :func:`finish_despite_cancel` (from
:mod:`bridge.cleanup`), for clean-up that must not be cut in half.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar, runtime_checkable

from bridge.cleanup import finish_despite_cancel as finish_despite_cancel
from bridge.errors import RemoteError
from bridge.providers.events import AvatarEvent

if TYPE_CHECKING:
    from bridge.source.base import DataChannel
    from bridge.source.open import MediaAddress

T = TypeVar("T")

SpeakMode = Literal["repeat", "chat"]


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


class AvatarSession(Protocol):
    @property
    def provider(self) -> str: ...

    @property
    def session_id(self) -> str: ...

    @property
    def media(self) -> MediaAddress:
        """Where the avatar's media is: a LiveKit room, or this process (the demo)."""
        ...

    @property
    def keep_alive_every(self) -> float | None:
        """Send keep-alives this often (seconds); None when the session needs none."""
        ...

    @property
    def duration_limit(self) -> float | None:
        """The provider ends the session this many seconds after it started; None: no limit."""
        ...

    async def speak(self, text: str, mode: SpeakMode, room: DataChannel | None) -> str:
        """Make the avatar speak ``text`` (at most the provider's ``max_text`` characters);
        returns the provider's task id, which its events carry.  ``room`` is the session's
        room link (None without a room), for providers whose commands travel through it."""
        ...

    async def interrupt(self, room: DataChannel | None) -> None:
        """Stop speaking and drop what is queued at the provider."""
        ...

    async def keep_alive(self) -> None: ...

    async def stop(self) -> None:
        """End the session at the provider (a session already gone is not an error)."""
        ...

    def decode(self, payload: bytes, topic: str | None) -> list[AvatarEvent]:
        """The bridge events carried by one data packet from the avatar's media source."""
        ...


@runtime_checkable
class ListeningSession(Protocol):
    """A session whose provider can hear the user (listen mode); the demo's cannot."""

    async def listen(self, on: bool, push_to_talk: bool, room: DataChannel | None) -> None:
        """Open (``on``) or close the avatar's ears: with ``push_to_talk`` the provider's
        push-to-talk window, otherwise its listening state (conversational: mute/unmute)."""
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


async def start_or_discard(
    session_id: str,
    start: Callable[[], Awaitable[T]],
    *,
    stop_session: Callable[[str], Awaitable[None]],
    recorder: SessionRecorder,
) -> T:
    """The remote session ``session_id`` now exists: put it on record, then ``start()`` it.

    If starting fails, or is cancelled, the session is stopped again before the error goes
    on, so a failed start never leaves a session running (it would count against the
    account's concurrency limit, and cost).  If that stop fails too, the record keeps the
    session and the next start of the bridge stops it.
    """
    await recorder.created(session_id)
    try:
        return await start()
    except BaseException:
        await finish_despite_cancel(
            _discard(stop_session, session_id, recorder), name=f"discard-{session_id}"
        )
        raise


async def _discard(
    stop_session: Callable[[str], Awaitable[None]], session_id: str, recorder: SessionRecorder
) -> None:
    with contextlib.suppress(RemoteError):  # it stays on record: the next start stops it
        await stop_session(session_id)
        await recorder.stopped(session_id)


class Provider(Protocol):
    name: str
    # Where its sessions live ("<name> <API base URL>"); None when nothing runs remotely.
    account: str | None
    # The most characters one speak request may carry (the speech queue refuses longer).
    max_text: int

    async def list_avatars(self) -> list[AvatarInfo]: ...

    async def list_sessions(self) -> list[SessionInfo]: ...

    async def stop_session(self, session_id: str) -> None: ...

    async def open_session(self, recorder: SessionRecorder = NO_RECORD) -> AvatarSession:
        """Create and start a session; ``recorder`` hears of it as soon as it exists, and
        of its stop if starting fails (see :func:`start_or_discard`)."""
        ...

    async def aclose(self) -> None: ...
