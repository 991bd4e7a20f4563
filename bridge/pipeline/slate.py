"""The picture the camera shows while no avatar frame is fresh: built-in, or the user's image.

Rendered once per output configuration (Pillow → PyAV conversion), never per frame.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from bridge.errors import ConfigError
from bridge.media.frames import U8, VideoFrame
from bridge.pipeline.video import PixelFormat, VideoConverter


def render_slate(
    width: int,
    height: int,
    pixel_format: PixelFormat,
    *,
    title: str = "HeyGen Avatar",
    subtitle: str = "The avatar will be back in a moment",
    image: Path | None = None,
) -> U8:
    """A complete camera frame (its own buffer) in the camera's format."""
    picture = _load(image) if image is not None else _draw(width, height, title, subtitle)
    rgb = av.VideoFrame.from_ndarray(np.asarray(picture), format="rgb24")
    i420 = rgb.reformat(format="yuv420p")
    data: U8 = np.ascontiguousarray(i420.to_ndarray(), dtype=np.uint8).ravel()
    frame = VideoFrame(picture.width, picture.height, data, arrived=0.0)
    converter = VideoConverter(
        width=width, height=height, pixel_format=pixel_format, fit_mode="letterbox"
    )
    return converter.convert(frame).copy()


def _load(path: Path) -> Image.Image:
    try:
        with Image.open(path.expanduser()) as img:
            rgb = img.convert("RGB")
    except OSError as exc:
        raise ConfigError([f"camera.slate_image: cannot read {path}: {exc}"]) from None
    # I420 needs even sizes.
    return rgb.crop((0, 0, rgb.width // 2 * 2, rgb.height // 2 * 2))


def _draw(width: int, height: int, title: str, subtitle: str) -> Image.Image:
    img = Image.new("RGB", (width, height), (24, 28, 38))
    draw = ImageDraw.Draw(img)
    big = ImageFont.load_default(size=max(12, height // 12))
    small = ImageFont.load_default(size=max(10, height // 28))
    cx, cy = width // 2, height // 2
    radius = height // 8
    draw.ellipse(
        (cx - radius, cy - radius * 2.4, cx + radius, cy - radius * 0.4),
        outline=(120, 140, 180),
        width=max(2, height // 180),
    )
    draw.text((cx, cy + radius * 0.3), title, font=big, fill=(230, 234, 242), anchor="mm")
    draw.text((cx, cy + radius * 1.3), subtitle, font=small, fill=(150, 160, 180), anchor="mm")
    return img
