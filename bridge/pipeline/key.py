"""Chroma key on I420 planes, with the settings of OBS's Chroma Key filter.

OBS measures each pixel's chroma distance to the key colour (box-filtered over 3x3 px), then
``alpha = clamp((dist - similarity) / smoothness)^1.5`` and, for spill, desaturates pixels
near the key by ``clamp((dist - similarity) / spill)^1.5`` (obs-filters chroma_key.effect).
The same here, on the frame's own U and V planes, at chroma resolution (a quarter of the
pixels; I420 carries no finer colour anyway): the distance, the alpha and the spill factor
all come from lookup tables built once per setting, so a frame costs a few vectorised passes
over 640x360 bytes at 720p.  No box filter on top: each chroma sample already averages 2x2
pixels, and a 3x3 box over chroma samples would span 6x6 pixels and erase 2-pixel strands of
hair.  (A 1-pixel strand is half of its chroma samples: it blends towards the key.)  Spill
suppression in YUV is scaling U and V towards neutral, which keeps the luma, as OBS's
desaturation does.

Distances are in OBS's units: chroma on a 0..1 scale, i.e. 8-bit U/V distance / 255.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bridge.media.frames import U8

# The key colours OBS offers by name, as RGB.
NAMED_KEYS: dict[str, tuple[int, int, int]] = {
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "magenta": (255, 0, 255),
}
# Auto key: the border's colour must be at least this far from grey (0..1 chroma units) to
# be taken as a key; a grey, black or white border means "no key", never "key out greys".
AUTO_MIN_CHROMA = 0.12
_D_SCALE = 4  # distance LUT: quarter-levels of 8-bit chroma distance
_D_MAX = int(np.ceil(np.hypot(128, 128) * _D_SCALE))  # 725
_SPILL_LEVELS = 64  # spill factor steps; 64 = leave the chroma as it is


def rgb_to_yuv(r: int, g: int, b: int) -> tuple[int, int, int]:
    """BT.601 limited range (what WebRTC decoders hand out): 8-bit Y, U, V."""
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return round(y), round(u), round(v)


def parse_color(text: str) -> tuple[int, int, int]:
    """``#RRGGBB`` or a named key colour → RGB (the config has validated the form)."""
    if text in NAMED_KEYS:
        return NAMED_KEYS[text]
    value = int(text.removeprefix("#"), 16)
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


@dataclass(frozen=True, slots=True)
class KeySettings:
    """OBS's Chroma Key settings, on OBS's 1..1000 scales (defaults: OBS's)."""

    key_color: str = "auto"  # "auto" (from the frame's border), a name, or "#RRGGBB"
    similarity: int = 200
    smoothness: int = 80
    spill: int = 100


def _ramp(base: np.ndarray, width: float) -> np.ndarray:
    ramp: np.ndarray = np.power(np.clip(base / width, 0.0, 1.0), 1.5)
    return ramp


def _distance_lut(key_u: int, key_v: int) -> np.ndarray:
    """(u << 8 | v) → chroma distance to the key, in quarter levels (uint16)."""
    u = np.arange(256, dtype=np.float64)[:, None] - key_u
    v = np.arange(256, dtype=np.float64)[None, :] - key_v
    lut: np.ndarray = np.rint(np.hypot(u, v) * _D_SCALE).astype(np.uint16).ravel()
    return lut


class ChromaKey:
    """One keyer per video stream (not thread-safe; it reuses its buffers).

    :meth:`matte` computes, for a frame's U and V planes: the alpha at chroma resolution
    (0 background .. 255 subject) and spill-suppressed U and V (views into buffers this
    keyer owns, valid until the next call).
    """

    def __init__(self, settings: KeySettings) -> None:
        self.settings = settings
        distance = np.arange(_D_MAX + 1, dtype=np.float64) / (_D_SCALE * 255.0)
        base = distance - settings.similarity / 1000.0
        self._alpha_lut = np.rint(_ramp(base, settings.smoothness / 1000.0) * 255).astype(np.uint8)
        spill = np.rint(_ramp(base, settings.spill / 1000.0) * _SPILL_LEVELS).astype(np.uint16)
        self._spill_lut = spill << 8  # pre-shifted: the spill table's row index
        # (factor << 8 | chroma) → 128 + (chroma - 128) * factor / 64
        factor = np.arange(_SPILL_LEVELS + 1, dtype=np.float64)[:, None] / _SPILL_LEVELS
        chroma = np.arange(256, dtype=np.float64)[None, :]
        self._desat_lut = np.rint(128 + (chroma - 128) * factor).astype(np.uint8).ravel()
        self._dist_luts: dict[tuple[int, int], np.ndarray] = {}
        fixed = settings.key_color != "auto"
        self._fixed_key = rgb_to_yuv(*parse_color(settings.key_color))[1:] if fixed else None
        self.key_uv: tuple[int, int] | None = self._fixed_key
        self._shape: tuple[int, int] = (0, 0)

    def _buffers(self, shape: tuple[int, int]) -> None:
        if shape == self._shape:
            return
        self._shape = shape
        self._idx = np.empty(shape, np.uint16)
        self._dist = np.empty(shape, np.uint16)
        self._spill = np.empty(shape, np.uint16)
        self._chroma16 = np.empty(shape, np.uint16)
        self.alpha: U8 = np.empty(shape, np.uint8)
        self.u: U8 = np.empty(shape, np.uint8)
        self.v: U8 = np.empty(shape, np.uint8)

    def find_key(self, u: U8, v: U8) -> tuple[int, int] | None:
        """The key colour (U, V): the configured one, or the median of the frame's top row
        and the upper halves of its side columns when it is coloured enough (else None)."""
        if self._fixed_key is not None:
            return self._fixed_key
        ch = u.shape[0]
        border_u = np.concatenate((u[0], u[: ch // 2, 0], u[: ch // 2, -1]))
        border_v = np.concatenate((v[0], v[: ch // 2, 0], v[: ch // 2, -1]))
        ku, kv = int(np.median(border_u)), int(np.median(border_v))
        if np.hypot(ku - 128, kv - 128) / 255.0 < AUTO_MIN_CHROMA:
            return None
        return ku, kv

    def matte(self, u: U8, v: U8) -> bool:
        """Key one frame's chroma planes into :attr:`alpha`, :attr:`u`, :attr:`v`.  False
        (and nothing computed) when auto keying finds no key colour."""
        key = self.find_key(u, v)
        self.key_uv = key
        if key is None:
            return False
        self._buffers(u.shape)
        lut = self._dist_luts.get(key)
        if lut is None:
            if len(self._dist_luts) > 64:  # an auto key that wanders: bound the cache
                self._dist_luts.clear()
            lut = self._dist_luts[key] = _distance_lut(*key)
        idx, chroma16 = self._idx, self._chroma16
        np.left_shift(u, 8, out=idx, dtype=np.uint16)
        np.bitwise_or(idx, v, out=idx)
        np.take(lut, idx, out=self._dist)
        np.take(self._alpha_lut, self._dist, out=self.alpha)
        np.take(self._spill_lut, self._dist, out=self._spill)
        for plane, out in ((u, self.u), (v, self.v)):
            np.bitwise_or(self._spill, plane, out=chroma16)
            np.take(self._desat_lut, chroma16, out=out)
        return True
