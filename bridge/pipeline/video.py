"""I420 frames of any size → the camera's size and pixel format, aspect ratio kept.

One :class:`VideoConverter` per output configuration, used by one thread.  It owns the output
buffer (a canvas whose letterbox bars are painted once) and writes each frame into it with
libyuv (scale + pack straight into the strided destination) or, without libyuv, PyAV's
swscale through one reused ``VideoReformatter``.  Same size and I420 out: no work at all, the
frame's own buffer is the output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from bridge.media.frames import U8, VideoFrame, i420_size
from bridge.pipeline import libyuv

PixelFormat = Literal["YUYV", "I420"]
Fit = Literal["letterbox", "crop", "stretch"]


@dataclass(frozen=True, slots=True)
class Box:
    x: int
    y: int
    w: int
    h: int


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def fit(src_w: int, src_h: int, dst_w: int, dst_h: int, mode: Fit) -> tuple[Box, Box]:
    """(window of the source to use, window of the destination to fill), even-aligned."""
    whole_src, whole_dst = Box(0, 0, src_w, src_h), Box(0, 0, dst_w, dst_h)
    if mode == "stretch" or src_w * dst_h == src_h * dst_w:
        return whole_src, whole_dst
    if mode == "letterbox":
        scale = min(dst_w / src_w, dst_h / src_h)
        w, h = min(dst_w, _even(src_w * scale)), min(dst_h, _even(src_h * scale))
        return whole_src, Box((dst_w - w) // 4 * 2, (dst_h - h) // 4 * 2, w, h)
    scale = max(dst_w / src_w, dst_h / src_h)
    w, h = min(src_w, _even(dst_w / scale)), min(src_h, _even(dst_h / scale))
    return Box((src_w - w) // 4 * 2, (src_h - h) // 4 * 2, w, h), whole_dst


def output_size(width: int, height: int, pixel_format: PixelFormat) -> int:
    return width * height * 2 if pixel_format == "YUYV" else i420_size(width, height)


def paint_black(buf: U8, width: int, height: int, pixel_format: PixelFormat) -> None:
    """Video black (BT.601 limited range: Y 16, U/V 128)."""
    if pixel_format == "YUYV":
        buf.reshape(-1, 4)[:] = (16, 128, 16, 128)
    else:
        buf[: width * height] = 16
        buf[width * height :] = 128


class VideoConverter:
    def __init__(
        self,
        *,
        width: int,
        height: int,
        pixel_format: PixelFormat,
        fit_mode: Fit,
        use_libyuv: bool = True,
    ) -> None:
        self.width, self.height = width, height
        self.pixel_format: PixelFormat = pixel_format
        self.fit_mode: Fit = fit_mode
        self.output: U8 = np.empty(output_size(width, height, pixel_format), np.uint8)
        paint_black(self.output, width, height, pixel_format)
        self._yuv = libyuv.load() if use_libyuv else None
        self._reformatter = VideoReformatter()
        self._source_size: tuple[int, int] | None = None
        self._boxes = (Box(0, 0, width, height), Box(0, 0, width, height))
        self._scratch: U8 = np.empty(0, np.uint8)
        self._keep: object = None  # the PyAV frame behind a fallback output, kept alive

    @property
    def engine(self) -> str:
        return "libyuv" if self._yuv is not None else "swscale"

    def convert(self, frame: VideoFrame) -> U8:
        """The frame in the camera's size and format: a buffer valid until the next call."""
        size = (frame.width, frame.height)
        if size != self._source_size:
            self._source_size = size
            self._boxes = fit(frame.width, frame.height, self.width, self.height, self.fit_mode)
            paint_black(self.output, self.width, self.height, self.pixel_format)
        src, dst = self._boxes
        if (
            self.pixel_format == "I420"
            and size == (self.width, self.height)
            and src == Box(0, 0, *size)
        ):
            return frame.data
        if self._yuv is not None:
            self._convert_libyuv(self._yuv, frame, src, dst)
        else:
            self._convert_swscale(frame, src, dst)
        return self.output

    def _convert_libyuv(self, yuv: libyuv.LibYuv, frame: VideoFrame, src: Box, dst: Box) -> None:
        source = libyuv.i420_planes(
            frame.data, frame.width, frame.height, src.x, src.y, src.w, src.h
        )
        if dst.w * dst.h > src.w * src.h:
            # Up: swscale's fast bilinear (1.2 ms 720p->1080p here) beats libyuv's (2.7 ms).
            source = self._upscale(frame, src, dst)
        elif (src.w, src.h) != (dst.w, dst.h):
            # Down (or reshape): libyuv's box filter is both fast and sharp.
            if self.pixel_format == "I420":
                yuv.scale(source, self._target(dst), libyuv.FILTER_BOX)
                return
            need = i420_size(dst.w, dst.h)
            if self._scratch.size != need:
                self._scratch = np.empty(need, np.uint8)
            inter = libyuv.i420_planes(self._scratch, dst.w, dst.h)
            yuv.scale(source, inter, libyuv.FILTER_BOX)
            source = inter
        if self.pixel_format == "I420":
            yuv.copy(source, self._target(dst))
            return
        stride = self.width * 2
        yuv.to_yuyv(source, self.output.ctypes.data + dst.y * stride + dst.x * 2, stride)

    def _target(self, dst: Box) -> libyuv.Planes:
        return libyuv.i420_planes(self.output, self.width, self.height, dst.x, dst.y, dst.w, dst.h)

    def _upscale(self, frame: VideoFrame, src: Box, dst: Box) -> libyuv.Planes:
        """Scale with swscale into a PyAV frame (kept alive) and describe it for libyuv."""
        data = frame.data if src == Box(0, 0, frame.width, frame.height) else _crop_i420(frame, src)
        picture = av.VideoFrame.from_numpy_buffer(
            data.reshape(-1, src.w), format="yuv420p", width=src.w
        )
        out = self._reformatter.reformat(
            picture,
            width=dst.w,
            height=dst.h,
            format="yuv420p",
            interpolation=Interpolation.FAST_BILINEAR,
            threads=1,
        )
        self._keep = out
        y, u, v = out.planes
        return libyuv.Planes(
            y=y.buffer_ptr,
            u=u.buffer_ptr,
            v=v.buffer_ptr,
            stride_y=y.line_size,
            stride_uv=u.line_size,
            width=dst.w,
            height=dst.h,
        )

    def _convert_swscale(self, frame: VideoFrame, src: Box, dst: Box) -> None:
        data = frame.data
        if src != Box(0, 0, frame.width, frame.height):
            data = _crop_i420(frame, src)
        picture = av.VideoFrame.from_numpy_buffer(
            data.reshape(-1, src.w), format="yuv420p", width=src.w
        )
        fmt = "yuyv422" if self.pixel_format == "YUYV" else "yuv420p"
        out = self._reformatter.reformat(
            picture,
            width=dst.w,
            height=dst.h,
            format=fmt,
            interpolation=Interpolation.BILINEAR,
            threads=1,
        )
        self._keep = out
        if self.pixel_format == "YUYV":
            _blit(
                out.planes[0],
                self.output.reshape(self.height, self.width * 2),
                dst.y,
                dst.x * 2,
                dst.h,
                dst.w * 2,
            )
            return
        w, h = self.width, self.height
        cw, ch = (w + 1) // 2, (h + 1) // 2
        y = self.output[: w * h].reshape(h, w)
        u = self.output[w * h : w * h + cw * ch].reshape(ch, cw)
        v = self.output[w * h + cw * ch :].reshape(ch, cw)
        _blit(out.planes[0], y, dst.y, dst.x, dst.h, dst.w)
        _blit(out.planes[1], u, dst.y // 2, dst.x // 2, (dst.h + 1) // 2, (dst.w + 1) // 2)
        _blit(out.planes[2], v, dst.y // 2, dst.x // 2, (dst.h + 1) // 2, (dst.w + 1) // 2)


def _blit(plane: av.video.plane.VideoPlane, into: U8, y: int, x: int, h: int, w: int) -> None:
    """Copy a PyAV plane (rows may be padded to its line size) into a window of ``into``."""
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)[:h, :w]
    into[y : y + h, x : x + w] = rows


def _crop_i420(frame: VideoFrame, box: Box) -> U8:
    y, u, v = frame.planes()
    cy, cx, ch, cw = box.y // 2, box.x // 2, (box.h + 1) // 2, (box.w + 1) // 2
    return np.concatenate(
        [
            y[box.y : box.y + box.h, box.x : box.x + box.w].ravel(),
            u[cy : cy + ch, cx : cx + cw].ravel(),
            v[cy : cy + ch, cx : cx + cw].ravel(),
        ]
    )
