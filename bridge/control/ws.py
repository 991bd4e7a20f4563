"""The WebSocket ``/v1/ws``: commands in, the bridge's events out, one connection per client.

The messages are in bridge/control/ws_messages.py.  What a connection promises:

- **Token.**  The guard (bridge/control/guard.py) has already refused a wrong token, a
  foreign ``Host`` and a page of another origin at the handshake, and recorded
  ``request[AUTHORIZED]``.  A client it did not authorize (a token is configured and the
  handshake carried none) must send it in its first message (``{"type": "auth", "token":
  ...}``, or ``"token"`` in a message of any type) within :data:`AUTH_WITHIN_S`; otherwise,
  or with a wrong one, it is closed with :data:`UNAUTHORIZED` (4401).  Nothing reaches it
  before.
- **Answers in order.**  Every message gets one ack or error; an ack goes out before the
  events its own command caused (so a client learns an item's id before its first event).
- **One-shot clients** (open, send one speak, close: Stream Deck's WebSocket action): the
  message is acted on even if the client is gone before its ack.
- **Bounded buffer.**  Each client has an outbox of ``buffer`` messages (and at most
  :data:`SEND_BUFFER` bytes in the kernel and in aiohttp beyond it).  Events are fanned
  out inside :meth:`EventBus.emit <bridge.eventbus.EventBus.emit>` without waiting for any
  client: a client whose outbox is full is dropped (closed with :data:`TOO_SLOW`, counted in
  ``dropped_slow``), the others go on.  One that cannot even take its close frame is cut.
- **Shutdown.**  :meth:`EventHub.close` closes every client with 1001 GOING_AWAY.

A bug met while acting on one message is the documented boundary here: that message gets an
``internal_error`` answer and is counted in ``errors`` (logged with its traceback); the
connection and the daemon go on.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from bridge.config import Secret
from bridge.control import ws_messages as msgs
from bridge.control.guard import AUTHORIZED, token_ok
from bridge.control.problems import Conflict, describe, error_code
from bridge.control.queue import SpeechQueue
from bridge.errors import BadInput
from bridge.eventbus import Event, EventBus

log = logging.getLogger(__name__)

PATH = "/v1/ws"
MAX_MESSAGE = 64 * 1024  # bytes per client frame, as the HTTP API's body limit
AUTH_WITHIN_S = 10.0
HEARTBEAT_S = 30.0  # pings find clients that vanished without closing
CLOSE_WITHIN_S = 2.0  # for the closing handshake; then the connection is cut
# Bytes the kernel, and then aiohttp, may hold for one client beyond its outbox.  Left to
# itself the kernel grows the send buffer of a client that does not read to megabytes
# (tcp_wmem), per client; events are small, so this costs a fast client nothing.
SEND_BUFFER = 64 * 1024
UNAUTHORIZED = 4401  # the 4000s are the application's own; 4401 reads as HTTP 401
TOO_SLOW = WSCloseCode.POLICY_VIOLATION  # 1008: the outbox bound is the policy
GOING_AWAY = WSCloseCode.GOING_AWAY  # 1001
MAX_CLOSE_REASON = 123  # bytes: a close frame's payload is at most 125, 2 of them the code
HOW_TO_AUTH = 'send {"type": "auth", "token": "<token>"} first'


@dataclass
class HubStats:
    """Counters for status: connections so far, clients dropped and refused, and bugs."""

    connections: int = 0
    dropped_slow: int = 0
    unauthorized: int = 0
    messages: int = 0
    refused: int = 0  # messages answered with an error
    errors: int = 0  # bugs met while acting on a message (the documented boundary)


@dataclass(eq=False)
class _Client:
    """One connection.  Its outbox is filled synchronously (by emit and by the reader) and
    emptied by its writer task."""

    number: int
    ws: web.WebSocketResponse
    request: web.Request
    authorized: bool
    capacity: int
    outbox: deque[str] = field(default_factory=deque)
    taken: int = 0  # messages the writer has taken from the outbox so far
    topics: msgs.TopicFilter | None = None  # None: every topic
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)  # stop reading and writing
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # the connection is gone
    close_code: int = WSCloseCode.OK
    close_reason: str = ""

    @property
    def source(self) -> str:
        return f"ws:{self.number}"

    def position(self) -> int:
        """Where the next message will stand, counted from the first ever queued."""
        return self.taken + len(self.outbox)

    def put(self, message: str, at: int | None = None) -> bool:
        """Queue ``message`` (at the absolute ``position()`` ``at``, or last); False if full."""
        if len(self.outbox) >= self.capacity:
            return False
        if at is None:
            self.outbox.append(message)
        else:
            self.outbox.insert(max(0, at - self.taken), message)
        self.wakeup.set()
        return True

    def finish(self, code: int = WSCloseCode.OK, reason: str = "") -> None:
        """Stop serving this client; the first reason given is the one it is closed with."""
        if not self.done.is_set():
            self.close_code, self.close_reason = code, reason
            self.done.set()


class EventHub:
    """Serves ``/v1/ws`` (:meth:`routes`) over the speech ``queue`` and the ``bus``'s events.

    ``token`` is the configured control token (None: none), checked when a client sends it
    in a message; ``buffer`` is each client's outbox bound, in messages.
    """

    def __init__(
        self,
        *,
        bus: EventBus,
        queue: SpeechQueue,
        token: Secret | None,
        buffer: int = 256,
        listen: Callable[[bool], Awaitable[dict[str, Any]]] | None = None,
    ) -> None:
        """``listen``: listen mode's start/stop (bridge/control/listen.py), for ``listen``
        messages; None: they are refused (409)."""
        if buffer < 1:
            raise ValueError(f"buffer must be at least 1, not {buffer}")
        self._queue = queue
        self._listen = listen
        self._token = token
        self._buffer = buffer
        self._clients: set[_Client] = set()
        self._listeners: set[_Client] = set()  # authorized: they get events
        self._numbers = itertools.count(1)
        self._closing = False
        self._unsubscribe = bus.subscribe(self._on_event)
        self.stats = HubStats()

    def routes(self) -> list[web.RouteDef]:
        return [web.get(PATH, self._serve)]

    def snapshot(self) -> dict[str, Any]:
        """For status: clients now, messages waiting in their outboxes, and the counters."""
        waiting = sum(len(client.outbox) for client in self._clients)
        return {"clients": len(self._clients), "waiting": waiting, **self.stats.__dict__}

    async def close(self) -> None:
        """Close every client with 1001 GOING_AWAY (and any that connects from now on) and
        wait, a bounded time, until they are gone."""
        if not self._closing:
            self._closing = True
            self._unsubscribe()
        clients = list(self._clients)
        for client in clients:
            client.finish(GOING_AWAY, "the bridge is shutting down")
        try:
            async with asyncio.timeout(CLOSE_WITHIN_S * 2):
                for client in clients:
                    await client.ended.wait()
        except TimeoutError:
            log.warning("WebSocket: %d clients still open at shutdown", len(self._clients))

    # --- events out --------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        """Inside ``bus.emit``: queue the event for every client that wants it, never wait."""
        message: str | None = None
        slow: list[_Client] = []
        for client in self._listeners:
            if client.topics is not None and not client.topics(event.topic):
                continue
            if message is None:  # encoded once, and only when someone listens
                message = msgs.event_message(event)
            if not client.put(message):
                slow.append(client)
        for client in slow:
            self._drop_slow(client)

    def _drop_slow(self, client: _Client) -> None:
        if client.done.is_set():  # already on its way out
            return
        self._listeners.discard(client)
        client.outbox.clear()
        self.stats.dropped_slow += 1
        log.warning(
            "WebSocket client %d: %d messages waiting unread; dropping it",
            client.number,
            client.capacity,
        )
        client.finish(TOO_SLOW, f"too slow: {client.capacity} messages waiting unread")

    # --- one connection ----------------------------------------------------------------------

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(
            heartbeat=HEARTBEAT_S,
            max_msg_size=MAX_MESSAGE,
            timeout=CLOSE_WITHIN_S,
            # Deflate would cost CPU per client per event; the messages are small JSON.
            compress=False,
            writer_limit=SEND_BUFFER,
        )
        await ws.prepare(request)
        connection = request.transport.get_extra_info("socket") if request.transport else None
        if connection is not None:
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        authorized = request.get(AUTHORIZED)
        client = _Client(
            number=next(self._numbers),
            ws=ws,
            request=request,
            # Without the guard's word (an app without it), only an open API lets it in.
            authorized=authorized if isinstance(authorized, bool) else self._token is None,
            capacity=self._buffer,
        )
        self.stats.connections += 1
        self._clients.add(client)
        if client.authorized:
            self._listeners.add(client)
        if self._closing:
            client.finish(GOING_AWAY, "the bridge is shutting down")
        log.debug("WebSocket client %d connected from %s", client.number, request.remote)
        try:
            async with asyncio.TaskGroup() as tasks:
                reader = tasks.create_task(self._read(client), name=f"ws{client.number}-read")
                writer = tasks.create_task(self._write(client), name=f"ws{client.number}-write")
                await client.done.wait()
                reader.cancel()
                writer.cancel()
            await self._close(client)
        finally:
            self._clients.discard(client)
            self._listeners.discard(client)
            client.ended.set()
        log.debug("WebSocket client %d closed (%d)", client.number, client.close_code)
        return ws

    async def _close(self, client: _Client) -> None:
        """The closing handshake, bounded.  A client that does not read cannot take the close
        frame, and what is still unsent would hold its connection open for ever: it is cut."""
        try:
            if not client.ws.closed:
                async with asyncio.timeout(CLOSE_WITHIN_S):
                    reason = client.close_reason.encode()[:MAX_CLOSE_REASON]
                    await client.ws.close(code=client.close_code, message=reason)
        except TimeoutError:
            pass  # the handshake did not finish: cut below
        finally:
            transport = client.request.transport
            if transport is not None and transport.get_write_buffer_size():
                transport.abort()

    async def _write(self, client: _Client) -> None:
        while True:
            if not client.outbox:
                client.wakeup.clear()
                await client.wakeup.wait()
                continue
            message = client.outbox.popleft()
            client.taken += 1
            try:
                await client.ws.send_str(message)
            except ConnectionError:  # the client went away mid-write (reset, or lost in drain)
                client.finish()
                return

    async def _read(self, client: _Client) -> None:
        """Act on each message until the client closes (or is refused)."""
        try:
            if not client.authorized and not await self._authenticate(client):
                return
            async for frame in client.ws:
                if frame.type is WSMsgType.TEXT:
                    await self._on_text(client, frame.data)
                elif frame.type is WSMsgType.BINARY:
                    self.stats.messages += 1
                    self.stats.refused += 1
                    error = msgs.error(None, "bad_request", "message: must be JSON text")
                    self._reply(client, error)
                # aiohttp answers pings and closes on protocol errors (ERROR) by itself.
                await asyncio.sleep(0)  # a client sending fast leaves the loop to the others
        finally:
            client.finish()  # the client is gone (a refusal has already said why)

    async def _authenticate(self, client: _Client) -> bool:
        """Read the first message, which must carry the right token, and act on it."""
        try:
            frame = await client.ws.receive(timeout=AUTH_WITHIN_S)
        except TimeoutError:
            self._refuse(client, f"token: not sent within {AUTH_WITHIN_S:g} s; {HOW_TO_AUTH}")
            return False
        if frame.type is WSMsgType.TEXT:
            await self._on_text(client, frame.data)
        elif frame.type is WSMsgType.BINARY:
            self._refuse(client, f"token: missing; {HOW_TO_AUTH}")
        return client.authorized and not client.done.is_set()

    def _refuse(self, client: _Client, reason: str) -> None:
        self.stats.unauthorized += 1
        log.info("WebSocket client %d refused: %s", client.number, reason)
        client.finish(UNAUTHORIZED, reason)

    # --- messages in -------------------------------------------------------------------------

    async def _on_text(self, client: _Client, text: str) -> None:
        self.stats.messages += 1
        try:
            obj = msgs.decode(text)
        except BadInput as exc:
            if not client.authorized:
                self._refuse(client, f"token: missing; {HOW_TO_AUTH}")
            else:
                self._refused(client, None, exc)
            return
        if "token" in obj or not client.authorized:
            given = obj.get("token")
            if not token_ok(self._token, given if isinstance(given, str) else None):
                self._refuse(client, f"token: {'wrong' if given else 'missing'}; {HOW_TO_AUTH}")
                return
            if not client.authorized:
                client.authorized = True
                self._listeners.add(client)
        ref = obj.get("ref")
        at = client.position()  # the answer goes before the events the command causes
        try:
            answer = await self._act(client, msgs.read(obj))
        except Exception as exc:
            self._refused(client, ref, exc)
            return
        self._reply(client, answer, at)

    async def _act(self, client: _Client, message: msgs.Message) -> str:
        """Do what the message asks; its ack.  Refusals raise (BadInput, Busy, NotLive...)."""
        body = message.body
        if message.type == "speak":
            items = self._queue.submit(
                body.get("text"),
                body.get("mode", "repeat"),
                body.get("priority", "normal"),
                source=client.source,
            )
            return msgs.ack(message.ref, [item.as_json() for item in items])
        if message.type == "interrupt":
            item = await self._queue.interrupt()
            return msgs.ack(message.ref, [item.as_json()] if item is not None else [])
        if message.type == "clear":
            dropped = self._queue.clear()
            return msgs.ack(message.ref, [item.as_json() for item in dropped])
        if message.type == "subscribe":
            client.topics = msgs.topic_filter(body.get("topics"))
            shown = ["*"] if client.topics is None else list(client.topics.patterns)
            return msgs.ack(message.ref, topics=shown)
        if message.type == "listen":
            action = body.get("action")
            if action not in ("start", "stop"):
                raise BadInput("action", f"{repr(action)[:40]} is not one of start, stop")
            if self._listen is None:
                raise Conflict("listen: is not available here")
            return msgs.ack(message.ref, listen=await self._listen(action == "start"))
        return msgs.ack(message.ref)  # auth: the token was checked before

    def _refused(self, client: _Client, ref: Any, exc: Exception) -> None:
        """Answer a refused message with the HTTP API's code for the same refusal."""
        known = describe(exc)
        if known is None:
            self.stats.errors += 1
            log.error(
                "WebSocket client %d: %s while acting on a message",
                client.number,
                type(exc).__name__,
                exc_info=exc,
            )
            status, detail = 500, f"{type(exc).__name__}: a bug in the bridge (logged)"
            retry_after = None
        else:
            status, detail, headers = known
            retry = headers.get("Retry-After")
            retry_after = int(retry) if retry is not None else None
        self.stats.refused += 1
        self._reply(client, msgs.error(ref, error_code(status), detail, retry_after=retry_after))

    def _reply(self, client: _Client, message: str, at: int | None = None) -> None:
        if not client.put(message, at):
            self._drop_slow(client)
