"""A machine-readable stamp in the picture, and a known colour patch, for end-to-end media tests.

The demo avatar draws a :class:`Stamp` (frame number, send time, A/V sync flag) into the top-left
corner of every picture.  Tests read it back at the sink — after scaling, letterboxing, YUYV
conversion and lossy VP8/H264 compression — to check frame order, gaps, latency and A/V sync.

Layout, in blocks of ``p = max(8, height // 45)`` pixels (luma only, Y=16 black / Y=235 white;
the chroma under the stamp is neutral 128)::

        col 0   1 … 32   33  34
  row 0  ■      ■ … ■    ■   □      top guard: 34 black blocks, then one white block
  row 1  ■      bits 0–31    ■   □      data row 0 (bit 0 leftmost)
  row 2  ■      bits 32–63   ■   □      data row 1
  row 3  ■      ■ … ■    ■   □      bottom guard
  row 4  □      □ … □    □   □      white quiet zone

The 64 bits, most significant first, are ``frame`` (24), ``sent_ms`` (32), ``sync`` (1) and a CRC-7
(polynomial x⁷+x³+1, initial value 0x7F, MSB first) over those 57 bits taken as a 64-bit
big-endian integer; a white block is a 1.

:func:`decode` is self-clocking, so it needs neither the source resolution nor the block size: it
finds the height of the black left column (4 blocks) and then the length of the black top row
(34 blocks) and samples every block centre from that pitch.  Every guard block must read as
expected and the CRC must match, so a picture without a stamp (a slate, the idle camera,
garbage) decodes to ``None``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bridge.media.frames import U8, i420_size

__all__ = [
    "TEST_PATCH_RGB",
    "Stamp",
    "block_size",
    "decode",
    "luma_of_i420",
    "luma_of_yuyv",
    "patch_rgb_from_i420",
    "patch_rgb_from_yuyv",
    "stamp_i420",
    "stamp_size",
    "test_patch_box",
    "yuv_to_rgb",
]

BLACK = 16
WHITE = 235
THRESHOLD = 128.0

GRID_COLS = 35
GRID_ROWS = 5
DATA_COLS = 32
_FRAME_BITS = 24
_MS_BITS = 32
_CRC_BITS = 7
_CRC_POLY = 0x09
_CRC_INIT = 0x7F  # non-zero, so an all-black data area does not carry a valid checksum

FRAME_LIMIT = 1 << _FRAME_BITS
SENT_MS_LIMIT = 1 << _MS_BITS

# The guard/quiet-zone template: True = white.  Data cells are overwritten per stamp.
_TEMPLATE_WHITE = np.zeros((GRID_ROWS, GRID_COLS), dtype=bool)
_TEMPLATE_WHITE[:, GRID_COLS - 1] = True
_TEMPLATE_WHITE[GRID_ROWS - 1, :] = True
_DATA_MASK = np.zeros((GRID_ROWS, GRID_COLS), dtype=bool)
_DATA_MASK[1:3, 1 : 1 + DATA_COLS] = True
_GUARD_MASK = ~_DATA_MASK
_TEMPLATE_LUMA = np.where(_TEMPLATE_WHITE, WHITE, BLACK).astype(np.uint8)

# Known colour patch (top-right corner) for colour-conversion checks.
TEST_PATCH_RGB: tuple[int, int, int] = (200, 60, 40)


@dataclass(frozen=True, slots=True)
class Stamp:
    """What a picture carries: its frame number, when it was sent and whether it is a sync mark."""

    frame: int  # 0 .. 2**24-1
    sent_ms: int  # wall-clock milliseconds modulo 2**32
    sync: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.frame < FRAME_LIMIT:
            raise ValueError(f"frame must be in 0..{FRAME_LIMIT - 1}, got {self.frame}")
        if not 0 <= self.sent_ms < SENT_MS_LIMIT:
            raise ValueError(f"sent_ms must be in 0..{SENT_MS_LIMIT - 1}, got {self.sent_ms}")


def block_size(height: int) -> int:
    """Block pitch in pixels of the stamp drawn into a picture ``height`` pixels high."""
    return max(8, height // 45)


def stamp_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) in pixels of the stamp area, quiet zone included (the picture width is
    accepted for symmetry; the size depends on the height only)."""
    del width
    p = block_size(height)
    return GRID_COLS * p, GRID_ROWS * p


def _make_crc7_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        c = byte
        for _ in range(8):
            c = ((c << 1) ^ (_CRC_POLY << 1)) & 0xFF if c & 0x80 else (c << 1) & 0xFF
        table.append(c)
    return tuple(table)


_CRC7_TABLE = _make_crc7_table()


def _crc7(payload: int) -> int:
    """CRC-7 (MSB first) of ``payload`` taken as 8 big-endian bytes."""
    reg = _CRC_INIT << 1  # the 7-bit register, kept in the top bits of a byte
    for byte in payload.to_bytes(8, "big"):
        reg = _CRC7_TABLE[reg ^ byte]
    return reg >> 1


