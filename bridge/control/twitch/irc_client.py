"""Anonymous, read-only Twitch chat over IRC on a WebSocket (``wss://irc-ws.chat.twitch.tv``).

Log in as ``justinfan<digits>`` (no token), ``CAP REQ`` the tags and commands, ``JOIN``
every channel; answer ``PING`` with ``PONG``; on ``RECONNECT`` connect again at once; on a
dropped connection (or nothing heard for :data:`IDLE_S`: Twitch pings every five minutes)
connect again after the backoff.  A line that does not parse is counted and skipped.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

import aiohttp

from bridge.backoff import Backoff, Retrying
from bridge.control.twitch.chat import ChatMessage
from bridge.control.twitch.irc import IrcLine, MalformedLine, chat_message, parse_line
from bridge.control.twitch.stats import TwitchStats

__all__ = ["IrcConnector"]

log = logging.getLogger(__name__)

BACKOFF = Backoff(first=1.0, cap=60.0, spread=(0.5, 1.0))
IDLE_S = 360.0
MAX_FRAME = 1024 * 1024
CAPABILITIES = "CAP REQ :twitch.tv/tags twitch.tv/commands"

Handler = Callable[[ChatMessage], Awaitable[None]]


class _Moved(Exception):
    """The server sent RECONNECT."""


class IrcConnector:
    def __init__(
        self,
        *,
        url: str,
        channels: list[str],
        handle: Handler,
        stats: TwitchStats,
        backoff: Backoff = BACKOFF,
        idle_s: float = IDLE_S,
    ) -> None:
        self._url = url
        self._channels = channels
        self._handle = handle
        self._stats = stats
        self._retry = Retrying(backoff)
        self._idle_s = idle_s

    async def run(self) -> None:
        """Read chat until cancelled, connecting again whenever the connection goes."""
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    await self._session(http)
                    why = "the server closed the connection"
                except _Moved:
                    self._stats.reconnects += 1
                    self._stats.state = "reconnecting"
                    log.info("twitch: IRC asked to reconnect")
                    continue
                except TimeoutError:
                    why = f"nothing heard for {self._idle_s:.0f} s"
                except (aiohttp.ClientError, OSError) as exc:
                    why = f"{type(exc).__name__}: {exc}"
                self._stats.dropped(why)
                delay = self._retry.failed()
                log.warning("twitch: IRC connection lost (%s); again in %.1f s", why, delay)
                await asyncio.sleep(delay)

    async def _session(self, http: aiohttp.ClientSession) -> None:
        async with http.ws_connect(self._url, max_msg_size=MAX_FRAME) as ws:
            self._stats.connections += 1
            await ws.send_str(CAPABILITIES)
            await ws.send_str("PASS SCHMOOPIIE")  # any password: justinfan logins ignore it
            await ws.send_str(f"NICK justinfan{random.randint(10_000, 99_999)}")
            await ws.send_str("JOIN " + ",".join(f"#{c}" for c in self._channels))
            while True:
                async with asyncio.timeout(self._idle_s):
                    frame = await ws.receive()
                if frame.type == aiohttp.WSMsgType.TEXT:
                    text: str = frame.data
                elif frame.type == aiohttp.WSMsgType.BINARY:
                    try:
                        text = frame.data.decode("utf-8")
                    except UnicodeDecodeError:
                        self._stats.malformed += 1
                        continue
                else:  # CLOSE, CLOSING, CLOSED, ERROR
                    return
                for raw in text.split("\n"):
                    line = raw.removesuffix("\r")
                    if line:
                        await self._line(ws, line)

    async def _line(self, ws: aiohttp.ClientWebSocketResponse, raw: str) -> None:
        try:
            line = parse_line(raw)
        except MalformedLine:
            self._stats.malformed += 1
            return
        if line.command == "PING":
            await ws.send_str(f"PONG :{line.params[-1] if line.params else 'tmi.twitch.tv'}")
        elif line.command == "RECONNECT":
            raise _Moved
        elif line.command == "001":
            self._stats.state = "connected"
            self._stats.error = None
            self._retry.succeeded()
            log.info("twitch: reading #%s over IRC", ", #".join(self._channels))
        elif line.command == "PRIVMSG":
            await self._privmsg(line)

    async def _privmsg(self, line: IrcLine) -> None:
        try:
            message = chat_message(line)
        except MalformedLine:
            self._stats.malformed += 1
            return
        await self._handle(message)
