"""The overlay page ``/overlay`` in a real browser (headless Debian Chromium via Playwright),
as OBS's Browser Source opens it, against the real daemon on the demo avatar standing on a
green screen, keyed for the overlay (``video.background.mode: alpha``), with a token.

The page is shown over a checkerboard (as OBS composites it over a scene): the avatar is
opaque, the checkerboard shows all around it (no green left), and while the avatar speaks
its words are on the page.  The screenshot it saves is docs/overlay.png.  The page then
lives through a daemon restart on the same port and shows the avatar again by itself.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pytest
from PIL import Image
from playwright.async_api import Page, ViewportSize, expect

from tests.kit.browser import chromium
from tests.kit.demo_daemon import DemoDaemon, demo_daemon
from tests.kit.eventually import eventually
from tests.kit.process import ROOT

TOKEN = "overlay-test-token"
SENTENCE = "Hello stream, the avatar is on the overlay now."
CONFIG = {"demo": {"background": "green"}, "video": {"background": {"mode": "alpha"}}}
SCREENSHOT = ROOT / "docs" / "overlay.png"
VIEW = ViewportSize(width=640, height=360)  # the demo daemon's camera size: one pixel each
WITHIN_MS = 30_000
# Two greys far from any colour of the demo avatar, as a transparency grid.
LIGHT, DARK = (236, 236, 236), (150, 150, 150)
CHECKERBOARD = (
    "document.documentElement.style.background = "
    "'repeating-conic-gradient(rgb(150,150,150) 0% 25%, rgb(236,236,236) 0% 50%) 0 0 / 40px 40px'"
)
PAGE_OPTIONS = "captions=1&position=top&size=28&color=ffffff&background=000000cc"


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[DemoDaemon]:
    async with demo_daemon(tmp_path, token=TOKEN, config=CONFIG) as daemon:
        yield daemon


def near(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 24) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


def is_checkerboard(pixel: tuple[int, ...]) -> bool:
    return near(pixel, LIGHT) or near(pixel, DARK)


async def frames_drawn(page: Page) -> int:
    return int(await page.evaluate("window.overlayStats ? window.overlayStats.drawn : 0"))


async def picture(page: Page) -> Image.Image:
    return Image.open(io.BytesIO(await page.screenshot())).convert("RGB")


def px(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    pixel = image.getpixel(xy)
    assert isinstance(pixel, tuple)
    return pixel


def check_keyed(image: Image.Image) -> None:
    """Around the avatar the checkerboard, its face opaque, no green anywhere."""
    w, h = image.size
    corners = [(8, 8), (w - 9, 8), (8, h // 2), (w - 9, h // 2)]
    for xy in corners:
        assert is_checkerboard(px(image, xy)), (xy, px(image, xy))
    face = px(image, (w // 2, int(h * 0.42)))
    assert not is_checkerboard(face) and face[0] > 150, face  # the skin, opaque
    rgb = np.asarray(image, dtype=np.int16)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    greens = int(((g > r + 40) & (g > b + 40)).sum())
    assert greens < w * h * 0.002, f"{greens} green pixels left"


async def test_overlay_in_obs_browser_source(daemon: DemoDaemon, tmp_path: Path) -> None:
    url = f"{daemon.url}/overlay?token={TOKEN}&{PAGE_OPTIONS}"
    async with chromium(["--use-angle=swiftshader", "--enable-unsafe-swiftshader"]) as browser:
        page = await browser.new_page(viewport=VIEW)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(url)
        await page.evaluate(CHECKERBOARD)
        await eventually(lambda: frames_drawn(page), until=lambda n: n >= 5, within=30)
        # No scrollbars, nothing to click: the page is exactly the viewport.
        scroll = await page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
        )
        assert scroll == [VIEW["width"], VIEW["height"]]
        check_keyed(await picture(page))

        code, _ = await daemon_speak(daemon, SENTENCE)
        assert code == 202
        caption = page.locator("#caption-text")
        await expect(caption).to_contain_text("Hello stream", timeout=WITHIN_MS)
        await expect(page.locator("#caption")).to_be_visible()
        shot = await picture(page)
        check_keyed(shot)
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shot.save(SCREENSHOT)
        # The caption box is drawn at the top (position=top), over the checkerboard.
        top_band = [px(shot, (x, int(VIEW["height"] * 0.12))) for x in range(0, 640, 4)]
        assert any(not is_checkerboard(p) for p in top_band)
        assert errors == []


async def daemon_speak(daemon: DemoDaemon, text: str) -> tuple[int, object]:
    return await daemon.get(f"/v1/speak?{urlencode({'text': text})}")


async def test_overlay_reconnects_after_a_restart(tmp_path: Path) -> None:
    async with chromium(["--use-angle=swiftshader", "--enable-unsafe-swiftshader"]) as browser:
        page = await browser.new_page(viewport=VIEW)
        (tmp_path / "one").mkdir()
        async with demo_daemon(tmp_path / "one", token=TOKEN, config=CONFIG) as first:
            port = int(first.url.rsplit(":", 1)[1])
            await page.goto(f"{first.url}/overlay?token={TOKEN}")
            await eventually(lambda: frames_drawn(page), until=lambda n: n >= 3, within=30)
        await eventually(
            lambda: page.evaluate("window.overlayStats.connected"), until=lambda c: not c, within=30
        )
        before = await frames_drawn(page)
        (tmp_path / "two").mkdir()
        async with demo_daemon(tmp_path / "two", token=TOKEN, config=CONFIG, port=port):
            await eventually(lambda: frames_drawn(page), until=lambda n: n >= before + 3, within=30)
            check_keyed(await picture(page))
