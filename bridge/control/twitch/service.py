"""The Twitch connector the daemon runs: EventSub (with replies) when ``TWITCH_TOKEN`` is set,
anonymous read-only IRC when it is not; either way every message goes through one
:class:`~bridge.control.twitch.gate.ChatGate` into the speech queue."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from bridge.config import Secret, TwitchConfig
from bridge.control.queue import SpeechQueue
from bridge.control.twitch.chat import ChatMessage
from bridge.control.twitch.eventsub import CHAT, REDEMPTION
from bridge.control.twitch.eventsub_client import EventSubConnector, Subscription
from bridge.control.twitch.gate import ChatGate
from bridge.control.twitch.helix import Helix, TokenInfo, TwitchError, missing_scopes, scope_error
from bridge.control.twitch.irc_client import IrcConnector
from bridge.control.twitch.replies import Replier
from bridge.control.twitch.rules import Rules
from bridge.control.twitch.stats import TwitchStats

__all__ = ["TwitchService", "needed_scopes"]

log = logging.getLogger(__name__)


def needed_scopes(cfg: TwitchConfig) -> list[str]:
    """The token scopes this config uses."""
    scopes = ["user:read:chat"]
    if cfg.replies:
        scopes.append("user:write:chat")
    if cfg.rewards or cfg.chat_rewards:
        scopes.append("channel:read:redemptions")
    return scopes


def channel_logins(cfg: TwitchConfig) -> list[str]:
    return list(dict.fromkeys(c.removeprefix("#").lower() for c in cfg.channels))


class TwitchService:
    def __init__(
        self,
        cfg: TwitchConfig,
        *,
        queue: SpeechQueue,
        token: Secret | None,
        client_id: Secret | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self._token = token
        self._client_id = client_id
        self.channels = channel_logins(cfg)
        self.stats = TwitchStats(
            transport="eventsub" if token is not None else "irc", channels=self.channels
        )
        self.gate = ChatGate(rules=Rules(cfg, clock=clock), queue=queue, stats=self.stats)
        self._replier: Replier | None = None
        self._channel_ids: dict[str, str] = {}

    def snapshot(self) -> dict[str, Any]:
        return self.stats.snapshot()

    async def run(self) -> None:
        """Until cancelled (or, with a token, until Twitch refuses it: see status)."""
        try:
            if self._token is None:
                await IrcConnector(
                    url=self.cfg.irc_url,
                    channels=self.channels,
                    handle=self._handle,
                    stats=self.stats,
                ).run()
            else:
                await self._eventsub(self._token)
        finally:
            if self.stats.state != "failed":
                self.stats.state = "stopped"

    async def _handle(self, message: ChatMessage) -> None:
        outcome = await self.gate.handle(message)
        replier = self._replier
        if outcome.reply is None or replier is None:
            return
        broadcaster = self._channel_ids.get(message.channel)
        if broadcaster is not None:
            replier.offer(broadcaster, outcome.reply, message.message_id)

    async def _eventsub(self, token: Secret) -> None:
        async with aiohttp.ClientSession() as http:
            helix = Helix(
                http,
                helix_url=self.cfg.helix_url,
                validate_url=self.cfg.validate_url,
                token=token,
                client_id=self._client_id.reveal() if self._client_id is not None else None,
            )
            try:
                info = await self._start(helix)
            except TwitchError as exc:
                self.stats.state = "failed"
                self.stats.error = str(exc)
                log.error("twitch: %s", exc)
                return
            connector = EventSubConnector(
                http=http,
                url=self.cfg.eventsub_url,
                keepalive_s=self.cfg.keepalive_s,
                helix=helix,
                subscriptions=self._subscriptions(info),
                handle=self._handle,
                stats=self.stats,
            )
            async with asyncio.TaskGroup() as group:
                replies = None
                if self.cfg.replies:
                    self._replier = Replier(helix, sender_id=info.user_id, stats=self.stats)
                    replies = group.create_task(self._replier.run(), name="twitch-replies")
                await connector.run()
                if replies is not None:  # the connector gave up: no more replies either
                    replies.cancel()

    async def _start(self, helix: Helix) -> TokenInfo:
        """The token checked (with every scope this config needs) and the channels' ids."""
        info = await helix.validate()
        missing = missing_scopes(info, needed_scopes(self.cfg))
        if missing:
            raise TwitchError(scope_error(missing), fatal=True)
        self._channel_ids = await helix.user_ids(self.channels)
        log.info(
            "twitch: token of %s accepted; channels #%s", info.login, ", #".join(self.channels)
        )
        return info

    def _subscriptions(self, info: TokenInfo) -> list[Subscription]:
        subs = []
        for channel in self.channels:
            broadcaster = self._channel_ids[channel]
            subs.append(
                Subscription(
                    CHAT,
                    {"broadcaster_user_id": broadcaster, "user_id": info.user_id},
                    "user:read:chat",
                )
            )
            if self.cfg.rewards or self.cfg.chat_rewards:
                subs.append(
                    Subscription(
                        REDEMPTION, {"broadcaster_user_id": broadcaster}, "channel:read:redemptions"
                    )
                )
        return subs
