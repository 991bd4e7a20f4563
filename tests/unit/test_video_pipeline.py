"""Video conversion: geometry, colour, letterbox bars, and libyuv agreeing with swscale."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.media.frames import VideoFrame, i420_size
from bridge.pipeline import libyuv
from bridge.pipeline.video import Box, Fit, PixelFormat, VideoConverter, fit
from bridge.synthetic import stamp as marker
from bridge.synthetic.face import FaceRenderer

needs_libyuv = pytest.mark.skipif(
    libyuv.load() is None, reason="libyuv not installed: sudo apt install libyuv0"
)


def avatar_frame(width: int, height: int, frame: int = 7) -> VideoFrame:
    face = FaceRenderer(width, height)
    data = face.render(mouth_open=0.4, caption="", t=0.0, stamp=marker.Stamp(frame, 1234)).copy()
    return VideoFrame(width, height, data, arrived=0.0)


@pytest.mark.parametrize(
    ("src", "dst", "mode", "src_box", "dst_box"),
    [
        ((1280, 720), (1920, 1080), "letterbox", Box(0, 0, 1280, 720), Box(0, 0, 1920, 1080)),
        ((640, 480), (1280, 720), "letterbox", Box(0, 0, 640, 480), Box(160, 0, 960, 720)),
        ((640, 480), (1280, 720), "crop", Box(0, 60, 640, 360), Box(0, 0, 1280, 720)),
        ((640, 480), (1280, 720), "stretch", Box(0, 0, 640, 480), Box(0, 0, 1280, 720)),
        ((720, 1280), (1280, 720), "letterbox", Box(0, 0, 720, 1280), Box(438, 0, 404, 720)),
    ],
)
def test_fit_geometry(
    src: tuple[int, int], dst: tuple[int, int], mode: Fit, src_box: Box, dst_box: Box
) -> None:
    assert fit(*src, *dst, mode) == (src_box, dst_box)


def luma(buf: np.ndarray, width: int, height: int, fmt: PixelFormat) -> np.ndarray:
    return (
        marker.luma_of_yuyv(buf, width, height)
        if fmt == "YUYV"
        else marker.luma_of_i420(buf, width, height)
    )


def patch_rgb(
    buf: np.ndarray, width: int, height: int, fmt: PixelFormat, box: tuple[int, int, int, int]
) -> tuple[float, float, float]:
    if fmt == "YUYV":
        return marker.patch_rgb_from_yuyv(buf, width, height, box)
    return marker.patch_rgb_from_i420(buf, width, height, box)


@pytest.mark.parametrize("engine", ["libyuv", "swscale"])
@pytest.mark.parametrize("fmt", ["YUYV", "I420"])
@pytest.mark.parametrize(
    ("src", "dst"),
    [((1280, 720), (1280, 720)), ((1280, 720), (1920, 1080)), ((640, 360), (1280, 720))],
)
def test_stamp_and_colour_survive_conversion(
    engine: str, fmt: PixelFormat, src: tuple[int, int], dst: tuple[int, int]
) -> None:
    if engine == "libyuv" and libyuv.load() is None:
        pytest.skip("libyuv not installed: sudo apt install libyuv0")
    converter = VideoConverter(
        width=dst[0],
        height=dst[1],
        pixel_format=fmt,
        fit_mode="letterbox",
        use_libyuv=engine == "libyuv",
    )
    assert converter.engine == engine
    out = converter.convert(avatar_frame(*src))
    assert out.size == (dst[0] * dst[1] * 2 if fmt == "YUYV" else i420_size(*dst))
    assert marker.decode(luma(out, *dst, fmt)) == marker.Stamp(7, 1234)
    scale = dst[0] / src[0]
    x, y, w, h = marker.test_patch_box(*src)
    box = (round(x * scale), round(y * scale), round(w * scale), round(h * scale))
    rgb = patch_rgb(out, *dst, fmt, box)
    assert all(abs(a - b) <= 4 for a, b in zip(rgb, marker.TEST_PATCH_RGB, strict=True)), rgb


@pytest.mark.parametrize("use_libyuv", [True, False])
def test_letterbox_bars_are_black_and_the_picture_sits_between(use_libyuv: bool) -> None:
    if use_libyuv and libyuv.load() is None:
        pytest.skip("libyuv not installed: sudo apt install libyuv0")
    converter = VideoConverter(
        width=1280, height=720, pixel_format="YUYV", fit_mode="letterbox", use_libyuv=use_libyuv
    )
    out = converter.convert(avatar_frame(640, 480))
    y = marker.luma_of_yuyv(out, 1280, 720)
    packed = out.reshape(720, 2560)
    assert (y[:, :160] == 16).all() and (y[:, 1120:] == 16).all()
    assert (packed[:, 1:320:2] == 128).all()  # neutral chroma in the bars
    assert marker.decode(y, content_box=(160, 0, 960, 720)) == marker.Stamp(7, 1234)


def test_same_size_i420_is_not_copied() -> None:
    frame = avatar_frame(640, 360)
    converter = VideoConverter(width=640, height=360, pixel_format="I420", fit_mode="letterbox")
    assert converter.convert(frame) is frame.data


@needs_libyuv
@pytest.mark.parametrize("fmt", ["YUYV", "I420"])
def test_libyuv_and_swscale_agree(fmt: PixelFormat) -> None:
    frame = avatar_frame(854, 480)
    outs = [
        VideoConverter(
            width=1280, height=720, pixel_format=fmt, fit_mode="letterbox", use_libyuv=flag
        ).convert(frame)
        for flag in (True, False)
    ]
    diff = np.abs(outs[0].astype(np.int16) - outs[1].astype(np.int16))
    assert diff.mean() < 1.5  # different filters, same picture


def test_size_change_repaints_the_bars() -> None:
    converter = VideoConverter(width=1280, height=720, pixel_format="I420", fit_mode="letterbox")
    converter.convert(avatar_frame(1280, 720))
    out = converter.convert(avatar_frame(640, 480))
    y = marker.luma_of_i420(out, 1280, 720)
    assert (y[:, :160] == 16).all()  # the old, wider picture is gone from the bars
