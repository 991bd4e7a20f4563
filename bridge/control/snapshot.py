"""A camera frame (YUYV or I420, the camera's size) → JPEG, for ``GET /v1/snapshot.jpg``.

Occasional work (a person or a panel asking what the camera shows), not the hot path: it
copies and converts freely, and the caller runs it off the event loop (``asyncio.to_thread``).
"""

from __future__ import annotations

import io

import av
import numpy as np
from PIL import Image

from bridge.media.frames import U8
from bridge.pipeline.video import PixelFormat


def to_rgb(buf: U8, width: int, height: int, pixel_format: PixelFormat) -> np.ndarray:
    """``buf`` (a whole frame as the camera holds it) as a new height × width × 3 RGB array."""
    if pixel_format == "YUYV":
        frame = av.VideoFrame.from_ndarray(buf.reshape(height, width, 2), format="yuyv422")
    else:
        frame = av.VideoFrame.from_numpy_buffer(
            buf.reshape(-1, width), format="yuv420p", width=width
        )
    return frame.to_ndarray(format="rgb24")


def to_jpeg(
    buf: U8, width: int, height: int, pixel_format: PixelFormat, quality: int = 85
) -> bytes:
    """``buf`` encoded as a baseline JPEG of the camera's size."""
    out = io.BytesIO()
    Image.fromarray(to_rgb(buf, width, height, pixel_format)).save(
        out, format="JPEG", quality=quality
    )
    return out.getvalue()
