"""A real browser for the tests: Debian's Chromium, headless, driven by Playwright.

Never a browser Playwright downloads itself: ``./scripts/test`` installs the distribution's
``chromium`` and the tests point Playwright at it.  Without it the test skips, saying how to
get it (in CI nothing skips).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.async_api import Browser

CHROMIUM = Path(os.environ.get("HB_CHROMIUM", "/usr/bin/chromium"))


def _installed() -> bool:
    return CHROMIUM.exists()


@asynccontextmanager
async def chromium(args: Sequence[str] = ()) -> AsyncIterator[Browser]:
    """A headless Chromium (a Playwright ``Browser``) started with ``args`` (command-line
    switches), closed on exit; skips without one."""
    if not _installed():
        pytest.skip(
            f"no Chromium at {CHROMIUM}: apt-get install chromium (./scripts/test does), "
            "or set HB_CHROMIUM to a Chromium binary"
        )
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("Playwright is missing: pip install -e '.[dev]' (./scripts/test does)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=list(args)
        )
        try:
            yield browser
        finally:
            await browser.close()
