"""The background key (bridge/pipeline/key.py, background.py) on synthetic frames: a known
green screen, a known subject (a skin-coloured head with hair strands 2 px and 1 px wide
reaching into the green, and a rim where green light spills onto it), each mode checked
pixel by pixel where the answer is known, with libyuv and with the numpy fallback."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from bridge.config import BackgroundConfig, parse
from bridge.errors import ConfigError
from bridge.media.frames import U8, VideoFrame
from bridge.pipeline import libyuv
from bridge.pipeline.background import Background, Matted
from bridge.pipeline.key import ChromaKey, KeySettings, rgb_to_yuv

W, H = 320, 240
SCREEN = (0, 177, 64)
SKIN = (240, 196, 160)
HAIR = (70, 46, 38)
CENTRE, RADIUS = (160, 130), 60
WIDE_STRAND_X, THIN_STRAND_X = 140, 181  # 2 px (even-aligned) and 1 px strands
STRAND_TOP, STRAND_BOTTOM = 20, 60
RIM = 10  # px inside the head's edge that carry green spill

ENGINES = [pytest.param(True, id="libyuv"), pytest.param(False, id="numpy")]


def scene() -> tuple[np.ndarray, np.ndarray]:
    """(RGB picture, truth): 1 subject, 0 screen, 2 spill rim (subject), 3 a 1-px strand
    (half of each chroma sample it falls in: no known answer, only kept out of the checks)."""
    yy, xx = np.mgrid[0:H, 0:W]
    dist = np.hypot(xx - CENTRE[0], yy - CENTRE[1])
    rgb = np.empty((H, W, 3), np.float64)
    rgb[...] = SCREEN
    truth = np.zeros((H, W), np.uint8)
    head = dist <= RADIUS
    rgb[head] = SKIN
    truth[head] = 1
    rim = head & (dist > RADIUS - RIM)
    rgb[rim] = 0.8 * np.array(SKIN) + 0.2 * np.array(SCREEN)  # green light on the edge
    truth[rim] = 2
    strands = slice(STRAND_TOP, STRAND_BOTTOM)
    rgb[strands, WIDE_STRAND_X : WIDE_STRAND_X + 2] = HAIR
    truth[strands, WIDE_STRAND_X : WIDE_STRAND_X + 2] = 1
    rgb[strands, THIN_STRAND_X] = HAIR
    truth[strands, THIN_STRAND_X] = 3
    return rgb.round().astype(np.uint8), truth


def to_frame(rgb: np.ndarray) -> VideoFrame:
    i420 = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    data: U8 = np.ascontiguousarray(i420.to_ndarray(), dtype=np.uint8).ravel()
    return VideoFrame(rgb.shape[1], rgb.shape[0], data, arrived=0.0)


class Catch:
    """A matte sink that keeps copies of what it is given."""

    wanted = True

    def __init__(self) -> None:
        self.got: list[Matted | None] = []
        self.alpha: U8 | None = None
        self.uv: tuple[U8, U8] | None = None

    def publish(self, matted: Matted | None) -> None:
        self.got.append(matted)
        if matted is not None and matted.alpha is not None:
            self.alpha = matted.alpha.copy()
            self.uv = (matted.u.copy(), matted.v.copy())


def keyed(mode: str, use_libyuv: bool, **settings: object) -> tuple[VideoFrame, Catch, np.ndarray]:
    if use_libyuv and libyuv.load() is None:
        pytest.skip("libyuv is not installed: apt-get install libyuv0 (./scripts/test does)")
    rgb, truth = scene()
    background = Background(BackgroundConfig(mode=mode, **settings), use_libyuv=use_libyuv)
    catch = Catch()
    camera = background.apply(to_frame(rgb), matte=catch)
    return camera, catch, truth


def screen_far(truth: np.ndarray) -> np.ndarray:
    """Screen pixels at least 4 px from any subject pixel (edges get a tolerance)."""
    subject = truth > 0
    grown = subject.copy()
    for dy in range(-4, 5):
        for dx in range(-4, 5):
            grown |= np.roll(np.roll(subject, dy, 0), dx, 1)
    far: np.ndarray = ~grown
    return far


def rim_inside(truth: np.ndarray) -> np.ndarray:
    """The spill rim but its outer 4 px (within the box filter's reach of the screen)."""
    yy, xx = np.mgrid[0:H, 0:W]
    rim: np.ndarray = (truth == 2) & (np.hypot(xx - CENTRE[0], yy - CENTRE[1]) <= RADIUS - 4)
    return rim


def interior(truth: np.ndarray) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    inside: np.ndarray = np.hypot(xx - CENTRE[0], yy - CENTRE[1]) <= RADIUS - RIM - 3
    return inside


@pytest.mark.parametrize("use_libyuv", ENGINES)
def test_alpha_is_0_on_the_screen_and_255_on_the_subject(use_libyuv: bool) -> None:
    camera, catch, truth = keyed("alpha", use_libyuv)
    alpha = catch.alpha
    assert alpha is not None and alpha.shape == (H, W)
    assert (alpha[screen_far(truth)] == 0).all()
    assert (alpha[interior(truth)] == 255).all()
    rim = alpha[rim_inside(truth)]  # the green-lit rim stays subject
    assert (rim >= 200).all() and (rim == 255).mean() > 0.8
    wide = alpha[STRAND_TOP + 2 : STRAND_BOTTOM - 2, WIDE_STRAND_X : WIDE_STRAND_X + 2]
    assert (wide >= 160).all()  # a 2-px strand is kept (all edge: bilinear alpha ~3/4)
    # In alpha mode the camera keeps the avatar's own frame.
    assert camera.data is not None and camera.width == W


@pytest.mark.parametrize("use_libyuv", ENGINES)
def test_spill_on_the_subject_is_suppressed(use_libyuv: bool) -> None:
    rgb, truth = scene()
    frame = to_frame(rgb)
    _, u_in, v_in = frame.planes()
    _, catch, _ = keyed("alpha", use_libyuv)
    assert catch.uv is not None
    u_out, v_out = catch.uv
    rim = truth[::2, ::2] == 2

    def chroma(u: U8, v: U8) -> float:
        return float(np.hypot(u[rim] - 128.0, v[rim] - 128.0).mean())

    # Spill suppression desaturates what is near the key colour: the rim loses colour, the
    # interior (far from the key) is left exactly as it was.
    assert chroma(u_out, v_out) < 0.9 * chroma(u_in, v_in)
    inside = interior(truth)[::2, ::2]
    assert (u_out[inside] == u_in[inside]).all() and (v_out[inside] == v_in[inside]).all()


@pytest.mark.parametrize("use_libyuv", ENGINES)
def test_color_mode_replaces_the_screen_and_keeps_the_subject(use_libyuv: bool) -> None:
    rgb, truth = scene()
    y_in, u_in, _ = to_frame(rgb).planes()
    camera, _, _ = keyed("color", use_libyuv, color="#3050A0")
    y, u, v = camera.planes()
    want_y, want_u, want_v = rgb_to_yuv(0x30, 0x50, 0xA0)
    far = screen_far(truth)
    assert (np.abs(y[far].astype(int) - want_y) <= 1).all()
    far_c = far[::2, ::2]
    assert (np.abs(u[far_c].astype(int) - want_u) <= 1).all()
    assert (np.abs(v[far_c].astype(int) - want_v) <= 1).all()
    inside = interior(truth)
    assert (np.abs(y[inside].astype(int) - y_in[inside]) <= 1).all()
    inside_c = inside[::2, ::2]
    assert (np.abs(u[inside_c].astype(int) - u_in[inside_c]) <= 1).all()


@pytest.mark.parametrize("use_libyuv", ENGINES)
def test_image_mode_puts_the_picture_behind(use_libyuv: bool, tmp_path: Path) -> None:
    picture = np.zeros((H * 2, W * 2, 3), np.uint8)  # twice the size: scaled to fill
    picture[..., 0] = np.linspace(0, 255, W * 2, dtype=np.uint8)[None, :]
    picture[..., 2] = 200
    path = tmp_path / "backdrop.png"
    Image.fromarray(picture).save(path)
    _, truth = scene()
    camera, _, _ = keyed("image", use_libyuv, image=path)
    y, _, _ = camera.planes()
    small = np.asarray(Image.fromarray(picture).resize((W, H), Image.Resampling.BILINEAR))
    want_y, _, _ = to_frame(small).planes()
    far = screen_far(truth)
    assert (np.abs(y[far].astype(int) - want_y[far]) <= 3).all()


def test_keep_mode_touches_nothing_and_the_overlay_gets_it_opaque() -> None:
    rgb, _ = scene()
    frame = to_frame(rgb)
    background = Background(BackgroundConfig())
    catch = Catch()
    assert background.apply(frame, matte=catch) is frame
    assert len(catch.got) == 1 and catch.got[0] is not None and catch.got[0].alpha is None
    assert background.keyed_frames == 0


def test_alpha_mode_keys_only_while_the_overlay_is_watched() -> None:
    rgb, _ = scene()
    background = Background(BackgroundConfig(mode="alpha"))
    catch = Catch()
    catch.wanted = False
    background.apply(to_frame(rgb), matte=catch)
    assert background.keyed_frames == 0 and catch.got == []


def test_engines_agree() -> None:
    if libyuv.load() is None:
        pytest.skip("libyuv is not installed: apt-get install libyuv0 (./scripts/test does)")
    native, _, _ = keyed("color", True)
    plain, _, _ = keyed("color", False)
    _, truth = scene()
    # They differ only in how the alpha is scaled up (bilinear, nearest): at the edges.
    away = (screen_far(truth) | interior(truth)).ravel()
    diff = np.abs(native.planes()[0].astype(int) - plain.planes()[0].astype(int)).ravel()
    assert diff[away].max() <= 1
    assert diff.mean() < 1


def test_auto_key_on_a_grey_border_keys_nothing() -> None:
    grey = np.full((H, W, 3), 128, np.uint8)
    grey[100:140, 100:140] = SKIN
    key = ChromaKey(KeySettings())
    _, u, v = to_frame(grey).planes()
    assert not key.matte(u, v)
    background = Background(BackgroundConfig(mode="color"))
    frame = to_frame(grey)
    assert background.apply(frame) is frame


def test_named_key_colour_and_auto_find_the_same_screen() -> None:
    rgb, _ = scene()
    _, u, v = to_frame(rgb).planes()
    auto = ChromaKey(KeySettings())
    assert auto.find_key(u, v) == pytest.approx(rgb_to_yuv(*SCREEN)[1:], abs=1)
    fixed = ChromaKey(KeySettings(key_color="#00B140"))
    assert fixed.find_key(u, v) == rgb_to_yuv(0, 0xB1, 0x40)[1:]


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ({"mode": "image"}, "needs image"),
        ({"key_color": "chartreuse"}, "key_color"),
        ({"similarity": 0}, "similarity"),
        ({"color": "red"}, "color"),
        ({"mode": "matte"}, "mode"),
    ],
)
def test_bad_background_config_is_refused(raw: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse({"video": {"background": raw}})
    assert says in str(caught.value)


def test_unreadable_image_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"video\.background\.image"):
        Background(BackgroundConfig(mode="image", image=tmp_path / "missing.png"))
