"""The bits of Twitch's REST side the bridge uses: token validation (``/oauth2/validate``),
user ids (``GET /users``), EventSub subscriptions (``POST /eventsub/subscriptions``) and chat
replies (``POST /chat/messages``).  Errors become :class:`TwitchError`: ``fatal`` when trying
again cannot help (a bad token, a missing scope, an unknown channel).  The token never enters
an error or a log line."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

from bridge.config import Secret
from bridge.errors import TwitchError

__all__ = ["SCOPES", "Helix", "TokenInfo", "TwitchError", "missing_scopes"]

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0
# What each use of the token needs, and why (said in errors and by doctor).
SCOPES: dict[str, str] = {
    "user:read:chat": "to read chat (EventSub channel.chat.message)",
    "user:write:chat": "to reply in chat (twitch.replies: true)",
    "channel:read:redemptions": "to read channel-point redemptions (twitch.rewards)",
}
HOW_TO = (
    "make a user token with the scopes the config needs (README, section Twitch: the Twitch "
    "CLI's `twitch token -u -s 'SCOPES'`) and put it in TWITCH_TOKEN"
)


@dataclass(frozen=True, slots=True)
class TokenInfo:
    login: str
    user_id: str
    client_id: str
    scopes: frozenset[str]
    expires_in: int | None


def missing_scopes(info: TokenInfo, needed: list[str]) -> list[str]:
    return [scope for scope in needed if scope not in info.scopes]


def scope_error(missing: list[str]) -> str:
    reasons = "; ".join(f"{scope} ({SCOPES.get(scope, 'needed')})" for scope in missing)
    return f"the Twitch token lacks the scope {reasons}: {HOW_TO}"


class Helix:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        helix_url: str,
        validate_url: str,
        token: Secret,
        client_id: str | None,
    ) -> None:
        self._http = http
        self._base = helix_url.rstrip("/")
        self._validate_url = validate_url
        self._token = token.reveal().removeprefix("oauth:")
        self.client_id = client_id

    async def validate(self) -> TokenInfo:
        status, body = await self._call(
            "GET", self._validate_url, headers={"Authorization": f"OAuth {self._token}"}
        )
        if status == 401:
            raise TwitchError(
                "Twitch refused TWITCH_TOKEN (invalid or expired): make a new one", fatal=True
            )
        self._check(status, body, "validating the token")
        try:
            scopes = body.get("scopes") or []
            info = TokenInfo(
                login=str(body["login"]),
                user_id=str(body["user_id"]),
                client_id=str(body["client_id"]),
                scopes=frozenset(s for s in scopes if isinstance(s, str)),
                expires_in=body.get("expires_in")
                if isinstance(body.get("expires_in"), int)
                else None,
            )
        except (KeyError, TypeError, AttributeError):
            raise TwitchError(
                "Twitch's token validation answer is unreadable", fatal=False
            ) from None
        if self.client_id is None:
            self.client_id = info.client_id
        elif self.client_id != info.client_id:
            raise TwitchError(
                "TWITCH_CLIENT_ID is not the client id the token was made for", fatal=True
            )
        return info

    async def user_ids(self, logins: list[str]) -> dict[str, str]:
        """login → user id; :class:`TwitchError` (fatal) naming a login Twitch does not know."""
        query = [("login", login) for login in logins]
        status, body = await self._call("GET", f"{self._base}/users", params=query)
        self._check(status, body, "looking up the channels")
        found = {
            str(user.get("login")): str(user.get("id"))
            for user in body.get("data") or []
            if isinstance(user, dict)
        }
        unknown = [login for login in logins if login not in found]
        if unknown:
            raise TwitchError(f"Twitch has no channel {', '.join(unknown)}", fatal=True)
        return found

    async def subscribe(
        self, kind: str, condition: dict[str, str], session_id: str, *, scope: str
    ) -> None:
        payload = {
            "type": kind,
            "version": "1",
            "condition": condition,
            "transport": {"method": "websocket", "session_id": session_id},
        }
        status, body = await self._call(
            "POST", f"{self._base}/eventsub/subscriptions", json=payload
        )
        if status == 409:  # already there (a session that carried over)
            return
        if status == 403:
            raise TwitchError(
                f"Twitch refused the {kind} subscription ({_message(body)}); "
                + scope_error([scope]),
                fatal=True,
                status=status,
            )
        self._check(status, body, f"subscribing to {kind}")

    async def send_chat(
        self, *, broadcaster_id: str, sender_id: str, text: str, reply_to: str | None
    ) -> None:
        payload: dict[str, Any] = {
            "broadcaster_id": broadcaster_id,
            "sender_id": sender_id,
            "message": text[:500],
        }
        if reply_to is not None:
            payload["reply_parent_message_id"] = reply_to
        status, body = await self._call("POST", f"{self._base}/chat/messages", json=payload)
        self._check(status, body, "replying in chat")

    def _check(self, status: int, body: dict[str, Any], doing: str) -> None:
        if 200 <= status < 300:
            return
        fatal = status in (400, 401, 403, 404)
        raise TwitchError(
            f"Twitch answered {status} {doing}: {_message(body)}", fatal=fatal, status=status
        )

    async def _call(self, method: str, url: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        headers = kwargs.pop("headers", None) or {
            "Authorization": f"Bearer {self._token}",
            "Client-Id": self.client_id or "",
        }
        try:
            async with self._http.request(
                method,
                url,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
                **kwargs,
            ) as response:
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = {}
                return response.status, body if isinstance(body, dict) else {}
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TwitchError(
                f"Twitch could not be reached ({type(exc).__name__})", fatal=False
            ) from None


def _message(body: dict[str, Any]) -> str:
    message = body.get("message") or body.get("error") or "no message"
    return str(message)[:200]
