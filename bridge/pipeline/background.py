"""What happens to the avatar's background (config ``video.background``), frame by frame.

- ``keep``: nothing; the camera shows the avatar's own frame.
- ``color``: the keyed background becomes a solid colour (a clean key green for OBS's Chroma
  Key filter by default, or any colour).
- ``image``: the keyed background becomes the user's picture, scaled to fill.
- ``alpha``: the camera keeps the avatar's frame; the key only makes the alpha matte for the
  overlay page (``/overlay``), and only while somebody watches it.

In every mode but ``keep`` the overlay gets the keyed frame with its alpha (spill
suppressed); in ``keep`` it gets the frame opaque.  The key is :class:`~bridge.pipeline.key.
ChromaKey`; its alpha is scaled up to full size and blended with libyuv (SIMD), or numpy
without libyuv.  One :class:`Background` per video stream, used by one thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import av
import numpy as np
from PIL import Image, ImageOps

from bridge.config import BackgroundConfig
from bridge.errors import ConfigError
from bridge.media.frames import U8, VideoFrame, i420_size
from bridge.pipeline import libyuv
from bridge.pipeline.key import ChromaKey, KeySettings, parse_color, rgb_to_yuv


@dataclass(frozen=True, slots=True)
class Matted:
    """A frame for the overlay: 2-D Y, U, V views and a full-size alpha (None: opaque).
    The views are valid only during the :meth:`MatteSink.publish` call that gets them."""

    width: int
    height: int
    y: U8
    u: U8
    v: U8
    alpha: U8 | None
    arrived: float


class MatteSink(Protocol):
    """Where keyed frames go (the overlay page's feed), called from the camera's thread."""

    @property
    def wanted(self) -> bool:
        """Whether anybody watches (no watcher: no matte is made)."""
        ...

    def publish(self, matted: Matted | None) -> None:
        """A new frame, or None: no avatar to show (the camera shows its slate)."""
        ...


def load_image(path: Path) -> Image.Image:
    try:
        with Image.open(path.expanduser()) as img:
            return img.convert("RGB")
    except OSError as exc:
        raise ConfigError([f"video.background.image: cannot read {path}: {exc}"]) from None


def image_i420(picture: Image.Image, width: int, height: int) -> U8:
    """``picture`` scaled to fill width x height (cropped, centred), as packed I420."""
    fitted = ImageOps.fit(picture, (width, height), Image.Resampling.BILINEAR)
    rgb = av.VideoFrame.from_ndarray(np.asarray(fitted), format="rgb24")
    i420 = rgb.reformat(format="yuv420p").to_ndarray()
    return np.ascontiguousarray(i420, dtype=np.uint8).ravel()


def color_i420(rgb: tuple[int, int, int], width: int, height: int) -> U8:
    y, u, v = rgb_to_yuv(*rgb)
    buf = np.empty(i420_size(width, height), np.uint8)
    buf[: width * height] = y
    chroma = (i420_size(width, height) - width * height) // 2
    buf[width * height : width * height + chroma] = u
    buf[width * height + chroma :] = v
    return buf


class Background:
    def __init__(self, cfg: BackgroundConfig, *, use_libyuv: bool = True) -> None:
        self.cfg = cfg
        self.mode = cfg.mode
        self.key = ChromaKey(
            KeySettings(
                key_color=cfg.key_color,
                similarity=cfg.similarity,
                smoothness=cfg.smoothness,
                spill=cfg.spill,
            )
        )
        self._yuv = libyuv.load() if use_libyuv else None
        # Read now: a picture that cannot be read is a config error at start, not per frame.
        self._picture = load_image(cfg.image) if cfg.mode == "image" and cfg.image else None
        self._size = (0, 0)
        self._backdrop: U8 = np.empty(0, np.uint8)
        self._alpha: U8 = np.empty(0, np.uint8)
        self._out: U8 = np.empty(0, np.uint8)
        self.keyed_frames = 0

    def apply(self, frame: VideoFrame, *, matte: MatteSink | None = None) -> VideoFrame:
        """The frame the camera shows; a keyed (or opaque) copy goes to ``matte`` when it
        is wanted."""
        wanted = matte is not None and matte.wanted
        needs_key = self.mode in ("color", "image") or (self.mode == "alpha" and wanted)
        y, u, v = frame.planes()
        if not needs_key or not self.key.matte(u, v):
            if matte is not None and wanted:
                matte.publish(Matted(frame.width, frame.height, y, u, v, None, frame.arrived))
            return frame
        self.keyed_frames += 1
        self._prepare(frame.width, frame.height)
        self._scale_alpha(frame.width, frame.height)
        camera = frame
        if self.mode in ("color", "image"):
            camera = VideoFrame(frame.width, frame.height, self._blend(frame, y), frame.arrived)
        if matte is not None and wanted:
            alpha = self._alpha.reshape(frame.height, frame.width)
            matted = Matted(
                frame.width, frame.height, y, self.key.u, self.key.v, alpha, frame.arrived
            )
            matte.publish(matted)
        return camera

    def _prepare(self, width: int, height: int) -> None:
        if (width, height) == self._size:
            return
        self._size = (width, height)
        self._alpha = np.empty(width * height, np.uint8)
        if self.mode == "color":
            self._backdrop = color_i420(parse_color(self.cfg.color), width, height)
        elif self.mode == "image" and self._picture is not None:
            self._backdrop = image_i420(self._picture, width, height)
        if self.mode in ("color", "image"):
            self._out = np.empty(i420_size(width, height), np.uint8)

    def _scale_alpha(self, width: int, height: int) -> None:
        small = self.key.alpha
        if self._yuv is not None:
            ch, cw = small.shape
            self._yuv.scale_plane(
                small.ctypes.data, (cw, ch), self._alpha.ctypes.data, (width, height)
            )
            return
        full = self._alpha.reshape(height, width)
        full[...] = np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)[:height, :width]

    def _blend(self, frame: VideoFrame, y: U8) -> U8:
        w, h = frame.width, frame.height
        if self._yuv is not None:
            cw = (w + 1) // 2
            fg = libyuv.Planes(
                y=y.ctypes.data,
                u=self.key.u.ctypes.data,
                v=self.key.v.ctypes.data,
                stride_y=w,
                stride_uv=cw,
                width=w,
                height=h,
            )
            bg = libyuv.i420_planes(self._backdrop, w, h)
            out = libyuv.i420_planes(self._out, w, h)
            self._yuv.blend(fg, bg, self._alpha.ctypes.data, out)
            return self._out
        back = VideoFrame(w, h, self._backdrop, 0.0).planes()
        dest = VideoFrame(w, h, self._out, 0.0).planes()
        alpha_full = self._alpha.reshape(h, w)
        for fg_plane, bg_plane, out_plane, a in zip(
            (y, self.key.u, self.key.v),
            back,
            dest,
            (alpha_full, self.key.alpha, self.key.alpha),
            strict=True,
        ):
            _mix(fg_plane, bg_plane, a, out_plane)
        return self._out


def _mix(fg: U8, bg: U8, alpha: U8, out: U8) -> None:
    """``out = (fg * a + bg * (255 - a)) / 255``, rounded (the numpy path)."""
    a = alpha.astype(np.uint16)
    mixed = fg * a + bg * (255 - a) + 127
    out[...] = mixed // 255
