"""Local fakes of Twitch that speak its real protocols, on one loopback aiohttp server.

- ``GET /oauth2/validate`` (``Authorization: OAuth <token>``): the token's login, user id,
  client id and scopes, or 401.
- Helix: ``GET /helix/users?login=``, ``POST /helix/eventsub/subscriptions`` (a WebSocket
  session's subscription: 403 when the token lacks the type's scope, 400 for a session that
  is not connected), ``POST /helix/chat/messages`` (403 without ``user:write:chat``).
- The EventSub WebSocket ``/eventsub``: ``session_welcome`` (with the keepalive asked for, or
  :attr:`TwitchFake.keepalive_s`), ``session_keepalive`` at that interval unless
  :attr:`TwitchFake.silent`, notifications for the subscriptions of the session,
  ``session_reconnect`` to ``/eventsub/moved`` (the session and its subscriptions carry
  over), ``revocation``, and closing with Twitch's codes.
- IRC over WebSocket ``/irc``: :mod:`tests.kit.twitch_irc_fake`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from bridge.config import Secret, TwitchConfig
from bridge.control.queue import SpeechQueue
from bridge.control.twitch.service import TwitchService
from bridge.eventbus import EventBus
from tests.kit.eventually import eventually
from tests.kit.twitch_irc_fake import IrcSide

CHAT = "channel.chat.message"
REDEMPTION = "channel.channel_points_custom_reward_redemption.add"
SCOPE_OF = {CHAT: "user:read:chat", REDEMPTION: "channel:read:redemptions"}
EVERY_SCOPE = ("user:read:chat", "user:write:chat", "channel:read:redemptions")
CLIENT_ID = "fake-client-id"


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class FakeToken:
    login: str
    user_id: str
    scopes: tuple[str, ...] = EVERY_SCOPE
    client_id: str = CLIENT_ID


@dataclass
class EsConnection:
    """One EventSub WebSocket connection (a session may move from one to the next)."""

    ws: web.WebSocketResponse
    session_id: str
    path: str
    keepalive_s: int
    welcomed: asyncio.Event = field(default_factory=asyncio.Event)


class TwitchFake(IrcSide):
    def __init__(self) -> None:
        self.tokens: dict[str, FakeToken] = {}
        self.users: dict[str, str] = {}  # login -> id
        self.keepalive_s: int | None = None  # None: what the client asked for
        self.silent = False  # no keepalives
        self.subscriptions: list[dict[str, Any]] = []
        self.chat_sent: list[dict[str, Any]] = []
        self.es: list[EsConnection] = []  # open EventSub connections, oldest first
        self.es_opened = 0
        IrcSide.__init__(self)
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- set-up ---------------------------------------------------------------------------------

    def user(self, login: str) -> str:
        """``login``'s user id (made up on first use)."""
        return self.users.setdefault(login, str(1000 + len(self.users)))

    def token(self, value: str, login: str, scopes: tuple[str, ...] = EVERY_SCOPE) -> None:
        self.tokens[value] = FakeToken(login, self.user(login), scopes)

    def config(self, channels: list[str], **twitch: Any) -> dict[str, Any]:
        """A ``twitch:`` config section pointing at this fake."""
        ws = self.url.replace("http://", "ws://")
        return {
            "enabled": True,
            "channels": channels,
            "irc_url": f"{ws}/irc",
            "eventsub_url": f"{ws}/eventsub",
            "helix_url": f"{self.url}/helix",
            "validate_url": f"{self.url}/oauth2/validate",
            **twitch,
        }

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/oauth2/validate", self._validate)
        app.router.add_get("/helix/users", self._users)
        app.router.add_post("/helix/eventsub/subscriptions", self._subscribe)
        app.router.add_post("/helix/chat/messages", self._send_chat)
        app.router.add_get("/eventsub", self._eventsub)
        app.router.add_get("/eventsub/moved", self._eventsub)
        app.router.add_get("/irc", self._irc)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        sockets = [c.ws for c in self.es] + [c.ws for c in self.irc]
        for ws in sockets:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- OAuth and Helix ------------------------------------------------------------------------

    def _bearer(self, request: web.Request) -> FakeToken | None:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        token = self.tokens.get(value)
        if scheme != "Bearer" or token is None:
            return None
        if request.headers.get("Client-Id") != token.client_id:
            return None
        return token

    async def _validate(self, request: web.Request) -> web.Response:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        token = self.tokens.get(value)
        if scheme != "OAuth" or token is None:
            return _error(401, "invalid access token")
        return web.json_response(
            {
                "client_id": token.client_id,
                "login": token.login,
                "scopes": list(token.scopes),
                "user_id": token.user_id,
                "expires_in": 5_000_000,
            }
        )

    async def _users(self, request: web.Request) -> web.Response:
        if self._bearer(request) is None:
            return _error(401, "Invalid OAuth token")
        logins = request.query.getall("login", [])
        data = [
            {"id": self.users[login], "login": login, "display_name": login.title()}
            for login in logins
            if login in self.users
        ]
        return web.json_response({"data": data})

    async def _subscribe(self, request: web.Request) -> web.Response:
        token = self._bearer(request)
        if token is None:
            return _error(401, "Invalid OAuth token")
        body = await request.json()
        kind = body.get("type")
        session_id = (body.get("transport") or {}).get("session_id")
        if kind not in SCOPE_OF or body.get("version") != "1":
            return _error(400, "invalid subscription type and version")
        if not any(c.session_id == session_id for c in self.es):
            return _error(400, "websocket transport session does not exist or has disconnected")
        if SCOPE_OF[kind] not in token.scopes:
            return _error(403, "subscription missing proper authorization")
        broadcaster = (body.get("condition") or {}).get("broadcaster_user_id")
        if kind == REDEMPTION and broadcaster != token.user_id:  # the broadcaster's token only
            return _error(403, "subscription missing proper authorization")
        broadcaster = (body.get("condition") or {}).get("broadcaster_user_id")
        if kind == REDEMPTION and broadcaster != token.user_id:  # the broadcaster's token only
            return _error(403, "subscription missing proper authorization")
        subscription = {
            "id": str(uuid.uuid4()),
            "status": "enabled",
            "type": kind,
            "version": "1",
            "condition": body.get("condition") or {},
            "created_at": now(),
            "transport": {"method": "websocket", "session_id": session_id},
            "cost": 0,
        }
        self.subscriptions.append(subscription)
        return web.json_response(
            {"data": [subscription], "total": 1, "total_cost": 0, "max_total_cost": 10},
            status=202,
        )

    async def _send_chat(self, request: web.Request) -> web.Response:
        token = self._bearer(request)
        if token is None:
            return _error(401, "Invalid OAuth token")
        if "user:write:chat" not in token.scopes:
            return _error(403, "Missing scope: user:write:chat")
        body = await request.json()
        self.chat_sent.append(body)
        return web.json_response(
            {"data": [{"message_id": str(uuid.uuid4()), "is_sent": True, "drop_reason": None}]}
        )

    # --- the EventSub WebSocket -----------------------------------------------------------------

    async def _eventsub(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        moved = request.query.get("session")
        asked = request.query.get("keepalive_timeout_seconds", "10")
        keepalive = self.keepalive_s or (int(asked) if asked.isdigit() else 10)
        connection = EsConnection(ws, moved or str(uuid.uuid4()), request.path, keepalive)
        self.es.append(connection)
        self.es_opened += 1
        try:
            await self._frame(connection, "session_welcome", {"session": self._session(connection)})
            connection.welcomed.set()
            async with asyncio.TaskGroup() as group:
                beat = group.create_task(self._keepalives(connection))
                async for message in ws:
                    if message.type == WSMsgType.TEXT:  # clients must not send: Twitch closes
                        await ws.close(code=4001, message=b"client sent inbound traffic")
                beat.cancel()
        finally:
            self.es.remove(connection)
        return ws

    def _session(self, connection: EsConnection) -> dict[str, Any]:
        return {
            "id": connection.session_id,
            "status": "connected",
            "connected_at": now(),
            "keepalive_timeout_seconds": connection.keepalive_s,
            "reconnect_url": None,
            "recovery_url": None,
        }

    async def _keepalives(self, connection: EsConnection) -> None:
        while not connection.ws.closed:
            await asyncio.sleep(connection.keepalive_s)
            if not self.silent and not connection.ws.closed:
                with contextlib.suppress(ConnectionError):
                    await self._frame(connection, "session_keepalive", {})

    async def _frame(
        self,
        connection: EsConnection,
        kind: str,
        payload: dict[str, Any],
        subscription_type: str | None = None,
        message_id: str | None = None,
    ) -> str:
        message_id = message_id or str(uuid.uuid4())
        metadata = {"message_id": message_id, "message_type": kind, "message_timestamp": now()}
        if subscription_type is not None:
            metadata |= {"subscription_type": subscription_type, "subscription_version": "1"}
        await connection.ws.send_str(json.dumps({"metadata": metadata, "payload": payload}))
        return message_id

    def current(self) -> EsConnection:
        """The newest open EventSub connection."""
        assert self.es, "no EventSub connection"
        return self.es[-1]

    async def send_raw(self, text: str | bytes, via: EsConnection | None = None) -> None:
        ws = (via or self.current()).ws
        await (ws.send_bytes(text) if isinstance(text, bytes) else ws.send_str(text))

    async def notify(
        self,
        kind: str,
        broadcaster_id: str,
        event: dict[str, Any],
        via: EsConnection | None = None,
        message_id: str | None = None,
    ) -> str:
        """A notification for the subscription of ``kind`` on ``broadcaster_id``'s channel."""
        connection = via or self.current()
        subscription = next(
            s
            for s in self.subscriptions
            if s["type"] == kind
            and s["condition"].get("broadcaster_user_id") == broadcaster_id
            and s["transport"]["session_id"] == connection.session_id
        )
        payload = {"subscription": subscription, "event": event}
        return await self._frame(connection, "notification", payload, kind, message_id)

    async def chat(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        badges: tuple[str, ...] = (),
        bits: int = 0,
        fragments: list[dict[str, Any]] | None = None,
        message_type: str = "text",
        reward_id: str | None = None,
        via: EsConnection | None = None,
    ) -> str:
        """``user`` says ``text`` in ``channel``: a ``channel.chat.message`` notification."""
        event = {
            "broadcaster_user_id": self.user(channel),
            "broadcaster_user_login": channel,
            "broadcaster_user_name": channel.title(),
            "chatter_user_id": self.user(user),
            "chatter_user_login": user,
            "chatter_user_name": user.title(),
            "message_id": str(uuid.uuid4()),
            "message": {
                "text": text,
                "fragments": fragments
                or [
                    {
                        "type": "text",
                        "text": text,
                        "cheermote": None,
                        "emote": None,
                        "mention": None,
                    }
                ],
            },
            "message_type": message_type,
            "badges": [{"set_id": b, "id": "1", "info": ""} for b in badges],
            "cheer": {"bits": bits} if bits else None,
            "color": "#00FF00",
            "reply": None,
            "channel_points_custom_reward_id": reward_id,
        }
        return await self.notify(CHAT, self.user(channel), event, via)

    async def redeem(self, channel: str, user: str, reward_id: str, text: str) -> str:
        event = {
            "id": str(uuid.uuid4()),
            "broadcaster_user_id": self.user(channel),
            "broadcaster_user_login": channel,
            "broadcaster_user_name": channel.title(),
            "user_id": self.user(user),
            "user_login": user,
            "user_name": user.title(),
            "user_input": text,
            "status": "unfulfilled",
            "reward": {"id": reward_id, "title": "Make the avatar say…", "cost": 100, "prompt": ""},
            "redeemed_at": now(),
        }
        return await self.notify(REDEMPTION, self.user(channel), event)

    async def move(self) -> tuple[EsConnection, EsConnection]:
        """``session_reconnect`` on the current connection; (old, new) once the client has
        connected to the new URL and been welcomed there.  The old one stays open."""
        old = self.current()
        base = self.url.replace("http://", "ws://")
        url = f"{base}/eventsub/moved?session={old.session_id}"
        session = {**self._session(old), "status": "reconnecting", "reconnect_url": url}
        await self._frame(old, "session_reconnect", {"session": session})
        await eventually(
            lambda: self.current() is not old and self.current().welcomed.is_set(),
            within=10,
            what="the client on the new URL",
        )
        return old, self.current()

    async def revoke(self, kind: str) -> None:
        for subscription in [s for s in self.subscriptions if s["type"] == kind]:
            self.subscriptions.remove(subscription)
            revoked = {**subscription, "status": "authorization_revoked"}
            await self._frame(self.current(), "revocation", {"subscription": revoked})

    async def close(self, connection: EsConnection, code: int = 4004) -> None:
        await connection.ws.close(code=code, message=b"fake closed it")


def _error(status: int, message: str) -> web.Response:
    reason = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}.get(status, "Error")
    return web.json_response({"error": reason, "status": status, "message": message}, status=status)


