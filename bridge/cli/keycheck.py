"""Whose key is this?  When one service refuses an API key, ask the other one.

HeyGen and LiveAvatar keys are not interchangeable (reference/liveavatar-api.md §1.1), and
"401" alone does not tell a user they pasted the right key into the wrong place.  On a
refusal we try the key, read-only, on the other service; if it is accepted there, the message
says so and how to switch.
"""

from __future__ import annotations

from bridge.config import ApiConfig, Secret, Settings
from bridge.errors import RemoteError, Unauthorized
from bridge.providers.heygen.client import HeyGenClient
from bridge.providers.liveavatar.client import LiveAvatarClient

PROBE_TIMEOUT_S = 5.0

SERVICES = {
    "heygen": ("HeyGen Streaming API", "HEYGEN_API_KEY"),
    "liveavatar": ("LiveAvatar", "LIVEAVATAR_API_KEY"),
}


async def accepted_by(service: str, api: ApiConfig, key: Secret) -> bool | None:
    """True/False if ``service`` accepts/refuses the key; None if it cannot be told."""
    quick = ApiConfig(base_url=api.base_url, timeout=PROBE_TIMEOUT_S, retry_deadline=0)
    try:
        if service == "heygen":
            async with HeyGenClient.from_config(quick, key) as heygen:
                await heygen.list_avatars()
        else:
            async with LiveAvatarClient.from_config(quick, key) as liveavatar:
                await liveavatar.list_avatars(page_size=1)
    except Unauthorized:
        return False
    except RemoteError:
        return None
    return True


async def explain(settings: Settings, refused: Unauthorized) -> str:
    """The refusal's message, plus whose key it is when the other service accepts it."""
    provider = settings.config.provider
    key = (
        settings.secrets.heygen_api_key
        if provider == "heygen"
        else settings.secrets.liveavatar_api_key
    )
    if provider not in SERVICES or key is None:
        return str(refused)
    other = "liveavatar" if provider == "heygen" else "heygen"
    if await accepted_by(other, getattr(settings.config, other), key) is not True:
        return str(refused)
    here, here_var = SERVICES[provider]
    there, there_var = SERVICES[other]
    return (
        f"{here} refused the API key in {here_var}: it is a {there} key ({there} accepted it). "
        f"Use it as {there_var} with provider: {other}, or get a {here} key"
        + (" at app.liveavatar.com/developers" if provider == "liveavatar" else "")
    )
