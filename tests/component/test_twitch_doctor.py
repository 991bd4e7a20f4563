"""``heygen-bridge doctor`` checks the Twitch token and its scopes (against the validate fake)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.cli import doctor
from bridge.config import Secret, Secrets, Settings, parse
from tests.kit.twitch_fakes import CLIENT_ID, TwitchFake, twitch_fake


@pytest.fixture
async def fake() -> AsyncIterator[TwitchFake]:
    async with twitch_fake() as fake:
        fake.token("good-token-1", "chan")
        fake.token("read-token-2", "chan", ("user:read:chat",))
        yield fake


def settings(fake: TwitchFake, token: str | None, **twitch: Any) -> Settings:
    return Settings(
        config=parse({"twitch": fake.config(["chan"], **twitch)}),
        secrets=Secrets(
            twitch_token=Secret(token) if token else None,
            twitch_client_id=Secret(CLIENT_ID) if token else None,
        ),
    )


async def test_a_good_token_with_its_scopes(fake: TwitchFake) -> None:
    check = await doctor.check_twitch(settings(fake, "good-token-1", replies=True, rewards=["r"]))
    assert check.ok and check.required
    assert "as chan in #chan" in check.detail
    assert "user:write:chat" in check.detail and "channel:read:redemptions" in check.detail


async def test_a_missing_scope_is_named_with_the_fix(fake: TwitchFake) -> None:
    check = await doctor.check_twitch(settings(fake, "read-token-2", rewards=["r"]))
    assert not check.ok and check.required
    assert "channel:read:redemptions" in check.detail and "user:write:chat" not in check.detail
    assert "TWITCH_TOKEN" in check.fix


async def test_a_refused_token_is_said_without_showing_it(fake: TwitchFake) -> None:
    check = await doctor.check_twitch(settings(fake, "not-a-real-token-9"))
    assert not check.ok and "refused TWITCH_TOKEN" in check.detail
    assert "not-a-real-token-9" not in check.detail + check.fix


async def test_an_unreachable_validate_url_fails_the_check(fake: TwitchFake) -> None:
    cfg = settings(fake, "good-token-1", validate_url="http://127.0.0.1:9/oauth2/validate")
    check = await doctor.check_twitch(cfg)
    assert not check.ok and "could not be reached" in check.detail


async def test_without_a_token_chat_is_anonymous_and_read_only(fake: TwitchFake) -> None:
    check = await doctor.check_twitch(settings(fake, None))
    assert check.ok and "anonymous read-only" in check.detail


async def test_not_enabled_is_not_required() -> None:
    check = await doctor.check_twitch(Settings(config=parse({}), secrets=Secrets()))
    assert check.ok and not check.required
