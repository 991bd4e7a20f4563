"""Twitch chat and channel-point redemptions over the EventSub WebSocket.

::

    connect ──► session_welcome ──► subscribe (Helix) within WELCOME_DEADLINE_S ──► read
       ▲                                                                             │
       │ backoff      keepalive missed, closed, error ◄──────────────────────────────┤
       └──────────────────────────────────────────────                               │
                          session_reconnect: open the new URL, wait for its welcome, ┘
                          read what the old one still had, close it (no message lost)

A frame is read whole: anything is counted (malformed, unknown type, duplicate) and skipped,
never fatal.  A refusal that retrying cannot fix (bad token, missing scope) stops the
connector with its reason in status; the daemon carries on without chat.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import aiohttp

from bridge.backoff import Backoff, Retrying
from bridge.control.twitch.chat import ChatMessage
from bridge.control.twitch.eventsub import (
    CHAT,
    REDEMPTION,
    Frame,
    Keepalive,
    MalformedFrame,
    Notification,
    Reconnect,
    Revocation,
    Unknown,
    Welcome,
    chat_message,
    parse_frame,
)
from bridge.control.twitch.helix import Helix, TwitchError
from bridge.control.twitch.stats import TwitchStats

__all__ = ["EventSubConnector", "Subscription"]

log = logging.getLogger(__name__)

BACKOFF = Backoff(first=1.0, cap=60.0, spread=(0.5, 1.0))
# Twitch closes a connection with no subscription 10 s after its welcome (close code 4003).
WELCOME_DEADLINE_S = 10.0
# A keepalive is late after its interval; allow half as long again (at most this) for the
# network before calling the connection lost.
KEEPALIVE_GRACE_S = 5.0
MAX_FRAME = 1024 * 1024
REMEMBERED_IDS = 1024

Handler = Callable[[ChatMessage], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Subscription:
    kind: str
    condition: dict[str, str]
    scope: str  # the token scope it needs (named when Twitch refuses it)


class _Dropped(Exception):
    """The connection is gone or silent: connect afresh."""


class EventSubConnector:
    def __init__(
        self,
        *,
        http: aiohttp.ClientSession,
        url: str,
        keepalive_s: int,
        helix: Helix,
        subscriptions: list[Subscription],
        handle: Handler,
        stats: TwitchStats,
        backoff: Backoff = BACKOFF,
    ) -> None:
        self._http = http
        joiner = "&" if "?" in url else "?"
        self._url = f"{url}{joiner}keepalive_timeout_seconds={keepalive_s}"
        self._keepalive_s = float(keepalive_s)
        self._helix = helix
        self._subscriptions = subscriptions
        self._handle = handle
        self._stats = stats
        self._retry = Retrying(backoff)
        self._seen: deque[str] = deque(maxlen=REMEMBERED_IDS)
        self._seen_set: set[str] = set()

    async def run(self) -> None:
        """Until cancelled, or until Twitch refuses what only a new token can fix."""
        while True:
            try:
                await self._session()
            except TwitchError as exc:
                if exc.fatal:
                    self._stats.state = "failed"
                    self._stats.error = str(exc)
                    log.error("twitch: %s", exc)
                    return
                why = str(exc)
            except _Dropped as exc:
                why = str(exc)
            except TimeoutError:
                why = "no welcome, or subscribing took too long"
            except (aiohttp.ClientError, OSError) as exc:
                why = f"{type(exc).__name__}: {exc}"
            self._stats.dropped(why)
            delay = self._retry.failed()
            log.warning("twitch: EventSub connection lost (%s); again in %.1f s", why, delay)
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        ws = await self._http.ws_connect(self._url, max_msg_size=MAX_FRAME)
        try:
            self._stats.connections += 1
            welcome = await self._welcome(ws)
            async with asyncio.timeout(WELCOME_DEADLINE_S):
                for sub in self._subscriptions:
                    await self._helix.subscribe(
                        sub.kind, sub.condition, welcome.session_id, scope=sub.scope
                    )
            self._retry.succeeded()
            self._stats.state = "connected"
            self._stats.error = None
            log.info("twitch: EventSub session %s subscribed", welcome.session_id)
            keepalive = welcome.keepalive_s or self._keepalive_s
            while True:
                moved = await self._read(ws, keepalive)
                ws, keepalive = await self._move(ws, moved, keepalive)
        finally:
            await ws.close()

    async def _welcome(self, ws: aiohttp.ClientWebSocketResponse) -> Welcome:
        async with asyncio.timeout(WELCOME_DEADLINE_S):
            while True:
                frame = await self._next_frame(ws)
                if isinstance(frame, Welcome):
                    return frame
                if frame is not None:  # nothing but a welcome may come first
                    self._stats.unknown += 1

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, keepalive: float) -> Reconnect:
        """Handle frames until Twitch asks to move (the Reconnect) or the connection goes."""
        while True:
            try:
                async with asyncio.timeout(_patience(keepalive)):
                    frame = await self._next_frame(ws)
            except TimeoutError:
                raise _Dropped(f"no keepalive within {_patience(keepalive):.1f} s") from None
            if isinstance(frame, Reconnect):
                return frame
            await self._dispatch(frame)

    async def _move(
        self, old: aiohttp.ClientWebSocketResponse, moved: Reconnect, keepalive: float
    ) -> tuple[aiohttp.ClientWebSocketResponse, float]:
        """Twitch moves the session: the new connection's welcome first, then what the old
        one still carries (Twitch closes it), then the new one takes over."""
        self._stats.reconnects += 1
        log.info("twitch: EventSub moves to a new connection")
        new = await self._http.ws_connect(moved.url, max_msg_size=MAX_FRAME)
        try:
            welcome = await self._welcome(new)
            try:
                async with asyncio.timeout(_patience(keepalive)):
                    while True:
                        frame = await self._next_frame(old)
                        if not isinstance(frame, Reconnect):
                            await self._dispatch(frame)
            except (_Dropped, TimeoutError):
                pass  # the old connection is done
        except BaseException:
            await new.close()
            raise
        await old.close()
        self._stats.connections += 1
        return new, float(welcome.keepalive_s or keepalive)

    async def _next_frame(self, ws: aiohttp.ClientWebSocketResponse) -> Frame | None:
        """The next frame; None for one that could not be read; :class:`_Dropped` when the
        connection closes."""
        message = await ws.receive()
        if message.type == aiohttp.WSMsgType.TEXT:
            text: str = message.data
        elif message.type == aiohttp.WSMsgType.BINARY:
            try:
                text = message.data.decode("utf-8")
            except UnicodeDecodeError:
                self._stats.malformed += 1
                return None
        else:
            raise _Dropped(f"Twitch closed the connection (code {ws.close_code})")
        try:
            return parse_frame(text)
        except MalformedFrame:
            self._stats.malformed += 1
            return None

    async def _dispatch(self, frame: Frame | None) -> None:
        if frame is None or isinstance(frame, Keepalive | Welcome | Reconnect):
            return
        if isinstance(frame, Unknown):
            self._stats.unknown += 1
        elif isinstance(frame, Revocation):
            self._stats.revocations[frame.subscription_type] += 1
            self._stats.error = f"Twitch revoked {frame.subscription_type} ({frame.status})"
            log.warning("twitch: %s", self._stats.error)
        elif self._first_time(frame.message_id):
            await self._notification(frame)

    def _first_time(self, message_id: str) -> bool:
        """Whether this message id is new (Twitch may deliver a message twice)."""
        if message_id in self._seen_set:
            self._stats.duplicates += 1
            return False
        if len(self._seen) == self._seen.maxlen:
            self._seen_set.discard(self._seen[0])
        self._seen.append(message_id)
        self._seen_set.add(message_id)
        return True

    async def _notification(self, notification: Notification) -> None:
        if notification.subscription_type not in (CHAT, REDEMPTION):
            self._stats.unknown += 1
            return
        try:
            message = chat_message(notification)
        except MalformedFrame:
            self._stats.malformed += 1
            return
        if message is None:
            return
        if message.reward_id is not None and not message.redemption:
            # The redemption event carries the reward; this chat copy is plain chat.
            message = replace(message, reward_id=None)
        await self._handle(message)


def _patience(keepalive: float) -> float:
    """How long silence may last before the connection counts as lost."""
    return keepalive + min(KEEPALIVE_GRACE_S, keepalive / 2)
