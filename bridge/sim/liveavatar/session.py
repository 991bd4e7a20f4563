"""One LiveAvatar session as the fake keeps it, and the limits it runs under.

States: token_issued → started (``/start``, once per token) → connected (the avatar joined the
room) → closed (stop, idle timeout, duration limit, sandbox minute, room lost).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from bridge.sim.liveavatar.schemas import Quality
from bridge.sim.media import Heard
from bridge.sim.service import SimSession

if TYPE_CHECKING:
    from bridge.sim.liveavatar.room import LiveAvatarDialect

SessionState = Literal["token_issued", "started", "connected", "closed"]
ACTIVE: tuple[SessionState, ...] = ("token_issued", "started", "connected")
QUALITY_SIZES: dict[str, tuple[int, int]] = {
    "very_high": (1920, 1080),
    "high": (1280, 720),
    "medium": (854, 480),
    "low": (640, 360),
}
INBOX_SIZE = 256  # commands waiting for the avatar, per session


@dataclass
class LiveAvatarLimits:
    max_concurrent: int = 20  # not documented by LiveAvatar; a generous stand-in
    max_session_duration: int = 1200  # the plan's cap, and the default when none is asked
    idle_timeout: float = 300.0
    sandbox_duration: int = 60
    time_scale: float = 1.0  # < 1 shrinks every timeout (rehearsals on the wall clock)
    success_code: int = 1000  # the SDK's SUCCESS_CODE; the OpenAPI says 100


@dataclass(kw_only=True)
class LiveAvatarSession(SimSession):
    token: str
    avatar_id: str
    quality: Quality
    encoding: str
    is_sandbox: bool
    max_duration: int
    interactivity: str
    persona: dict[str, Any]
    dialect: LiveAvatarDialect
    state: SessionState = "token_issued"
    # Fields of the token request the service ignored (unknown to its schema), as dotted paths.
    ignored: list[str] = field(default_factory=list)
    updated: float = 0.0  # wall-clock seconds, as ``created``
    ended: float | None = None
    end_reason: str | None = None
    listening: bool = False  # the pose (avatar.start_listening / stop_listening)
    talk_window: bool = False  # PUSH_TO_TALK: between user.start_ and user.stop_push_to_talk
    lost: bool = False  # the room dropped the avatar: watch() ends the session
    # Commands from the room and what the avatar heard, in the order they came.
    inbox: asyncio.Queue[dict[str, Any] | Heard] = field(
        default_factory=lambda: asyncio.Queue(maxsize=INBOX_SIZE)
    )
    # The last commands received, for tests and rehearsals.
    commands: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=INBOX_SIZE))
