"""What every provider's API client is: one owned :class:`RestClient`, a credential, and the
provider's :class:`~bridge.providers.rest.errors.ErrorMap`.

A provider's client subclasses :class:`ApiClient`, names its ``errors`` and ``key_header``,
and adds one method per endpoint.  Construction (directly or :meth:`ApiClient.from_config`),
``base_url``, closing (``aclose()`` or ``async with``), the credential's headers (the account's
key, or a session token as Bearer) and reading an answer's data into a model are the same for
all of them and live here.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self, TypeVar

from bridge.config import ApiConfig, Secret
from bridge.errors import UnexpectedResponse
from bridge.providers.rest import envelope
from bridge.providers.rest.client import RestClient
from bridge.providers.rest.errors import ErrorMap

T = TypeVar("T")
# How the client's credential is sent: as the account's API key, or as a session token
# (``Authorization: Bearer``, as the providers' browser SDKs do).
AuthStyle = Literal["api_key", "bearer"]


class ApiClient:
    """One owned HTTP session to one provider; close it with ``aclose()`` or ``async with``."""

    errors: ClassVar[ErrorMap]
    key_header: ClassVar[str]  # the header that carries the account's API key

    def __init__(
        self,
        *,
        base_url: str,
        credential: Secret,
        auth: AuthStyle = "api_key",
        timeout: float = 15.0,
        retry_deadline: float = 20.0,
    ) -> None:
        self._credential = credential
        self.auth: AuthStyle = auth
        self._rest = RestClient(
            provider=self.errors.provider,
            base_url=base_url,
            timeout=timeout,
            retry_deadline=retry_deadline,
            interpret=self.errors.interpret,
        )

    @property
    def base_url(self) -> str:
        return self._rest.base_url

    @classmethod
    def from_config(cls, api: ApiConfig, api_key: Secret) -> Self:
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

    def _headers(self, token: Secret | None = None) -> dict[str, str]:
        """A session token (``token``, else a bearer credential) as ``Authorization: Bearer``;
        else the account's key."""
        if token is None and self.auth == "bearer":
            token = self._credential
        if token is not None:
            return {"Authorization": f"Bearer {token.reveal()}"}
        return {self.key_header: self._credential.reveal()}

    def _parse(self, kind: type[T], data: Any, endpoint: str) -> T:
        """An answer's data as ``kind``, or :class:`UnexpectedResponse` naming the field."""
        return envelope.parse(kind, data, provider=self.errors.provider, endpoint=endpoint)

    def _unexpected(self, endpoint: str, what: str) -> UnexpectedResponse:
        return envelope.unexpected(self.errors.provider, endpoint, what)
