"""The web panel at ``/`` in a real browser (headless Debian Chromium driven by Playwright)
against the real daemon on the demo avatar, with a control token set, as a user opens it:
``http://127.0.0.1:<port>/?token=...``.

It sees the preview move, speaks a sentence and watches it go to done in the queue and the
event log; on a phone-sized screen it fits the width and a preset button speaks.  The
screenshot it saves is docs/panel.png.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Locator, Page, ViewportSize, expect

from tests.kit.browser import chromium
from tests.kit.demo_daemon import DemoDaemon, demo_daemon
from tests.kit.eventually import eventually
from tests.kit.process import ROOT

TOKEN = "panel-test-token"
SENTENCE = "Hello from the web panel, this is the demo avatar."
PRESET_TEXT = "Thanks for watching, see you next time."
LAST_TEXT = "And one more thing before we go."
CONFIG = {"presets": {"goodbye": {"text": PRESET_TEXT}}}
MARKUP = "<b>bold</b> <img src=x onerror=alert(1)> stays text"
SCREENSHOT = ROOT / "docs" / "panel.png"
DESKTOP = ViewportSize(width=1280, height=860)
PHONE = ViewportSize(width=390, height=844)
WITHIN_MS = 30_000  # speaking a sentence on a busy 2-core machine: generous

# A fingerprint of what the preview <img> shows now, from ``top`` (a fraction of its height)
# down: that part drawn onto a canvas, its pixels hashed into one number (null before the
# first frame).  The demo writes the words it says in the bottom sixth.
PRINT = """(top) => {
  const img = document.getElementById("preview");
  if (!img.complete || !img.naturalWidth) return null;
  const w = img.naturalWidth, h = img.naturalHeight, y = Math.floor(h * top);
  const canvas = document.createElement("canvas");
  canvas.width = w; canvas.height = h - y;
  const g = canvas.getContext("2d");
  g.drawImage(img, 0, y, w, h - y, 0, 0, w, h - y);
  const px = g.getImageData(0, 0, w, h - y).data;
  let hash = 0;
  for (let i = 0; i < px.length; i += 1) hash = (hash * 31 + px[i]) >>> 0;
  return hash;
}"""
WHOLE, CAPTIONS = 0.0, 5 / 6


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[DemoDaemon]:
    async with demo_daemon(tmp_path, token=TOKEN, config=CONFIG) as daemon:
        yield daemon


def problems_of(page: Page) -> list[str]:
    """Collects the page's script errors and console errors (a CSP refusal is one)."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text} ({message.location})")
            if message.type == "error"
            else None
        ),
    )
    return problems


async def shown(page: Page, top: float = WHOLE) -> int | None:
    value = await page.evaluate(PRINT, top)
    return int(value) if value is not None else None


async def open_panel(page: Page, daemon: DemoDaemon) -> None:
    await page.goto(f"{daemon.url}/?token={TOKEN}")
    # Live: connected over the WebSocket (the token in its first message), the state shown.
    await expect(page.locator("#link .value")).to_have_text("connected")
    await expect(page.locator("#session .value")).to_have_text("live")
    await expect(page.locator("#provider")).to_have_text("demo")
    await expect(page.locator("#presets button")).to_have_text(["goodbye"])


async def preview_moves(page: Page) -> None:
    """Two different frames in the preview (the demo avatar bobs while idle)."""
    first = await eventually(lambda: shown(page), within=15, what="a first frame")
    await eventually(
        lambda: shown(page),
        until=lambda now: now is not None and now != first,
        within=15,
        what="a different frame in the preview",
        every=0.1,
    )


async def speak(page: Page, text: str) -> Locator:
    """Type ``text``, press Speak; its row in the queue."""
    await page.fill("#text", text)
    await page.click("#speak")
    await expect(page.locator("#text")).to_have_value("")  # accepted: ready for the next one
    return page.locator("#queue li", has_text=text)


async def said_to_done(page: Page, daemon: DemoDaemon, row: Locator, text: str) -> None:
    """The row goes to done, the log shows its life, and the daemon agrees."""
    await expect(row).to_have_attribute("data-state", "done", timeout=WITHIN_MS)
    item_id = await row.get_attribute("data-id")
    assert item_id, "the queue row names its item"
    for state in ("queued", "speaking", "done"):
        line = page.locator("#log li", has_text=f"speech.{state}")
        await expect(line.filter(has_text=f"{item_id} {state} “").first).to_be_visible()
    code, queue = await daemon.get("/v1/queue")
    assert code == 200
    said = [i for i in queue["recent"] if i["id"] == item_id]
    assert said and said[0]["state"] == "done" and said[0]["text"] == text, queue


