"""Listen mode's control: the avatar's ears on and off, from every face of the control API.

``listen.mode`` (config) is ``off`` (nothing is heard: no virtual speaker, no track),
``conversational`` (the avatar hears the meeting from the start; ``stop`` mutes, ``start``
unmutes) or ``push-to-talk`` (it hears only between ``start`` and ``stop``).  Each
:meth:`Listening.set` does two things, in this order:

1. the bridge's own gate (:meth:`~bridge.source.uplink.Uplink.set_listening`): closed, none of
   the meeting's sound leaves the machine, whatever the provider does;
2. the provider's own mechanism, through the session manager: LiveAvatar's push-to-talk
   window (``user.start_push_to_talk`` / ``user.stop_push_to_talk``, in sessions opened with
   ``interactivity_type: PUSH_TO_TALK``) or its listening state (``avatar.start_listening`` /
   ``stop_listening``); HeyGen's ``streaming.start_listening`` / ``stop_listening``.

A ``start`` the provider refuses is undone (502); a ``stop`` always stops the gate, even when
the provider cannot be told (no live session: nothing is sent anyway).  A change is emitted as
``listen.state`` (``mode``, ``listening``).

Routes: ``GET /v1/listen`` (the state), ``POST /v1/listen/start`` and ``/stop``, and the same
two as ``GET`` for Stream Deck's Website action (state-changing GETs: the guard treats them
like POSTs).  The WebSocket's ``{"type": "listen", "action": "start"|"stop"}`` and the CLI's
``heygen-bridge listen start|stop`` end here too.
"""

from __future__ import annotations

import logging
from typing import Any, Literal, Protocol

from aiohttp import web

from bridge.config import ListenConfig
from bridge.control.problems import Conflict
from bridge.errors import NotLive, RemoteError
from bridge.eventbus import EventBus

log = logging.getLogger(__name__)

PATHS = ("/v1/listen/start", "/v1/listen/stop")
AvatarTold = Literal["yes", "not live", "no such command"]


class Gate(Protocol):
    """The bridge's own gate on the meeting's sound (:class:`~bridge.source.uplink.Uplink`)."""

    @property
    def listening(self) -> bool: ...

    def set_listening(self, on: bool) -> None: ...

    def snapshot(self) -> dict[str, Any]: ...


class Ears(Protocol):
    """The provider's side (the session manager)."""

    async def listen(self, on: bool, *, push_to_talk: bool) -> bool: ...


class Listening:
    """``set(True|False)`` for the API, the WebSocket and the CLI; ``routes()`` for HTTP.

    ``gate`` is None when the mode is ``off`` or this system has no virtual speaker
    (``unavailable`` says why): then every start or stop is a 409."""

    def __init__(
        self,
        cfg: ListenConfig,
        *,
        gate: Gate | None,
        ears: Ears,
        bus: EventBus,
        unavailable: str | None = None,
    ) -> None:
        self.cfg = cfg
        self._gate = gate
        self._ears = ears
        self._bus = bus
        self._unavailable = unavailable

    @property
    def push_to_talk(self) -> bool:
        return self.cfg.mode == "push-to-talk"

    async def set(self, on: bool) -> dict[str, Any]:
        """Open or close the avatar's ears; the state after it (see the module doc)."""
        gate = self._require_gate()
        was = gate.listening
        gate.set_listening(on)
        try:
            told = await self._tell(on)
        except RemoteError:
            if on:
                gate.set_listening(was)
            raise
        finally:
            if gate.listening != was:
                self._bus.emit("listen.state", mode=self.cfg.mode, listening=gate.listening)
        return {**self.state(), "avatar_told": told}

    def state(self) -> dict[str, Any]:
        gate = self._gate
        return {
            "mode": self.cfg.mode,
            "listening": gate.listening if gate is not None else False,
            "push_to_talk": self.push_to_talk,
        }

    def snapshot(self) -> dict[str, Any]:
        """The ``listen`` part of ``/v1/status``."""
        if self._gate is None:
            return {**self.state(), "unavailable": self._unavailable}
        return {**self._gate.snapshot(), **self.state()}

    def routes(self) -> list[web.RouteDef]:
        start, stop = PATHS
        return [
            web.get("/v1/listen", self._show),
            web.post(start, self._start),
            web.post(stop, self._stop),
            # allow_head=False: a HEAD must not open the avatar's ears.
            web.get(start, self._start, allow_head=False),
            web.get(stop, self._stop, allow_head=False),
        ]

    async def _show(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.snapshot())

    async def _start(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(await self.set(True))

    async def _stop(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(await self.set(False))

    def _require_gate(self) -> Gate:
        if self._gate is not None:
            return self._gate
        if self.cfg.mode == "off":
            raise Conflict(
                "listen: is off (listen.mode: off); set it to conversational or push-to-talk"
            )
        raise Conflict(f"listen: unavailable ({self._unavailable or 'no virtual speaker'})")

    async def _tell(self, on: bool) -> AvatarTold:
        try:
            known = await self._ears.listen(on, push_to_talk=self.push_to_talk)
        except NotLive:
            return "not live"  # the gate alone decides until a session is live
        return "yes" if known else "no such command"
