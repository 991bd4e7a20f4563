"""The demo avatar's picture: a friendly cartoon face rendered straight into I420.

Everything that does not change is drawn once with Pillow (3x supersampled, then reduced) and
converted to I420 by swscale at construction: the background, the figure at each step of its idle
bob, the eye states (open, half, closed) and six mouth openings.  A frame is then a handful of
numpy slice copies into one reused buffer: the figure region, the eyes, the mouth, the caption
strip (re-rendered with Pillow only when its text changes, and cached), the colour patch and the
stamp.  About 0.15 ms at 1280x720; a frame whose caption gains a word costs one small Pillow draw
of that word, under 1 ms.

One module on purpose: every sprite, the caption strip and the stamp share one layout
(``_layout``) and one buffer; split up, a reader would chase the geometry across files.

Geometry: every sprite sits on even coordinates and has even sizes, so its chroma lines up with
the picture's 2x2 chroma grid; eye and mouth sprites lie on flat skin, so their rectangles are
invisible.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from bridge.media.frames import U8, i420_size
from bridge.synthetic import stamp as marker
from bridge.synthetic.stamp import Stamp

__all__ = ["FaceRenderer"]

RGB = tuple[int, int, int]
Planes = tuple[U8, U8, U8]

_SS = 3  # supersampling factor for anti-aliased shapes
_MOUTH_SHAPES = 6
_CAPTION_CACHE = 16
_CAPTION_LINES = 2
_MAX_CAPTION_CHARS = 400  # only the tail of a caption is laid out
_WORD_CACHE = 512
_PAD = 3  # px around a word mask, for glyphs that overhang their advance

BG_TOP: RGB = (36, 58, 86)
BG_BOTTOM: RGB = (74, 118, 140)
GLOW: RGB = (120, 170, 190)
SKIN: RGB = (246, 204, 168)
SKIN_SHADE: RGB = (226, 176, 140)
HAIR: RGB = (72, 48, 40)
BLUSH: RGB = (240, 164, 150)
SHIRT: RGB = (226, 112, 84)
SHIRT_DARK: RGB = (196, 90, 66)
INK: RGB = (56, 40, 44)
MOUTH: RGB = (118, 42, 54)
TONGUE: RGB = (226, 112, 122)
TEETH: RGB = (252, 250, 246)
BAND: RGB = (16, 22, 34)
ACCENT: RGB = (242, 178, 92)
TEXT: RGB = (246, 246, 246)
# background "green": a studio green screen (the usual chroma-key green).
GREEN_SCREEN: RGB = (0, 177, 64)


def _even(v: float) -> int:
    return round(v / 2.0) * 2


def _to_planes(rgb: Image.Image) -> Planes:
    """RGB image (even size) → contiguous Y, U, V arrays via swscale (BT.601, limited range)."""
    arr = np.asarray(rgb.convert("RGB"), dtype=np.uint8)
    h, w = arr.shape[:2]
    frame = av.VideoFrame.from_ndarray(arr, format="rgb24").reformat(format="yuv420p", threads=1)
    flat = np.asarray(frame.to_ndarray(), dtype=np.uint8).reshape(-1)
    cw, ch = w // 2, h // 2
    y = flat[: w * h].reshape(h, w)
    u = flat[w * h : w * h + cw * ch].reshape(ch, cw)
    v = flat[w * h + cw * ch : w * h + 2 * cw * ch].reshape(ch, cw)
    return y, u, v


def _blend(dst: U8, coverage: U8, value: int) -> None:
    """dst ← dst + (value − dst)·coverage/255, in place (integer maths, rounded)."""
    acc = dst.astype(np.uint16) * (255 - coverage) + coverage.astype(np.uint16) * value
    dst[...] = (acc + 127) // 255


class _Canvas:
    """A supersampled RGBA drawing surface for the box ``(x0, y0)``+``(w, h)`` of the picture;
    methods take picture coordinates."""

    def __init__(self, x0: int, y0: int, w: int, h: int, fill: tuple[int, ...]) -> None:
        self.x0, self.y0 = x0, y0
        self.image = Image.new("RGBA", (w * _SS, h * _SS), fill)
        self.draw = ImageDraw.Draw(self.image)

    def box(self, cx: float, cy: float, rx: float, ry: float) -> tuple[float, ...]:
        s = _SS
        return (
            (cx - rx - self.x0) * s,
            (cy - ry - self.y0) * s,
            (cx + rx - self.x0) * s,
            (cy + ry - self.y0) * s,
        )

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, fill: RGB) -> None:
        self.draw.ellipse(self.box(cx, cy, rx, ry), fill=fill)

    def arc(
        self,
        ellipse: tuple[float, float, float, float],
        a0: float,
        a1: float,
        fill: RGB,
        width: float,
    ) -> None:
        """Arc of the ellipse (cx, cy, rx, ry), a0 to a1 degrees clockwise from 3 o'clock."""
        self.draw.arc(self.box(*ellipse), a0, a1, fill=fill, width=max(1, round(width * _SS)))

    def chord(
        self, ellipse: tuple[float, float, float, float], a0: float, a1: float, fill: RGB
    ) -> None:
        self.draw.chord(self.box(*ellipse), a0, a1, fill=fill)

    def rounded(self, x0: float, y0: float, x1: float, y1: float, radius: float, fill: RGB) -> None:
        s = _SS
        xy = ((x0 - self.x0) * s, (y0 - self.y0) * s, (x1 - self.x0) * s, (y1 - self.y0) * s)
        self.draw.rounded_rectangle(xy, radius=radius * s, fill=fill)

    def result(self) -> Image.Image:
        # Reduce premultiplied, or transparent (black) pixels darken the anti-aliased edges.
        return self.image.convert("RGBa").reduce(_SS).convert("RGBA")


