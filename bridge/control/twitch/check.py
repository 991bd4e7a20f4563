"""``heygen-bridge doctor``'s Twitch check: the token accepted, with every scope the config
needs (asked at ``twitch.validate_url``)."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from bridge.config import Secret, TwitchConfig
from bridge.control.twitch.helix import HOW_TO, Helix, TwitchError, missing_scopes, scope_error
from bridge.control.twitch.service import channel_logins, needed_scopes

__all__ = ["TokenReport", "check_token"]


@dataclass(frozen=True, slots=True)
class TokenReport:
    ok: bool
    detail: str
    fix: str = ""


async def check_token(cfg: TwitchConfig, token: Secret, client_id: Secret | None) -> TokenReport:
    needed = needed_scopes(cfg)
    async with aiohttp.ClientSession() as http:
        helix = Helix(
            http,
            helix_url=cfg.helix_url,
            validate_url=cfg.validate_url,
            token=token,
            client_id=client_id.reveal() if client_id is not None else None,
        )
        try:
            info = await helix.validate()
        except TwitchError as exc:
            return TokenReport(False, str(exc), fix=HOW_TO)
    missing = missing_scopes(info, needed)
    if missing:
        return TokenReport(False, scope_error(missing), fix=HOW_TO)
    expiry = f"; expires in {info.expires_in // 3600} h" if info.expires_in else ""
    channels = ", ".join(f"#{c}" for c in channel_logins(cfg))
    return TokenReport(
        True, f"EventSub as {info.login} in {channels} (scopes {', '.join(needed)}){expiry}"
    )
