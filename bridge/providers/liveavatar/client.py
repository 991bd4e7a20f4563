"""Async client for LiveAvatar's session and avatar endpoints (reference/liveavatar-api.md §1).

Two credentials: the account API key (``X-API-KEY``) and a per-session JWT from
:meth:`LiveAvatarClient.create_session_token` (``Authorization: Bearer``).  Which endpoint takes
which follows the OpenAPI: minting a token needs the key; starting needs the session token;
stop and keep-alive take either; listings need the key; public avatars need nothing.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from bridge import log
from bridge.config import Secret
from bridge.errors import Unauthorized
from bridge.providers.liveavatar.errors import (
    AVATARS,
    ERRORS,
    KEEP_ALIVE,
    PUBLIC_AVATARS,
    SESSION,
    SESSIONS,
    START,
    STOP,
    TOKEN,
    token_refused,
)
from bridge.providers.liveavatar.models import (
    AvatarPage,
    FullTokenRequest,
    SessionEndReason,
    SessionEntry,
    SessionKind,
    SessionPage,
    SessionToken,
    SessionTokenData,
    StartSession,
)
from bridge.providers.rest.api_client import ApiClient
from bridge.providers.rest.client import HttpMethod


class LiveAvatarClient(ApiClient):
    """LiveAvatar's API, with the account's key, or per call the session token it minted."""

    errors = ERRORS
    key_header = "X-API-KEY"

    async def _call(
        self,
        method: HttpMethod,
        path: str,
        endpoint: str,
        *,
        token: Secret | None = None,
        anonymous: bool = False,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        idempotent: bool,
    ) -> Any:
        """One call with the session token (Bearer) when given, else the API key."""
        headers = {} if anonymous else self._headers(token)
        try:
            return await self._rest.call(
                method,
                path,
                endpoint=endpoint,
                headers=headers,
                json_body=body,
                params=params,
                idempotent=idempotent,
            )
        except Unauthorized as exc:
            if token is None:
                raise
            raise token_refused(exc) from exc

    # --- session lifecycle -------------------------------------------------------------

    async def create_session_token(self, request: FullTokenRequest) -> SessionToken:
        """A session (``session_id``) and the JWT that starts and controls it."""
        data = await self._call(
            "POST",
            "/v1/sessions/token",
            TOKEN,
            body=request.model_dump(exclude_none=True),
            idempotent=False,  # a lost answer may still have created a session
        )
        parsed = self._parse(SessionTokenData, data, TOKEN)
        if not parsed.session_token:
            raise self._unexpected(TOKEN, "empty session_token")
        log.register_secret(parsed.session_token)
        return SessionToken(
            session_id=parsed.session_id, session_token=Secret(parsed.session_token)
        )

    async def start_session(self, token: Secret) -> StartSession:
        """Start the session the token was minted for; answered 201 with the LiveKit room."""
        data = await self._call("POST", "/v1/sessions/start", START, token=token, idempotent=False)
        return self._parse(StartSession, data, START)

    async def keep_alive(self, session_id: str, token: Secret | None = None) -> None:
        """Reset the 5-minute idle timer."""
        await self._call(
            "POST",
            "/v1/sessions/keep-alive",
            KEEP_ALIVE,
            token=token,
            body={"session_id": session_id},
            idempotent=True,
        )

    async def stop(
        self,
        session_id: str,
        reason: SessionEndReason = "USER_CLOSED",
        token: Secret | None = None,
    ) -> None:
        await self._call(
            "POST",
            "/v1/sessions/stop",
            STOP,
            token=token,
            body={"session_id": session_id, "reason": reason},
            idempotent=True,
        )

    # --- listings ----------------------------------------------------------------------

    async def list_sessions(
        self, kind: SessionKind, page: int = 1, page_size: int = 20
    ) -> SessionPage:
        """One page of this account's active or ended sessions (``GET /v1/sessions``)."""
        params = {"type": kind, "page": str(page), "page_size": str(page_size)}
        data = await self._call("GET", "/v1/sessions", SESSIONS, params=params, idempotent=True)
        return self._parse(SessionPage, data, SESSIONS)

    async def get_session(self, session_id: str) -> SessionEntry:
        data = await self._call(
            "GET",
            f"/v1/sessions/{quote(session_id, safe='')}",
            SESSION,
            idempotent=True,
        )
        return self._parse(SessionEntry, data, SESSION)

    async def list_avatars(self, page: int = 1, page_size: int = 20) -> AvatarPage:
        """One page of the account's own avatars."""
        params = {"page": str(page), "page_size": str(page_size)}
        data = await self._call("GET", "/v1/avatars", AVATARS, params=params, idempotent=True)
        return self._parse(AvatarPage, data, AVATARS)

    async def list_public_avatars(self, page: int = 1, page_size: int = 20) -> AvatarPage:
        """One page of LiveAvatar's public avatars (no credential needed)."""
        params = {"page": str(page), "page_size": str(page_size)}
        data = await self._call(
            "GET",
            "/v1/avatars/public",
            PUBLIC_AVATARS,
            anonymous=True,
            params=params,
            idempotent=True,
        )
        return self._parse(AvatarPage, data, PUBLIC_AVATARS)
