"""The frame stamp and colour patch survive scaling, letterboxing, YUYV and VP8/H264."""

from __future__ import annotations

import fractions
from typing import Any, cast

import av
import numpy as np
import pytest
from av.video.codeccontext import VideoCodecContext
from PIL import Image, ImageDraw

from bridge.media.frames import U8, i420_size
from bridge.synthetic import stamp as marker
from bridge.synthetic.face import FaceRenderer
from bridge.synthetic.stamp import Stamp, decode, luma_of_i420, luma_of_yuyv

SIZES = [(1280, 720), (854, 480), (640, 360)]
EDGE_STAMPS = [
    Stamp(0, 0, False),
    Stamp(2**24 - 1, 2**32 - 1, True),
    Stamp(123_456, 4_000_000_000, True),
    Stamp(0xA5A5A5, 0x5A5A5A5A, False),
]


def _busy_picture(width: int, height: int, seed: int = 0) -> U8:
    """A noisy I420 picture, so the stamp is not decoded off a clean background."""
    rng = np.random.default_rng(seed)
    return rng.integers(40, 200, size=i420_size(width, height), dtype=np.uint8)


def _frame(buf: U8, width: int, height: int) -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(buf.reshape(height * 3 // 2, width), format="yuv420p")


def _i420(frame: av.VideoFrame) -> U8:
    return np.asarray(frame.to_ndarray(), dtype=np.uint8).reshape(-1)


@pytest.mark.parametrize(("width", "height"), SIZES)
@pytest.mark.parametrize("stamp", EDGE_STAMPS)
def test_round_trip(width: int, height: int, stamp: Stamp) -> None:
    buf = _busy_picture(width, height)
    marker.stamp_i420(buf, width, height, stamp)
    assert decode(luma_of_i420(buf, width, height)) == stamp
    assert decode(luma_of_i420(buf, width, height), (0, 0, width, height)) == stamp


def test_stamp_touches_only_its_corner() -> None:
    width, height = 640, 360
    buf = _busy_picture(width, height)
    before = buf.copy()
    marker.stamp_i420(buf, width, height, Stamp(5, 6, True))
    sw, sh = marker.stamp_size(width, height)
    y0, y1 = luma_of_i420(before, width, height), luma_of_i420(buf, width, height)
    changed = np.argwhere(y0 != y1)
    assert changed[:, 0].max() < sh
    assert changed[:, 1].max() < sw
    assert set(np.unique(y1[:sh, :sw]).tolist()) == {marker.BLACK, marker.WHITE}
    chroma = buf[width * height :].reshape(height, width // 2)  # U rows then V rows
    assert (chroma[: sh // 2, : sw // 2] == 128).all()
    assert (chroma[height // 2 : height // 2 + sh // 2, : sw // 2] == 128).all()


def test_stamp_rejects_a_picture_too_small() -> None:
    buf = np.zeros(i420_size(128, 96), dtype=np.uint8)
    with pytest.raises(ValueError, match="too small"):
        marker.stamp_i420(buf, 128, 96, Stamp(1, 2))


@pytest.mark.parametrize(("frame", "sent_ms"), [(-1, 0), (2**24, 0), (0, -1), (0, 2**32)])
def test_stamp_fields_are_range_checked(frame: int, sent_ms: int) -> None:
    with pytest.raises(ValueError, match="must be in"):
        Stamp(frame, sent_ms)


@pytest.mark.parametrize(("dst_w", "dst_h"), [(1920, 1080), (640, 360), (1280, 720)])
@pytest.mark.parametrize(("src_w", "src_h"), [(1280, 720), (854, 480)])
def test_survives_scaling(src_w: int, src_h: int, dst_w: int, dst_h: int) -> None:
    stamp = Stamp(987_654, 3_210_987_654, True)
    buf = _busy_picture(src_w, src_h, seed=1)
    marker.stamp_i420(buf, src_w, src_h, stamp)
    scaled = _frame(buf, src_w, src_h).reformat(width=dst_w, height=dst_h, format="yuv420p")
    assert decode(luma_of_i420(_i420(scaled), dst_w, dst_h)) == stamp


def test_survives_letterbox_and_pillarbox() -> None:
    stamp = Stamp(42, 4242, False)
    buf = _busy_picture(1280, 720, seed=2)
    marker.stamp_i420(buf, 1280, 720, stamp)
    # 16:9 into a 4:3 sink: 960x540 at y=90 of 960x720.
    small = _frame(buf, 1280, 720).reformat(width=960, height=540, format="gray")
    sink = np.full((720, 960), 16, dtype=np.uint8)
    sink[90:630, :] = small.to_ndarray()
    assert decode(sink, (0, 90, 960, 540)) == stamp
    assert decode(sink) is None  # the picture is not at the sink's corner
    # 16:9 into a 21:9 sink: 1280x720 at x=320 of 1920x720 (white bars, to be mean).
    wide = np.full((720, 1920), 235, dtype=np.uint8)
    wide[:, 320:1600] = luma_of_i420(buf, 1280, 720)
    assert decode(wide, (320, 0, 1280, 720)) == stamp


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_survives_yuyv_conversion(width: int, height: int) -> None:
    stamp = Stamp(77, 1_000_000, True)
    buf = _busy_picture(width, height, seed=3)
    marker.stamp_i420(buf, width, height, stamp)
    yuyv = _frame(buf, width, height).reformat(format="yuyv422").to_ndarray()
    flat = np.asarray(yuyv, dtype=np.uint8).reshape(-1)
    luma = luma_of_yuyv(flat, width, height)
    assert luma.shape == (height, width)
    assert np.shares_memory(luma, flat)  # a view, not a copy
    assert np.array_equal(luma, luma_of_i420(buf, width, height))
    assert decode(luma) == stamp


def test_luma_views_do_not_copy() -> None:
    buf = np.zeros(i420_size(64, 48), dtype=np.uint8)
    assert np.shares_memory(luma_of_i420(buf, 64, 48), buf)
    with pytest.raises(ValueError, match="YUYV"):
        luma_of_yuyv(np.zeros(10, dtype=np.uint8), 64, 48)


def _codec_round_trip(codec: str, width: int, height: int, bit_rate: int, n: int) -> list[object]:
    """Encode n face frames with changing stamps, decode them, return what decode() reads."""
    face = FaceRenderer(width, height)
    enc = cast(VideoCodecContext, av.CodecContext.create(codec, "w"))
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.bit_rate = bit_rate
    enc.time_base = fractions.Fraction(1, 30)
    enc.framerate = fractions.Fraction(30, 1)
    if codec == "libx264":
        enc.options = {"preset": "ultrafast", "tune": "zerolatency"}
    else:
        enc.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    dec = av.CodecContext.create("h264" if codec == "libx264" else "vp8", "r")
    seen: list[object] = []

    def take(packets: list[av.Packet[Any]]) -> None:
        for packet in packets:
            for picture in dec.decode(packet):
                seen.append(decode(np.asarray(picture.to_ndarray(format="gray"))))

    for i in range(n):
        stamp = Stamp(i * 7919 % 2**24, (4_000_000_000 + 33 * i) % 2**32, i % 10 == 0)
        buf = face.render(mouth_open=(i % 6) / 5, caption=f"word {i}", t=i / 30, stamp=stamp)
        frame = _frame(buf, width, height)
        frame.pts = i
        take(enc.encode(frame))
    take(enc.encode(None))
    return seen


@pytest.mark.parametrize("codec", ["libvpx", "libx264"])
@pytest.mark.parametrize(
    ("width", "height", "bit_rate"), [(640, 360, 150_000), (1280, 720, 400_000)]
)
def test_survives_lossy_codec(codec: str, width: int, height: int, bit_rate: int) -> None:
    n = 30
    seen = _codec_round_trip(codec, width, height, bit_rate, n)
    expected = [
        Stamp(i * 7919 % 2**24, (4_000_000_000 + 33 * i) % 2**32, i % 10 == 0) for i in range(n)
    ]
    assert seen == expected


def _slate(width: int, height: int) -> U8:
    image = Image.new("L", (width, height), 20)
    ImageDraw.Draw(image).text((width // 3, height // 2), "Connecting…", fill=230)
    return np.asarray(image, dtype=np.uint8)


@pytest.mark.parametrize(
    "luma",
    [
        np.zeros((360, 640), dtype=np.uint8),
        np.full((360, 640), 16, dtype=np.uint8),
        np.full((360, 640), 235, dtype=np.uint8),
        np.full((360, 640), 128, dtype=np.uint8),
        np.random.default_rng(9).integers(0, 256, size=(720, 1280), dtype=np.uint8),
        _slate(1280, 720),
        np.zeros((8, 8), dtype=np.uint8),
    ],
    ids=["zeros", "black", "white", "grey", "noise", "slate", "tiny"],
)
def test_no_stamp_decodes_to_none(luma: U8) -> None:
    assert decode(luma) is None


def test_corrupted_stamp_decodes_to_none() -> None:
    width, height = 1280, 720
    buf = _busy_picture(width, height)
    marker.stamp_i420(buf, width, height, Stamp(1000, 2000, False))
    y = luma_of_i420(buf, width, height)
    p = marker.block_size(height)
    # Flip one data block (row 1, column 5): the checksum no longer matches.
    block = y[p : 2 * p, 5 * p : 6 * p]
    block[...] = marker.WHITE if block[0, 0] == marker.BLACK else marker.BLACK
    assert decode(y) is None
    # Break the guard instead: the white end-of-row block turns black.
    marker.stamp_i420(buf, width, height, Stamp(1000, 2000, False))
    y[0:p, 34 * p : 35 * p] = marker.BLACK
    assert decode(y) is None


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_patch_colour_survives_yuyv_conversion(width: int, height: int) -> None:
    buf = FaceRenderer(width, height).render(mouth_open=0, caption="", t=0, stamp=None)
    box = marker.test_patch_box(width, height)
    x, y, w, h = box
    assert x + w <= width and y + h <= height and w >= 16 and x % 2 == 0 and y % 2 == 0
    i420_rgb = marker.patch_rgb_from_i420(buf, width, height, box)
    yuyv = _frame(buf, width, height).reformat(format="yuyv422").to_ndarray()
    yuyv_rgb = marker.patch_rgb_from_yuyv(
        np.asarray(yuyv, dtype=np.uint8).reshape(-1), width, height, box
    )
    for got in (i420_rgb, yuyv_rgb):
        for channel, want in zip(got, marker.TEST_PATCH_RGB, strict=True):
            assert abs(channel - want) <= 6, (got, marker.TEST_PATCH_RGB)
    # And swscale's own conversion back to RGB agrees with the matrix used above.
    rgb = _frame(buf, width, height).to_ndarray(format="rgb24")
    cx, cy = x + w // 2, y + h // 2
    assert np.abs(rgb[cy, cx].astype(int) - np.array(i420_rgb)).max() <= 2


def test_test_patch_box_is_not_collected_as_a_test() -> None:
    assert getattr(marker.test_patch_box, "__test__", True) is False
