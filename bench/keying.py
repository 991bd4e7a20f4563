"""Keying benchmark: the background key per 720p frame, and the overlay page's latency and CPU.

    python bench/keying.py [--frames N] [--seconds S] [--skip-overlay]

Part 1: CPU time per frame of ``Background.apply`` on the demo avatar's 720p green-screen
picture, in each mode (keep, color, image, alpha with the overlay watching), with libyuv and
with the numpy fallback, beside a baseline in the same run: the same key (OBS's formula:
chroma distance, similarity/smoothness ramp, spill desaturation, composite over a colour)
done in plain numpy on the RGB picture, float32.

Part 2: the daemon on the demo avatar (green, ``video.background.mode: alpha``, camera
1280x720 at 30 fps, no device), ``/overlay`` open in headless Chromium for ``S`` seconds:
frame arrival in the daemon → drawn by the page (the page's own record, same clock), page
frames drawn per second, CPU of the daemon and of every Chromium process (utime+stime from
/proc, % of one core), beside the same daemon with no page open.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge.config import BackgroundConfig
from bridge.media.frames import VideoFrame
from bridge.pipeline.background import Background, Matted
from bridge.synthetic.face import FaceRenderer

W, H = 1280, 720


class Watching:
    wanted = True

    def publish(self, matted: Matted | None) -> None:
        return None


def cpu_ms_per_call(fn: object, frames: int) -> float:
    assert callable(fn)
    for _ in range(5):
        fn()
    times = []
    for _ in range(frames):
        start = time.thread_time()
        fn()
        times.append((time.thread_time() - start) * 1000)
    return statistics.median(times)


def rgb_baseline(rgb: np.ndarray) -> np.ndarray:
    """OBS's chroma key in plain numpy on RGB (float32): the baseline."""
    f = rgb.astype(np.float32) / 255
    cb = f @ np.array([-0.100644, -0.338572, 0.439216], np.float32) + 0.501961
    cr = f @ np.array([0.439216, -0.398942, -0.040274], np.float32) + 0.501961
    key = (float(cb[0, 0]), float(cr[0, 0]))
    dist = np.hypot(cb - key[0], cr - key[1])
    base = dist - 0.2
    alpha = np.clip(base / 0.08, 0, 1) ** 1.5
    spill = np.clip(base / 0.1, 0, 1) ** 1.5
    grey = f @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    f = grey[..., None] + (f - grey[..., None]) * spill[..., None]
    out = f * alpha[..., None] + np.array([0, 1, 0], np.float32) * (1 - alpha[..., None])
    result: np.ndarray = (out * 255).astype(np.uint8)
    return result


def part1(frames: int, image: Path) -> None:
    face = FaceRenderer(W, H, test_patch=False, green=True)
    data = face.render(mouth_open=0.4, caption="", t=0.0, stamp=None).copy()
    frame = VideoFrame(W, H, data, arrived=0.0)
    watching = Watching()
    print(f"## keying, 1280x720, CPU ms per frame (median of {frames})")
    for engine in (True, False):
        for mode in ("keep", "color", "image", "alpha"):
            cfg = BackgroundConfig(mode=mode, image=image if mode == "image" else None)
            bg = Background(cfg, use_libyuv=engine)
            ms = cpu_ms_per_call(lambda bg=bg: bg.apply(frame, matte=watching), frames)
            name = "libyuv" if engine else "numpy "
            print(f"| {mode:5} | {name} | {ms:.3f} |")
    import av

    rgb = av.VideoFrame.from_ndarray(data.reshape(-1, W), format="yuv420p").to_ndarray(
        format="rgb24"
    )
    ms = cpu_ms_per_call(lambda: rgb_baseline(rgb), max(5, frames // 10))
    print(f"| baseline: same key, plain numpy float32 on RGB | {ms:.3f} |")


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found + [d for child in found for d in descendants(child)]


def cpu_of(pids: list[int], seconds: float) -> float:
    before = sum(cpu_seconds(p) for p in pids)
    time.sleep(seconds)
    return (sum(cpu_seconds(p) for p in pids) - before) / seconds * 100


async def part2(seconds: float) -> None:
    from playwright.async_api import async_playwright

    from tests.kit.demo_daemon import demo_daemon

    config = {
        "camera": {"width": W, "height": H, "card_label": "none", "fps": 30},
        "demo": {"background": "green"},
        "video": {"background": {"mode": "alpha"}},
    }
    with tempfile.TemporaryDirectory() as folder:
        async with demo_daemon(Path(folder), config=config) as daemon:
            pid = daemon.child.pid
            idle = await asyncio.to_thread(cpu_of, [pid], seconds)
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path="/usr/bin/chromium",
                    args=["--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
                )
                page = await browser.new_page(viewport={"width": W, "height": H})
                await page.goto(f"{daemon.url}/overlay")
                await asyncio.sleep(3)
                kids = descendants(os.getpid())
                chrome = [p for p in kids if p != pid]
                drawn0 = await page.evaluate("window.overlayStats.drawn")
                shares = await asyncio.gather(
                    asyncio.to_thread(cpu_of, [pid], seconds),
                    asyncio.to_thread(cpu_of, chrome, seconds),
                )
                stats = await page.evaluate("window.overlayStats")
                await browser.close()
    lat = sorted(stats["latencies"][-int(seconds * 30) :])
    fps = (stats["drawn"] - drawn0) / seconds
    print(f"## overlay, 720p30, {seconds:.0f} s window, renderer {stats['renderer']}")
    print(f"| daemon CPU, no page open | {idle:.1f} % |")
    print(f"| daemon CPU, /overlay open (key + send) | {shares[0]:.1f} % |")
    print(f"| Chromium CPU (all processes) | {shares[1]:.1f} % |")
    print(f"| page frames drawn per second | {fps:.1f} |")
    if lat:
        p50, p95 = lat[len(lat) // 2], lat[int(len(lat) * 0.95)]
        print(f"| arrival in daemon -> drawn by page, p50 / p95 | {p50:.1f} / {p95:.1f} ms |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--skip-overlay", action="store_true")
    args = parser.parse_args()
    print("load:", os.getloadavg())
    with tempfile.TemporaryDirectory() as folder:
        image = Path(folder) / "backdrop.png"
        from PIL import Image

        Image.new("RGB", (1920, 1080), (40, 90, 160)).save(image)
        part1(args.frames, image)
    if not args.skip_overlay:
        asyncio.run(part2(args.seconds))
    print("load:", os.getloadavg())


if __name__ == "__main__":
    main()