@contextlib.asynccontextmanager
async def twitch_fake() -> AsyncIterator[TwitchFake]:
    fake = TwitchFake()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@contextlib.asynccontextmanager
async def chat_service(
    fake: TwitchFake, channels: list[str], *, token: str | None = None, **twitch: Any
) -> AsyncIterator[tuple[TwitchService, SpeechQueue]]:
    """The Twitch connector against ``fake`` (EventSub with ``token``, anonymous IRC
    without), feeding a real speech queue that is not running (so what chat queued stays
    there, in order).  No cooldowns or chat limits unless ``twitch`` sets them."""
    relaxed = {"user_cooldown_s": 0, "max_queued": 0, "user_queued": 0}
    cfg = TwitchConfig.model_validate(fake.config(channels, **(relaxed | twitch)))
    queue = SpeechQueue(bus=EventBus(), max_item=500, limit=10_000, rate=None)
    service = TwitchService(
        cfg,
        queue=queue,
        token=Secret(token) if token is not None else None,
        client_id=Secret(CLIENT_ID) if token is not None else None,
    )
    task = asyncio.create_task(service.run(), name="twitch")
    try:
        yield service, queue
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def said(queue: SpeechQueue) -> list[tuple[str, str]]:
    """(source, text) of every item queued, in order."""
    return [(item.source, item.text) for item in queue.items()]
