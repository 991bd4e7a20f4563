"""Async client for every endpoint of HeyGen's Streaming API (reference/heygen-api.md §1).

Two credentials, both accepted by every endpoint: the account API key (``x-api-key``) and a
one-time session token from :meth:`HeyGenClient.create_token` (``Authorization: Bearer``).
"""

from __future__ import annotations

from typing import Any

from bridge.config import Secret
from bridge.providers.heygen.errors import ERRORS
from bridge.providers.heygen.models import (
    IceCandidate,
    NewSessionData,
    NewSessionRequest,
    SessionHistoryPage,
    SessionSummary,
    StreamingAvatar,
    TaskData,
    TaskMode,
    TaskType,
)
from bridge.providers.rest.api_client import ApiClient


class HeyGenClient(ApiClient):
    """HeyGen's Streaming API, with the account's key or (``with_session_token``) a session's."""

    errors = ERRORS
    key_header = "x-api-key"

    def with_session_token(self, token: Secret) -> HeyGenClient:
        """A client that authenticates with a session token (as HeyGen's browser SDK does)."""
        return HeyGenClient(
            base_url=self.base_url,
            credential=token,
            auth="bearer",
            timeout=self._rest.timeout,
            retry_deadline=self._rest.retry_deadline,
        )

    async def _post(self, name: str, body: dict[str, Any] | None, *, idempotent: bool) -> Any:
        return await self._rest.call(
            "POST",
            f"/v1/{name}",
            endpoint=name,
            headers=self._headers(),
            json_body=body,
            idempotent=idempotent,
        )

    async def _get(self, path: str, name: str, params: dict[str, str] | None = None) -> Any:
        return await self._rest.call(
            "GET", path, endpoint=name, headers=self._headers(), params=params, idempotent=True
        )

    def _field(self, data: Any, name: str, endpoint: str) -> Any:
        if not isinstance(data, dict) or name not in data:
            raise self._unexpected(endpoint, f"no '{name}' in the answer")
        return data[name]

    # --- session lifecycle -------------------------------------------------------------

    async def create_token(self) -> Secret:
        """A one-time session token (needs the API key; answered as ``{error, data}``)."""
        data = await self._post("streaming.create_token", None, idempotent=False)
        token = self._field(data, "token", "streaming.create_token")
        if not isinstance(token, str) or not token:
            raise self._unexpected("streaming.create_token", "no token in the answer")
        return Secret(token)

    async def new_session(self, request: NewSessionRequest) -> NewSessionData:
        data = await self._post(
            "streaming.new", request.model_dump(exclude_none=True), idempotent=False
        )
        return self._parse(NewSessionData, data, "streaming.new")

    async def start_session(self, session_id: str, *, sdp: dict[str, str] | None = None) -> None:
        body: dict[str, Any] = {"session_id": session_id}
        if sdp is not None:
            body["sdp"] = sdp
        await self._post("streaming.start", body, idempotent=True)

    async def task(
        self,
        session_id: str,
        text: str,
        *,
        task_type: TaskType = "repeat",
        task_mode: TaskMode = "async",
    ) -> TaskData:
        body = {
            "session_id": session_id,
            "text": text,
            "task_type": task_type,
            "task_mode": task_mode,
        }
        data = await self._post("streaming.task", body, idempotent=False)
        return self._parse(TaskData, data, "streaming.task")

    async def interrupt(self, session_id: str) -> None:
        await self._post("streaming.interrupt", {"session_id": session_id}, idempotent=True)

    async def keep_alive(self, session_id: str) -> None:
        await self._post("streaming.keep_alive", {"session_id": session_id}, idempotent=True)

    async def start_listening(self, session_id: str) -> None:
        await self._post("streaming.start_listening", {"session_id": session_id}, idempotent=True)

    async def stop_listening(self, session_id: str) -> None:
        await self._post("streaming.stop_listening", {"session_id": session_id}, idempotent=True)

    async def stop(self, session_id: str) -> None:
        await self._post("streaming.stop", {"session_id": session_id}, idempotent=True)

    async def ice(self, session_id: str, candidate: IceCandidate) -> None:
        """Legacy v1 (raw WebRTC) trickle ICE; kept for completeness."""
        body = {"session_id": session_id, "candidate": candidate.model_dump(exclude_none=True)}
        await self._post("streaming.ice", body, idempotent=True)

    # --- listings ----------------------------------------------------------------------

    async def list_sessions(self) -> list[SessionSummary]:
        """Active sessions of this account (``GET /v1/streaming.list``)."""
        data = await self._get("/v1/streaming.list", "streaming.list")
        sessions = self._field(data, "sessions", "streaming.list")
        return self._parse(list[SessionSummary], sessions, "streaming.list")

    async def session_history(self, page_token: str | None = None) -> SessionHistoryPage:
        """One page of past sessions (``GET /v2/streaming.list``)."""
        params = {"token": page_token} if page_token else None
        data = await self._get("/v2/streaming.list", "streaming.list (v2)", params)
        return self._parse(SessionHistoryPage, data, "streaming.list (v2)")

    async def list_avatars(self) -> list[StreamingAvatar]:
        data = await self._get("/v1/streaming/avatar.list", "streaming/avatar.list")
        return self._parse(list[StreamingAvatar], data, "streaming/avatar.list")