def _stamp_word(stamp: Stamp) -> int:
    payload = (stamp.frame << (_MS_BITS + 1)) | (stamp.sent_ms << 1) | int(stamp.sync)
    return (payload << _CRC_BITS) | _crc7(payload)


def _planes(buf: U8, width: int, height: int) -> tuple[U8, U8, U8]:
    if buf.ndim != 1 or buf.dtype != np.uint8:
        raise ValueError("expected a flat uint8 I420 buffer")
    if buf.size < i420_size(width, height):
        raise ValueError(f"buffer of {buf.size} bytes is too small for I420 {width}x{height}")
    cw, ch = (width + 1) // 2, (height + 1) // 2
    y_end = width * height
    u_end = y_end + cw * ch
    return (
        buf[:y_end].reshape(height, width),
        buf[y_end:u_end].reshape(ch, cw),
        buf[u_end : u_end + cw * ch].reshape(ch, cw),
    )


def stamp_i420(buf: U8, width: int, height: int, stamp: Stamp) -> None:
    """Draw ``stamp`` into the top-left corner of the flat I420 picture ``buf`` (in place).

    Raises ``ValueError`` when the picture is smaller than :func:`stamp_size`.
    """
    p = block_size(height)
    sw, sh = GRID_COLS * p, GRID_ROWS * p
    if width < sw or height < sh:
        raise ValueError(f"a {width}x{height} picture is too small for a {sw}x{sh} stamp")
    y, u, v = _planes(buf, width, height)

    grid = _TEMPLATE_LUMA.copy()
    bits = np.frombuffer(f"{_stamp_word(stamp):064b}".encode("ascii"), dtype=np.uint8) == ord("1")
    grid[1:3, 1 : 1 + DATA_COLS] = np.where(bits.reshape(2, DATA_COLS), WHITE, BLACK)
    # Blow the 5x35 grid up to pixels (a 45 kB temporary at 720p) and copy it in one go.
    y[:sh, :sw] = np.repeat(np.repeat(grid, p, axis=1), p, axis=0)
    cw, ch = (sw + 1) // 2, (sh + 1) // 2
    u[:ch, :cw] = 128
    v[:ch, :cw] = 128


def _first_rise(profile: npt.NDArray[np.float64], stop: int) -> float | None:
    """Sub-pixel position (pixel edges at integers) where ``profile`` first crosses the
    threshold upwards, searching ``profile[:stop]``; None unless it starts dark."""
    seg = profile[:stop]
    above = seg >= THRESHOLD
    if seg.size < 2 or not bool(above.any()):
        return None
    i = int(np.argmax(above))
    if i == 0:
        return None
    a, b = float(seg[i - 1]), float(seg[i])
    return i - 0.5 + (THRESHOLD - a) / (b - a)


def decode(
    y_plane: npt.NDArray[np.uint8], content_box: tuple[int, int, int, int] | None = None
) -> Stamp | None:
    """Read the stamp from a luma plane as shown at the sink.

    ``content_box`` is ``(x, y, w, h)``: where the avatar picture sits inside the sink frame
    (after letterboxing, cropping to fit or scaling); ``None`` means the whole frame.  The box's
    top-left corner must be the picture's top-left corner.  Returns ``None`` when there is no
    valid stamp.
    """
    if y_plane.ndim != 2:
        raise ValueError("decode() needs a 2-D luma plane")
    view = y_plane
    if content_box is not None:
        bx, by, bw, bh = content_box
        if bx < 0 or by < 0 or bw <= 0 or bh <= 0:
            raise ValueError(f"bad content_box {content_box}")
        view = y_plane[by : by + bh, bx : bx + bw]
    h, w = view.shape
    if h < 16 or w < 16:
        return None
    pitch = _grid_pitch(view)
    if pitch is None:
        return None
    return _read_grid(view, *pitch)