async def fits_a_phone(phone: Page) -> None:
    """One column as wide as the screen: nothing to scroll sideways, every control on it."""
    overflow = await phone.evaluate("() => document.documentElement.scrollWidth - innerWidth")
    assert overflow <= 0, f"the panel is {overflow} px wider than a {PHONE['width']} px screen"
    for control in ("#preview", "#text", "#speak", ".switch", "#interrupt", "#clear", "#queue"):
        box = await phone.locator(control).bounding_box()
        assert box is not None, f"{control} is not shown"
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (control, box)


async def new_caption(page: Page, before: int | None) -> None:
    """Best effort, for the screenshot only: a moment for the new words to show."""
    with contextlib.suppress(AssertionError):
        await eventually(
            lambda: shown(page, CAPTIONS), until=lambda now: now != before, within=3, every=0.1
        )


async def markup_stays_text_and_leaves(page: Page) -> None:
    """Text from the daemon is shown as text, never parsed as HTML; × removes a waiting item."""
    row = await speak(page, MARKUP)
    await expect(row.locator(".text")).to_have_text(MARKUP)
    queued = page.locator("#log li", has_text="speech.queued").filter(has_text=MARKUP)
    await expect(queued).to_have_count(1)
    assert await page.locator("#queue b, #log b, img[src='x']").count() == 0
    await row.get_by_role("button").click()  # its × (only waiting items have one)
    await expect(row).to_have_attribute("data-state", "dropped")


async def test_the_panel_speaks_and_shows_the_item_to_done(daemon: DemoDaemon) -> None:
    async with chromium() as browser:
        page = await browser.new_page(viewport=DESKTOP)
        problems = problems_of(page)
        await open_panel(page, daemon)
        await preview_moves(page)
        await said_to_done(page, daemon, await speak(page, SENTENCE), SENTENCE)

        # On a phone, the same panel (its own connection) in one column; a preset speaks.
        phone = await browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True)
        problems += problems_of(phone)
        await open_panel(phone, daemon)
        await fits_a_phone(phone)
        caption = await shown(page, CAPTIONS)
        await phone.get_by_role("button", name="goodbye").tap()
        preset = page.locator("#queue li", has_text=PRESET_TEXT)  # the desktop sees it too
        # One more while it speaks, to wait its turn; the screenshot is best with all three.
        waiting = await speak(page, LAST_TEXT)
        await expect(preset).to_have_attribute("data-state", re.compile("speaking|done"))
        await new_caption(page, caption)
        await page.screenshot(path=SCREENSHOT, full_page=True)
        await markup_stays_text_and_leaves(page)
        await said_to_done(page, daemon, preset, PRESET_TEXT)
        await said_to_done(page, daemon, waiting, LAST_TEXT)
        await expect(phone.locator("#queue li", has_text=LAST_TEXT)).to_have_attribute(
            "data-state", "done"
        )
    assert problems == []


async def test_the_panel_reconnects_when_the_daemon_restarts(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    async with chromium() as browser:
        page = await browser.new_page(viewport=DESKTOP)
        problems = problems_of(page)
        async with demo_daemon(first, token=TOKEN, config=CONFIG) as daemon:
            await open_panel(page, daemon)
            await said_to_done(page, daemon, await speak(page, SENTENCE), SENTENCE)
            await preview_moves(page)
            port = urlsplit(daemon.url).port
            assert port is not None
        # Stopped (SIGTERM with the panel watching: it must still end cleanly and soon).
        await expect(page.locator("#link")).not_to_have_attribute("data-state", "connected")
        async with demo_daemon(second, token=TOKEN, config=CONFIG, port=port) as daemon:
            # Back by itself: the new daemon's state replaces the old one's.
            await expect(page.locator("#link .value")).to_have_text("connected", timeout=WITHIN_MS)
            await expect(page.locator("#queue li")).to_have_count(0)
            await preview_moves(page)
            await said_to_done(page, daemon, await speak(page, LAST_TEXT), LAST_TEXT)
    # The browser logs the refused reconnection attempts while the daemon was away.
    assert [p for p in problems if "ERR_CONNECTION_REFUSED" not in p] == []
