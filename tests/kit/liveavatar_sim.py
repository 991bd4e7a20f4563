"""A media host for the LiveAvatar fake without LiveKit.

:class:`RecordingMedia` records what the simulated avatar is asked to do and speaks instantly
through the session's dialect, so the data protocol can be tested end to end.
"""

from __future__ import annotations

from collections.abc import Callable

from bridge.media.frames import I16
from bridge.sim import DEFAULT_LIVEAVATAR_KEY
from bridge.sim.media import AvatarLink, Dialect, Hooks, OnData, RoomSpec
from bridge.synthetic.performer import SpeechEvent

__all__ = ["DEFAULT_LIVEAVATAR_KEY", "RecordingLink", "RecordingMedia"]


class RecordingLink:
    """An avatar that speaks instantly: each say() publishes the dialect's packets at once."""

    def __init__(self, room: str, dialect: Dialect, trail: list[str]) -> None:
        self.room = room
        self.dialect = dialect
        self.trail = trail
        self.said: list[tuple[str, str]] = []
        self.interrupts = 0
        self.published: list[tuple[bytes, str]] = []

    async def say(self, text: str, task_id: str) -> float:
        self.said.append((text, task_id))
        words = [w if i == 0 else " " + w for i, w in enumerate(text.split())]
        events = [
            SpeechEvent("started", task_id, text),
            *(SpeechEvent("words", task_id, w) for w in words),
            SpeechEvent("finished", task_id, text),
            SpeechEvent("ended", task_id, duration_ms=50),
        ]
        for event in events:
            self.published += self.dialect.packets(event)
        return 0.05

    def interrupt(self) -> None:
        self.interrupts += 1

    def play_signal(self, samples: I16, task_id: str) -> None:
        self.trail.append("signal")
        self.trail.append("interrupt")

    async def publish(self, payload: bytes, topic: str) -> None:
        self.published.append((payload, topic))
        self.trail.append(f"publish:{topic}")

    async def leave(self) -> None:
        self.trail.append("leave")


class RecordingMedia:
    """A :class:`MediaHost` that records joins, tokens and room closes."""

    livekit_url: str | None = "ws://127.0.0.1:7880"

    def __init__(self) -> None:
        self.trail: list[str] = []
        self.tokens: list[tuple[str, str, bool]] = []
        self.specs: dict[str, RoomSpec] = {}
        self.links: dict[str, RecordingLink] = {}
        self.on_data: dict[str, OnData] = {}
        self.on_lost: dict[str, Callable[[], None]] = {}

    def token(self, room: str, identity: str, *, publish: bool) -> str:
        self.tokens.append((room, identity, publish))
        return f"sim-lk.{room}.{identity}"

    async def join(self, spec: RoomSpec, hooks: Hooks) -> AvatarLink:
        link = RecordingLink(spec.room, hooks.dialect, self.trail)
        self.specs[spec.room] = spec
        self.links[spec.room] = link
        if hooks.on_data is not None:
            self.on_data[spec.room] = hooks.on_data
        if hooks.on_lost is not None:
            self.on_lost[spec.room] = hooks.on_lost
        self.trail.append("join")
        return link

    async def close_room(self, room: str) -> None:
        self.trail.append("close_room")

    async def aclose(self) -> None:
        return None