def _grid_pitch(view: npt.NDArray[np.uint8]) -> tuple[float, float] | None:
    """The stamp's block size (x, y) in pixels, from its black top row and left column."""
    h, w = view.shape
    # 1. Height of the black left column (4 blocks).  The smallest block any source height
    # gives is about h/51 (e.g. 8 px at 404p), so this band lies inside column 0.
    min_pitch = h / 51.0
    c0 = int(min_pitch * 0.25)
    c1 = max(c0 + 1, math.ceil(min_pitch * 0.65))
    column = view[:, c0:c1].mean(axis=1, dtype=np.float64)
    y_edge = _first_rise(column, h // 2)
    if y_edge is None:
        return None
    pitch_y = y_edge / 4.0
    if pitch_y < 2.0:
        return None

    # 2. Length of the black top row (34 blocks), measured along its middle.
    r0 = int(pitch_y * 0.25)
    r1 = max(r0 + 1, math.ceil(pitch_y * 0.75))
    row = view[r0:r1, :].mean(axis=0, dtype=np.float64)
    x_edge = _first_rise(row, w)
    if x_edge is None:
        return None
    pitch_x = x_edge / (GRID_COLS - 1)
    if pitch_x < 2.0 or not 0.5 <= pitch_x / pitch_y <= 2.0:
        return None
    if GRID_COLS * pitch_x > w + pitch_x * 0.5 or GRID_ROWS * pitch_y > h + pitch_y * 0.5:
        return None
    return pitch_x, pitch_y


def _read_grid(view: npt.NDArray[np.uint8], pitch_x: float, pitch_y: float) -> Stamp | None:
    """The stamp's blocks, checked against the template and the CRC."""
    h, w = view.shape
    # Mean of a small area around every block centre.
    hx, hy = int(pitch_x * 0.2), int(pitch_y * 0.2)
    xs = (np.arange(GRID_COLS) + 0.5) * pitch_x
    ys = (np.arange(GRID_ROWS) + 0.5) * pitch_y
    xi = np.clip(np.rint(xs)[:, None].astype(np.intp) + np.arange(-hx, hx + 1), 0, w - 1)
    yi = np.clip(np.rint(ys)[:, None].astype(np.intp) + np.arange(-hy, hy + 1), 0, h - 1)
    samples = view[yi[:, None, :, None], xi[None, :, None, :]]
    white = samples.mean(axis=(2, 3)) >= THRESHOLD

    if not bool(np.array_equal(white[_GUARD_MASK], _TEMPLATE_WHITE[_GUARD_MASK])):
        return None
    word = int.from_bytes(np.packbits(white[1:3, 1 : 1 + DATA_COLS]).tobytes(), "big")
    payload, crc = word >> _CRC_BITS, word & 0x7F
    if crc != _crc7(payload):
        return None
    return Stamp(
        frame=payload >> (_MS_BITS + 1),
        sent_ms=(payload >> 1) & (SENT_MS_LIMIT - 1),
        sync=bool(payload & 1),
    )


def luma_of_i420(buf: U8, width: int, height: int) -> U8:
    """The Y plane of a flat I420 buffer as a 2-D view (no copy)."""
    return buf[: width * height].reshape(height, width)


def luma_of_yuyv(buf: U8, width: int, height: int) -> U8:
    """The luma of a flat YUYV (Y0 U Y1 V) buffer as a strided 2-D view (no copy)."""
    if buf.size < width * height * 2 or width % 2:
        raise ValueError(f"not a YUYV {width}x{height} buffer")
    return buf[: width * height * 2].reshape(height, width * 2)[:, 0::2]


def test_patch_box(width: int, height: int) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` of the solid :data:`TEST_PATCH_RGB` square the demo avatar draws in the
    top-right corner: about a tenth of the height, even-aligned so chroma covers it exactly."""
    side = max(16, height // 10) // 2 * 2
    margin = max(2, height // 45) // 2 * 2
    x = max(0, width - side - margin) // 2 * 2
    return x, margin, side, side


# Not a test, despite its name: keep pytest from collecting it where it is imported by name.
setattr(test_patch_box, "__test__", False)  # noqa: B010 - mypy rejects attributes on functions


def yuv_to_rgb(y: float, u: float, v: float) -> tuple[float, float, float]:
    """BT.601 limited range YUV → RGB (the matrix FFmpeg's swscale uses by default)."""
    c, d, e = 255.0 / 219.0 * (y - 16.0), u - 128.0, v - 128.0
    r = c + 1.596 * e
    g = c - 0.392 * d - 0.813 * e
    b = c + 2.017 * d
    return (
        min(255.0, max(0.0, r)),
        min(255.0, max(0.0, g)),
        min(255.0, max(0.0, b)),
    )


def _centre(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """Even-aligned inner half of ``box`` as (x0, y0, x1, y1)."""
    x, y, w, h = box
    x0, y0 = (x + w // 4 + 1) // 2 * 2, (y + h // 4 + 1) // 2 * 2
    x1, y1 = (x + 3 * w // 4) // 2 * 2, (y + 3 * h // 4) // 2 * 2
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"patch box {box} is too small")
    return x0, y0, x1, y1


def patch_rgb_from_i420(
    buf: U8, width: int, height: int, box: tuple[int, int, int, int]
) -> tuple[float, float, float]:
    """Average RGB of the centre of ``box`` in a flat I420 picture."""
    yp, up, vp = _planes(buf, width, height)
    x0, y0, x1, y1 = _centre(box)
    return yuv_to_rgb(
        float(yp[y0:y1, x0:x1].mean()),
        float(up[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2].mean()),
        float(vp[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2].mean()),
    )


def patch_rgb_from_yuyv(
    buf: U8, width: int, height: int, box: tuple[int, int, int, int]
) -> tuple[float, float, float]:
    """Average RGB of the centre of ``box`` in a flat YUYV (Y0 U Y1 V) picture."""
    yp = luma_of_yuyv(buf, width, height)
    packed = buf[: width * height * 2].reshape(height, width * 2)
    up, vp = packed[:, 1::4], packed[:, 3::4]
    x0, y0, x1, y1 = _centre(box)
    return yuv_to_rgb(
        float(yp[y0:y1, x0:x1].mean()),
        float(up[y0:y1, x0 // 2 : x1 // 2].mean()),
        float(vp[y0:y1, x0 // 2 : x1 // 2].mean()),
    )
