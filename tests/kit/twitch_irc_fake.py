"""The IRC-over-WebSocket side of the Twitch fake (:mod:`tests.kit.twitch_fakes`): ``CAP REQ``
(ACK), ``PASS``/``NICK`` (the ``001`` welcome), ``JOIN`` (several channels), ``PRIVMSG``
with IRCv3 tags to the clients that joined (tags only to those that asked for them), ``PING``
(the client's ``PONG`` is counted), ``RECONNECT`` and dropped connections."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

__all__ = ["IrcConnection", "IrcSide", "escape"]


@dataclass
class IrcConnection:
    ws: web.WebSocketResponse
    nick: str | None = None
    caps: set[str] = field(default_factory=set)
    channels: set[str] = field(default_factory=set)


class IrcSide:
    """Serves ``/irc`` (route :meth:`_irc`); mixed into the fake's one server."""

    def __init__(self) -> None:
        self.irc: list[IrcConnection] = []  # open IRC connections
        self.irc_opened = 0
        self.irc_received: list[str] = []  # every line IRC clients sent
        self.pongs = 0

    async def _irc(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        connection = IrcConnection(ws)
        self.irc.append(connection)
        self.irc_opened += 1
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                for line in message.data.split("\r\n"):
                    if line:
                        self.irc_received.append(line)
                        await self._irc_line(connection, line)
        finally:
            self.irc.remove(connection)
        return ws

    async def _irc_line(self, connection: IrcConnection, line: str) -> None:
        command, _, rest = line.partition(" ")
        send = connection.ws.send_str
        if command == "CAP" and rest.startswith("REQ :"):
            caps = rest.removeprefix("REQ :").split()
            connection.caps |= set(caps)
            await send(f":tmi.twitch.tv CAP * ACK :{' '.join(caps)}\r\n")
        elif command == "NICK":
            nick = connection.nick = rest.strip()
            await send(
                f":tmi.twitch.tv 001 {nick} :Welcome, GLHF!\r\n"
                f":tmi.twitch.tv 002 {nick} :Your host is tmi.twitch.tv\r\n"
                f":tmi.twitch.tv 376 {nick} :>\r\n"
            )
        elif command == "JOIN":
            nick = connection.nick or "anonymous"
            for channel in rest.split(","):
                connection.channels.add(channel.strip().removeprefix("#"))
                await send(f":{nick}!{nick}@{nick}.tmi.twitch.tv JOIN {channel.strip()}\r\n")
        elif command == "PONG":
            self.pongs += 1

    def joined(self, channel: str) -> list[IrcConnection]:
        return [c for c in self.irc if channel in c.channels]

    async def privmsg(self, channel: str, user: str, text: str, **tags: str) -> None:
        """``user`` says ``text`` in ``channel``; ``tags`` as IRCv3 tags (``first_msg`` for
        ``first-msg``: underscores become dashes)."""
        every = {
            "display-name": user.title(),
            "id": str(uuid.uuid4()),
            **{k.replace("_", "-"): v for k, v in tags.items()},
        }
        tag_text = ";".join(f"{k}={escape(v)}" for k, v in every.items())
        line = f":{user}!{user}@{user}.tmi.twitch.tv PRIVMSG #{channel} :{text}\r\n"
        for connection in self.joined(channel):
            prefix = f"@{tag_text} " if "twitch.tv/tags" in connection.caps else ""
            await connection.ws.send_str(prefix + line)

    async def irc_raw(self, data: str | bytes) -> None:
        for connection in list(self.irc):
            if isinstance(data, bytes):
                await connection.ws.send_bytes(data)
            else:
                await connection.ws.send_str(data)

    async def irc_ping(self) -> None:
        await self.irc_raw("PING :tmi.twitch.tv\r\n")

    async def irc_reconnect(self) -> None:
        """Twitch's RECONNECT, then the connection is closed (as Twitch does)."""
        for connection in list(self.irc):
            await connection.ws.send_str(":tmi.twitch.tv RECONNECT\r\n")
            await connection.ws.close()

    async def irc_drop(self) -> None:
        for connection in list(self.irc):
            await connection.ws.close(code=1006)


def escape(value: str) -> str:
    """An IRCv3 tag value, escaped."""
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\:")
        .replace(" ", "\\s")
        .replace("\r", "\\r")
        .replace("\n", "\\n")
    )