class FaceRenderer:
    """Renders the demo avatar as I420 ``width`` x ``height`` (both even) into one reused buffer.

    Not thread-safe; one renderer per video stream.
    """

    def __init__(
        self, width: int, height: int, *, test_patch: bool = True, green: bool = False
    ) -> None:
        # test_patch: draw the known colour patch tests measure (the simulators do; the
        # user-facing demo does not).  green: on a solid green screen, with no caption band
        # (as LiveAvatar's green-background avatars), for keying.
        self.test_patch = test_patch
        self.green = green
        if width % 2 or height % 2 or width < 64 or height < 64:
            raise ValueError(f"FaceRenderer needs even dimensions >= 64, got {width}x{height}")
        self.width, self.height = width, height
        self._buf: U8 = np.empty(i420_size(width, height), dtype=np.uint8)
        cw, ch = width // 2, height // 2
        self._y = self._buf[: width * height].reshape(height, width)
        self._u = self._buf[width * height : width * height + cw * ch].reshape(ch, cw)
        self._v = self._buf[width * height + cw * ch :].reshape(ch, cw)

        self._layout()
        background = self._background()
        head, shoulders = self._figure_layers()
        self._draw_static(background, head, shoulders)
        self._bobs = [self._bob_sprite(background, head, shoulders, d) for d in self._bob_offsets]
        self._eyes = [self._eye_sprite(state) for state in range(3)]
        self._mouths = [self._mouth_sprite(i) for i in range(_MOUTH_SHAPES)]
        self._prepare_captions(background)
        self._show_caption("")

    def _draw_static(
        self, background: Image.Image, head: Image.Image, shoulders: Image.Image
    ) -> None:
        """The static picture into the buffer: background, figure at rest, empty caption strip,
        test patch; and what the stamp and the patch cover, for redrawing."""
        width, height = self.width, self.height
        static = background.copy()
        static.alpha_composite(head, dest=(self._rx0, self._ry0))
        static.alpha_composite(shoulders, dest=(self._rx0, self._ry0))
        static_planes = _to_planes(static)
        for dst, src in zip((self._y, self._u, self._v), static_planes, strict=True):
            dst[...] = src
        stamp_w, stamp_h = marker.stamp_size(width, height)
        # Below about 280x40 there is no room for a stamp: render() then leaves it out.
        self.can_stamp = stamp_w <= width and stamp_h <= height
        sw = min(stamp_w + stamp_w % 2, width)
        sh = min(stamp_h + stamp_h % 2, height)
        self._stamp_rest = self._crop(static_planes, 0, 0, sw, sh)
        self._stamp_drawn = False

        px, py, pw, ph = marker.test_patch_box(width, height)
        self._patch_at = (px, py)
        self._patch = _to_planes(Image.new("RGB", (pw, ph), marker.TEST_PATCH_RGB))
        if self.test_patch:
            self._blit(self._patch, px, py)

    def _prepare_captions(self, background: Image.Image) -> None:
        """The caption strip's font, colours and caches."""
        size = max(min(10, self._cap_h - 2), round(self._cap_h * 0.30))
        self._font = ImageFont.load_default(size=size)
        self._line_h = min(_even(size * 1.25), self._cap_h)
        strip = background.crop((0, self._cap_top, self.width, self.height))
        self._strip_planes = _to_planes(strip)
        text_planes = _to_planes(Image.new("RGB", (2, 2), TEXT))
        self._text_yuv = (
            int(text_planes[0][0, 0]),
            int(text_planes[1][0, 0]),
            int(text_planes[2][0, 0]),
        )
        self._space = float(self._font.getlength(" "))
        self._advance_cache: dict[str, float] = {}
        self._word_cache: dict[str, U8] = {}
        self._mask_cache: OrderedDict[tuple[str, ...], tuple[U8, U8]] = OrderedDict()
        self._caption_cache: OrderedDict[tuple[tuple[str, ...], ...], Planes] = OrderedDict()
        self._caption_shown: str | None = None
        self._layout_text = ""
        self._layout_lines: list[tuple[list[str], float]] = []  # (words, width) per line

    # ------------------------------------------------------------------ layout and drawing

    def _layout(self) -> None:
        w, h = self.width, self.height
        u = min(float(h), w * 9.0 / 16.0)
        self._unit = u
        self._cap_h = _even(h * 0.16)
        self._cap_top = h - self._cap_h
        self._cx = w / 2.0
        self._r = 0.2 * u
        self._cy = self._cap_top - 0.435 * u
        amp = max(2, _even(h / 120.0))
        self._bob_offsets = list(range(-amp, amp + 1, 2))
        r = self._r
        self._rx0 = max(0, _even(self._cx - 0.47 * u))
        self._rx1 = min(w, _even(self._cx + 0.47 * u))
        self._ry0 = max(0, _even(self._cy - 1.2 * r - amp))
        self._ry1 = self._cap_top
        # Sprite boxes (bob 0), picture coordinates, even.
        self._eye_box = (
            _even(self._cx - 0.58 * r),
            _even(self._cy - 0.34 * r),
            _even(self._cx + 0.58 * r),
            _even(self._cy + 0.08 * r),
        )
        self._mouth_box = (
            _even(self._cx - 0.36 * r),
            _even(self._cy + 0.24 * r),
            _even(self._cx + 0.36 * r),
            _even(self._cy + 0.72 * r),
        )

    def _background(self) -> Image.Image:
        w, h = self.width, self.height
        if self.green:
            return Image.new("RGBA", (w, h), (*GREEN_SCREEN, 255))
        # Smooth, so it is computed at a quarter of the size and scaled up.
        sw, sh = max(2, w // 4), max(2, h // 4)
        ys = np.linspace(0.0, 1.0, sh, dtype=np.float32)[:, None, None]
        top = np.array(BG_TOP, dtype=np.float32)
        bottom = np.array(BG_BOTTOM, dtype=np.float32)
        rgb = np.broadcast_to(top + (bottom - top) * ys, (sh, sw, 3)).copy()
        # A soft glow behind the head.
        scale = self._unit * 0.55
        yy = ((np.arange(sh, dtype=np.float32)[:, None] + 0.5) * h / sh - self._cy) / scale
        xx = ((np.arange(sw, dtype=np.float32)[None, :] + 0.5) * w / sw - self._cx) / scale
        glow = np.exp(-(xx * xx + yy * yy))[:, :, None] * 0.35
        rgb += (np.array(GLOW, dtype=np.float32) - rgb) * glow
        small = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
        image = small.resize((w, h), Image.Resampling.BILINEAR).convert("RGBA")
        draw = ImageDraw.Draw(image)
        draw.rectangle((0, self._cap_top, w, h), fill=BAND)
        draw.rectangle((0, self._cap_top, w, self._cap_top + max(2, _even(h / 240.0))), fill=ACCENT)
        return image

    def _figure_layers(self) -> tuple[Image.Image, Image.Image]:
        """(head, shoulders) as transparent RGBA images of the figure region, figure at rest."""
        x0, y0 = self._rx0, self._ry0
        rw, rh = self._rx1 - x0, self._ry1 - y0
        cx, cy, r = self._cx, self._cy, self._r

        head = _Canvas(x0, y0, rw, rh, (0, 0, 0, 0))
        head.rounded(cx - 0.3 * r, cy + 0.6 * r, cx + 0.3 * r, cy + 1.45 * r, 0.1 * r, SKIN_SHADE)
        head.ellipse(cx, cy - 0.1 * r, 1.06 * r, 1.0 * r, HAIR)  # hair behind the head
        for side in (-1, 1):
            head.ellipse(cx + side * 0.98 * r, cy + 0.05 * r, 0.16 * r, 0.2 * r, SKIN_SHADE)  # ears
        head.ellipse(cx, cy, r, r, SKIN)
        head.chord((cx, cy - 0.02 * r, 1.03 * r, 1.03 * r), 208, 332, HAIR)  # fringe
        for side in (-1, 1):
            ex = cx + side * 0.38 * r
            head.arc((ex, cy - 0.38 * r, 0.16 * r, 0.08 * r), 200, 340, HAIR, 0.05 * r)  # brows
            head.ellipse(cx + side * 0.62 * r, cy + 0.3 * r, 0.12 * r, 0.08 * r, BLUSH)
        head.ellipse(cx, cy + 0.14 * r, 0.07 * r, 0.05 * r, SKIN_SHADE)  # nose

        shoulders = _Canvas(x0, y0, rw, rh, (0, 0, 0, 0))
        top = cy + 1.3 * r
        shoulders.rounded(cx - 1.95 * r, top, cx + 1.95 * r, top + 2.4 * r, 0.9 * r, SHIRT)
        shoulders.chord((cx, top - 0.02 * r, 0.42 * r, 0.3 * r), 0, 180, SKIN_SHADE)  # collar
        shoulders.arc((cx, top - 0.02 * r, 0.48 * r, 0.36 * r), 10, 170, SHIRT_DARK, 0.06 * r)
        return head.result(), shoulders.result()

    def _bob_sprite(
        self, background: Image.Image, head: Image.Image, shoulders: Image.Image, d: int
    ) -> Planes:
        box = (self._rx0, self._ry0, self._rx1, self._ry1)
        region = background.crop(box)
        if d >= 0:
            region.alpha_composite(head, dest=(0, d))
        else:
            region.alpha_composite(head, source=(0, -d))
        region.alpha_composite(shoulders)
        return _to_planes(region)

    def _sprite_canvas(self, box: tuple[int, int, int, int]) -> _Canvas:
        x0, y0, x1, y1 = box
        return _Canvas(x0, y0, x1 - x0, y1 - y0, (*SKIN, 255))

    def _eye_sprite(self, state: int) -> Planes:
        """0 open, 1 half closed, 2 closed."""
        c = self._sprite_canvas(self._eye_box)
        r, cy = self._r, self._cy - 0.12 * self._r
        for side in (-1, 1):
            ex = self._cx + side * 0.38 * r
            if state == 0:
                c.ellipse(ex, cy, 0.1 * r, 0.14 * r, INK)
                c.ellipse(ex + 0.035 * r, cy - 0.05 * r, 0.035 * r, 0.035 * r, TEETH)
            elif state == 1:
                c.chord((ex, cy, 0.1 * r, 0.14 * r), 0, 180, INK)
                c.arc((ex, cy + 0.005 * r, 0.12 * r, 0.02 * r), 180, 360, INK, 0.035 * r)
            else:
                c.arc((ex, cy - 0.02 * r, 0.12 * r, 0.1 * r), 15, 165, INK, 0.04 * r)
        return _to_planes(c.result())

    def _mouth_sprite(self, index: int) -> Planes:
        c = self._sprite_canvas(self._mouth_box)
        r, mx, my = self._r, self._cx, self._cy + 0.46 * self._r
        if index == 0:
            c.arc((mx, my - 0.12 * r, 0.24 * r, 0.14 * r), 25, 155, MOUTH, 0.045 * r)
        else:
            k = index / (_MOUTH_SHAPES - 1)
            rx, ry = (0.17 + 0.07 * k) * r, (0.035 + 0.15 * k) * r
            c.ellipse(mx, my, rx, ry, MOUTH)
            c.ellipse(mx, my + 0.5 * ry, 0.6 * rx, 0.42 * ry, TONGUE)
            if k >= 0.4:
                c.chord((mx, my, rx, ry), 205, 335, TEETH)
        return _to_planes(c.result())

    def _advance(self, word: str) -> float:
        """Width of ``word`` in pixels (cached: words repeat)."""
        adv = self._advance_cache.get(word)
        if adv is None:
            adv = float(self._font.getlength(word))
            if len(self._advance_cache) >= _WORD_CACHE:
                self._advance_cache.clear()
            self._advance_cache[word] = adv
        return adv

    def _word_mask(self, word: str) -> U8:
        """Coverage (0..255) of one word, drawn ``_PAD`` px in from the left, cached."""
        mask = self._word_cache.get(word)
        if mask is None:
            image = Image.new("L", (math.ceil(self._advance(word)) + 2 * _PAD, self._line_h), 0)
            ImageDraw.Draw(image).text(
                (_PAD, self._line_h / 2.0), word, font=self._font, fill=255, anchor="lm"
            )
            mask = np.asarray(image, dtype=np.uint8)
            if len(self._word_cache) >= _WORD_CACHE:
                self._word_cache.clear()
            self._word_cache[word] = mask
        return mask

    def _line_mask(self, line: tuple[str, ...]) -> tuple[U8, U8]:
        """Coverage of one caption line, full size and 2x2-averaged for chroma; even-sized.

        Composed from per-word masks, so a new word costs one small Pillow draw."""
        cached = self._mask_cache.get(line)
        if cached is not None:
            self._mask_cache.move_to_end(line)
            return cached
        total = sum(self._advance(w) for w in line) + self._space * (len(line) - 1)
        width = min(self.width, _even(total + 2 * _PAD + 1))
        mask = np.zeros((self._line_h, width), dtype=np.uint8)
        x = 0.0
        for word in line:
            part = self._word_mask(word)
            x0 = round(x)
            dst = mask[:, x0 : x0 + part.shape[1]]
            np.maximum(dst, part[:, : dst.shape[1]], out=dst)
            x += self._advance(word) + self._space
        wide = mask.astype(np.uint16)
        quad = wide[0::2, 0::2] + wide[1::2, 0::2] + wide[0::2, 1::2] + wide[1::2, 1::2]
        result = (mask, ((quad + 2) // 4).astype(np.uint8))
        self._mask_cache[line] = result
        if len(self._mask_cache) > 2 * _CAPTION_CACHE:
            self._mask_cache.popitem(last=False)
        return result

    def _caption_planes(self, lines: tuple[tuple[str, ...], ...]) -> Planes:
        """The caption strip with ``lines`` centred on it: text coverage masks blended into the
        strip's I420 planes (no colour conversion per caption); cached by lines."""
        cached = self._caption_cache.get(lines)
        if cached is not None:
            self._caption_cache.move_to_end(lines)
            return cached
        y, u, v = (plane.copy() for plane in self._strip_planes)
        ty, tu, tv = self._text_yuv
        mid = self._cap_h / 2.0 + max(2, _even(self.height / 240.0)) / 2.0
        first = mid - len(lines) * self._line_h / 2.0
        for i, line in enumerate(lines):
            mask, chroma = self._line_mask(line)
            mh, mw = mask.shape
            x0 = (self.width - mw) // 4 * 2
            y0 = max(0, min(self._cap_h - mh, _even(first + i * self._line_h)))
            _blend(y[y0 : y0 + mh, x0 : x0 + mw], mask, ty)
            _blend(u[y0 // 2 : (y0 + mh) // 2, x0 // 2 : (x0 + mw) // 2], chroma, tu)
            _blend(v[y0 // 2 : (y0 + mh) // 2, x0 // 2 : (x0 + mw) // 2], chroma, tv)
        planes = (y, u, v)
        self._caption_cache[lines] = planes
        if len(self._caption_cache) > _CAPTION_CACHE:
            self._caption_cache.popitem(last=False)
        return planes

    def _fit_word(self, word: str, max_w: float) -> str:
        if self._advance(word) <= max_w:
            return word
        while word and self._font.getlength(word + "…") > max_w:
            word = word[:-1]
        return word + "…"

    def _wrap(self, caption: str) -> list[tuple[str, ...]]:
        """The last lines of ``caption`` laid out from its start, so lines stay put while words
        are added; a caption that extends the previous one by whole words is laid out
        incrementally (only the new words are measured)."""
        max_w = self.width * 0.9
        rest = caption[len(self._layout_text) :]
        if self._layout_text and caption.startswith(self._layout_text) and rest[:1].isspace():
            lines = self._layout_lines
        else:
            lines = []
            rest = caption
            if len(rest) > _MAX_CAPTION_CHARS:  # only the tail can show; start it at a word
                rest = rest[-_MAX_CAPTION_CHARS:].split(None, 1)[-1]
        for word in rest.split():
            word = self._fit_word(word, max_w)
            adv = self._advance(word)
            if lines and lines[-1][1] + self._space + adv <= max_w:
                words, width = lines[-1]
                lines[-1] = ([*words, word], width + self._space + adv)
            else:
                lines.append(([word], adv))
        if len(lines) > 4 * _CAPTION_LINES:
            del lines[:-_CAPTION_LINES]
        self._layout_text = caption
        self._layout_lines = lines
        return [tuple(words) for words, _ in lines[-_CAPTION_LINES:]]

    def _show_caption(self, caption: str) -> None:
        lines = tuple(self._wrap(caption)) if caption.strip() else ()
        if not caption.strip():
            self._layout_text, self._layout_lines = "", []
        self._blit(self._caption_planes(lines), 0, self._cap_top)
        self._caption_shown = caption

    # ------------------------------------------------------------------ per frame

    @staticmethod
    def _crop(planes: Planes, x: int, y: int, w: int, h: int) -> Planes:
        py, pu, pv = planes
        return (
            py[y : y + h, x : x + w].copy(),
            pu[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2].copy(),
            pv[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2].copy(),
        )

    def _blit(self, planes: Planes, x: int, y: int) -> None:
        sy, su, sv = planes
        h, w = sy.shape
        self._y[y : y + h, x : x + w] = sy
        x2, y2 = x // 2, y // 2
        self._u[y2 : y2 + h // 2, x2 : x2 + w // 2] = su
        self._v[y2 : y2 + h // 2, x2 : x2 + w // 2] = sv

    def render(self, *, mouth_open: float, caption: str, t: float, stamp: Stamp | None) -> U8:
        """The picture for this instant, as the flat I420 buffer this renderer reuses.

        ``mouth_open`` 0..1; ``caption`` the words spoken so far (the latest two lines show);
        ``t`` seconds, drives blinking and the idle bob; ``stamp`` is drawn top-left when given
        and the picture has room for it (``can_stamp``; see
        :func:`bridge.synthetic.stamp.stamp_size`).  The returned view is overwritten by the next
        call.
        """
        if self._stamp_drawn and stamp is None:
            self._blit(self._stamp_rest, 0, 0)
            self._stamp_drawn = False

        # Idle bob: a slow sine, quantised to the pre-rendered even offsets.
        n = len(self._bob_offsets)
        phase = 0.5 + 0.5 * math.sin(2.0 * math.pi * t / 3.6) if math.isfinite(t) else 0.5
        bob = min(n - 1, int(phase * n))
        d = self._bob_offsets[bob]
        self._blit(self._bobs[bob], self._rx0, self._ry0)

        # Blink about every 4.2 s: half, closed, half.
        blink = (t % 4.2) if math.isfinite(t) else 1.0
        eye = 2 if 0.05 <= blink < 0.15 else 1 if blink < 0.2 else 0
        self._blit(self._eyes[eye], self._eye_box[0], self._eye_box[1] + d)

        level = mouth_open if math.isfinite(mouth_open) else 0.0
        shape = round(min(1.0, max(0.0, level)) * (_MOUTH_SHAPES - 1))
        self._blit(self._mouths[shape], self._mouth_box[0], self._mouth_box[1] + d)

        if caption != self._caption_shown:
            self._show_caption(caption)
        if self.test_patch:
            self._blit(self._patch, *self._patch_at)
        if stamp is not None and self.can_stamp:
            marker.stamp_i420(self._buf, self.width, self.height, stamp)
            self._stamp_drawn = True
        return self._buf
