"""Async client for LiveAvatar's session and avatar endpoints (reference/liveavatar-api.md §1).

Two credentials: the account API key (``X-API-KEY``) and a per-session JWT from
:meth:`LiveAvatarClient.create_session_token` (``Authorization: Bearer``).  Which endpoint takes
which follows the OpenAPI: minting a token needs the key; starting needs the session token;
stop and keep-alive take either; listings need the key; public avatars need nothing.
"""

from __future__ import annotations

from typing import Any, Literal, Self, TypeVar
from urllib.parse import quote

from bridge import log
from bridge.config import ApiConfig, Secret
from bridge.errors import Unauthorized, UnexpectedResponse
from bridge.providers.liveavatar import errors as faults
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
from bridge.providers.rest import envelope
from bridge.providers.rest.client import RestClient

T = TypeVar("T")
Method = Literal["GET", "POST"]


class LiveAvatarClient:
    """One owned HTTP session; close it with ``aclose()`` or ``async with``."""

    def __init__(
        self,
        *,
        base_url: str,
        credential: Secret,
        timeout: float = 15.0,
        retry_deadline: float = 20.0,
    ) -> None:
        self._api_key = credential
        self._rest = RestClient(
            provider=faults.PROVIDER,
            base_url=base_url,
            timeout=timeout,
            retry_deadline=retry_deadline,
            interpret=faults.interpret,
        )

    @property
    def base_url(self) -> str:
        return self._rest.base_url

    @classmethod
    def from_config(cls, api: ApiConfig, api_key: Secret) -> LiveAvatarClient:
        return cls(
            base_url=api.base_url,
            credential=api_key,
            timeout=api.timeout,
            retry_deadline=api.retry_deadline,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._rest.aclose()

    # --- plumbing ----------------------------------------------------------------------

    def _key_headers(self) -> dict[str, str]:
        return {"X-API-KEY": self._api_key.reveal()}

    async def _call(
        self,
        method: Method,
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
        headers: dict[str, str] = {}
        if token is not None:
            headers = {"Authorization": f"Bearer {token.reveal()}"}
        elif not anonymous:
            headers = self._key_headers()
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
            raise faults.token_refused(exc) from exc

    # --- session lifecycle -------------------------------------------------------------

    async def create_session_token(self, request: FullTokenRequest) -> SessionToken:
        """A session (``session_id``) and the JWT that starts and controls it."""
        data = await self._call(
            "POST",
            "/v1/sessions/token",
            faults.TOKEN,
            body=request.model_dump(exclude_none=True),
            idempotent=False,  # a lost answer may still have created a session
        )
        parsed = _parse(SessionTokenData, data, faults.TOKEN)
        if not parsed.session_token:
            raise _unexpected(faults.TOKEN, "empty session_token")
        log.register_secret(parsed.session_token)
        return SessionToken(
            session_id=parsed.session_id, session_token=Secret(parsed.session_token)
        )

    async def start_session(self, token: Secret) -> StartSession:
        """Start the session the token was minted for; answered 201 with the LiveKit room."""
        data = await self._call(
            "POST", "/v1/sessions/start", faults.START, token=token, idempotent=False
        )
        return _parse(StartSession, data, faults.START)

    async def keep_alive(self, session_id: str, token: Secret | None = None) -> None:
        """Reset the 5-minute idle timer."""
        await self._call(
            "POST",
            "/v1/sessions/keep-alive",
            faults.KEEP_ALIVE,
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
            faults.STOP,
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
        data = await self._call(
            "GET", "/v1/sessions", faults.SESSIONS, params=params, idempotent=True
        )
        return _parse(SessionPage, data, faults.SESSIONS)

    async def get_session(self, session_id: str) -> SessionEntry:
        data = await self._call(
            "GET",
            f"/v1/sessions/{quote(session_id, safe='')}",
            faults.SESSION,
            idempotent=True,
        )
        return _parse(SessionEntry, data, faults.SESSION)

    async def list_avatars(self, page: int = 1, page_size: int = 20) -> AvatarPage:
        """One page of the account's own avatars."""
        params = {"page": str(page), "page_size": str(page_size)}
        data = await self._call(
            "GET", "/v1/avatars", faults.AVATARS, params=params, idempotent=True
        )
        return _parse(AvatarPage, data, faults.AVATARS)

    async def list_public_avatars(self, page: int = 1, page_size: int = 20) -> AvatarPage:
        """One page of LiveAvatar's public avatars (no credential needed)."""
        params = {"page": str(page), "page_size": str(page_size)}
        data = await self._call(
            "GET",
            "/v1/avatars/public",
            faults.PUBLIC_AVATARS,
            anonymous=True,
            params=params,
            idempotent=True,
        )
        return _parse(AvatarPage, data, faults.PUBLIC_AVATARS)


def _parse(kind: type[T], data: Any, endpoint: str) -> T:
    return envelope.parse(kind, data, provider=faults.PROVIDER, endpoint=endpoint)


def _unexpected(endpoint: str, what: str) -> UnexpectedResponse:
    return envelope.unexpected(faults.PROVIDER, endpoint, what)
