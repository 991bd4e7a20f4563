"""Video-path benchmark: the bridge's figures next to a baseline measured in the same run.

    python bench/video.py [--seconds N] [--frames N] [--rounds N] [--skip-e2e] [--skip-micro]

Part 1 (micro): CPU and wall time per frame of ``VideoConverter.convert`` (libyuv, and the
swscale fallback) on rendered avatar pictures, beside a bare consumer that converts every
frame to RGB and copies it (livekit ``convert(RGB24)`` + ``np.frombuffer().copy()``; PyAV
``to_ndarray(format="rgb24")``) and beside a plain memcpy of the I420 frame.

Part 2 (end to end): a real ``livekit-server --dev``, the simulator (``heygen-bridge
simulate``) publishing its 720p30 avatar, and, one after the other, each in its own process
and alone with the avatar:
  * baseline: a bare LiveKit subscriber that consumes the avatar's VideoStream (and its audio,
    as the bridge does) and converts every frame to RGB and copies it;
  * discard:  the SDK's floor: the avatar's video and audio streams consumed with the
    bridge's own stream settings, every frame dropped (the bridge is held to 1.2x of it);
  * bridge:   the whole daemon (``Bridge``, as ``heygen-bridge run`` builds it) writing to a
    null pyvirtualcam backend.
For each: CPU share of the process (utime+stime from /proc/<pid>/stat over the steady window,
% of one core), frames per second, latency frame arrival → camera write (bridge) or → RGB
ready (baseline), and, for information, avatar send → camera write / RGB ready (includes VP8
encode, SFU and decode), read from the stamp the avatar draws into every picture.

The children are this same file, started as ``video.py _bridge ...``, ``video.py _baseline
...`` and ``video.py _discard ...``; the parent talks to them with signals (SIGUSR1: write
the window's figures, start a new window; SIGTERM: stop).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import importlib.metadata
import itertools
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import numpy.typing as npt
from livekit import rtc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.kit

from bridge import sdnotify
from bridge.media.frames import U8, VideoFrame
from bridge.pipeline.video import PixelFormat, VideoConverter
from bridge.synthetic import stamp as marker
from bridge.synthetic.performer import Performer
from tests.kit.eventually import eventually
from tests.kit.process import Child as Launched
from tests.kit.process import launch
from tests.kit.simproc import sim_process

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
AVATAR_IDENTITY = "heygen"
FPS = 30.0
# The stamp is decoded (for avatar send → output latency) on every Nth frame only: one decode
# costs ~0.4 ms of numpy, which on every frame would add ~1.2 % of a core to what we measure.
STAMP_EVERY = 10
LAT_KEEP = 1_000_000

# Targets from DESIGN.md "Performance targets".
TARGET_SAME_MS = 0.5
TARGET_1080_MS = 3.0
TARGET_DAEMON_PCT = 10.0
TARGET_LATENCY_P95_MS = 5.0
TARGET_FLOOR_RATIO = 1.2  # issue 15: the daemon within 1.2x of the SDK's receive-and-discard floor
ROLES = ("_bridge", "_baseline", "_discard")


# ------------------------------------------------------------------------------- helpers


def pct(values: Sequence[float] | npt.NDArray[np.float64], q: float) -> float:
    if len(values) == 0:
        return float("nan")
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def fmt_ms(value: float, digits: int = 3) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"  # NaN check


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a whole process (all its threads), in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_s() -> float:
    """CPU seconds all cores spent not idle (from /proc/stat), since boot."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(x) for x in parts]
    idle = ticks[3] + ticks[4] + ticks[7]  # idle + iowait + steal
    return (sum(ticks[:8]) - idle) / CLK_TCK


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds per thread name (trailing digits dropped, so pools add up) of a process."""
    found: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")].rstrip("0123456789-_ ")
        fields = text[text.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
        found[name or "?"] = found.get(name or "?", 0.0) + cpu
    return found


def children_of(pid: int) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        if ppid == pid:
            found.append((int(entry.name), comm))
    return found


def render_frames(width: int, height: int, count: int) -> list[U8]:
    """Real-looking I420 pictures: the demo avatar's face, test patch and stamp."""
    performer = Performer(width=width, height=height, fps=FPS)
    frames: list[U8] = []
    for n in range(count):
        performer.pull_audio(1600)  # advance the media clock: the picture moves
        frames.append(performer.render(n, int(time.time() * 1000)).copy())
    return frames


def sent_ms_age(sent_ms: int) -> float:
    """Milliseconds since the avatar's send time (its wall-clock ms modulo 2**32)."""
    now = int(time.time() * 1000) % marker.SENT_MS_LIMIT
    return float((now - sent_ms) % marker.SENT_MS_LIMIT)


# ------------------------------------------------------------------------------- machine


def machine_lines() -> list[str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = []
    for name in ("livekit", "livekit-api", "av", "numpy", "pyvirtualcam"):
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    try:
        libyuv = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", "libyuv0"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        libyuv = ""
    ffmpeg = ".".join(str(x) for x in av.library_versions.get("libswscale", ()))
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return [
        f"date:     {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"cpu:      {model}",
        f"cores:    {os.cpu_count()} (usable by this process: {len(os.sched_getaffinity(0))})",
        f"kernel:   {platform.system()} {platform.release()} {platform.machine()}",
        f"python:   {platform.python_version()} ({sys.executable})",
        f"packages: {', '.join(versions)}",
        f"native:   libyuv0 {libyuv or '(not installed)'}, libswscale {ffmpeg or '?'} (PyAV)",
        f"load avg: {load} (1/5/15 min, at start)",
    ]


# ------------------------------------------------------------------------------- part 1


@dataclass
class Timing:
    cpu_ms: list[float] = field(default_factory=list)
    wall_ms: list[float] = field(default_factory=list)

    def row(self) -> str:
        return (
            f"{fmt_ms(pct(self.cpu_ms, 50)):>8} {fmt_ms(pct(self.cpu_ms, 95)):>8}  "
            f"{fmt_ms(pct(self.wall_ms, 50)):>8} {fmt_ms(pct(self.wall_ms, 95)):>8}"
        )


@dataclass
class Row:
    """One way of producing a frame: ``work(prepare(i))``; only ``work`` is timed."""

    label: str
    prepare: Callable[[int], Any]
    work: Callable[[Any], object]
    timing: Timing = field(default_factory=Timing)


def time_rows(rows: list[Row], n: int, warmup: int, block: int = 25) -> None:
    """Every row ``n`` times after ``warmup`` calls, interleaved in blocks of ``block`` frames.

    Interleaving spreads any load from other processes over all rows alike, so the rows
    stay comparable on a shared machine.  CPU is ``process_time`` (every thread of this
    process: swscale's own worker threads count too); wall is ``perf_counter``.
    """
    for row in rows:
        for i in range(warmup):
            row.work(row.prepare(i))
    for start in range(0, n, block):
        for row in rows:
            for i in range(start, min(n, start + block)):
                arg = row.prepare(i)
                c0, w0 = time.process_time_ns(), time.perf_counter_ns()
                row.work(arg)
                w1, c1 = time.perf_counter_ns(), time.process_time_ns()
                row.timing.cpu_ms.append((c1 - c0) / 1e6)
                row.timing.wall_ms.append((w1 - w0) / 1e6)


@dataclass(frozen=True)
class Case:
    name: str
    src: tuple[int, int]
    dst: tuple[int, int]
    fmt: PixelFormat
    target_ms: float


CASES = [
    Case("720p -> 720p YUYV", (1280, 720), (1280, 720), "YUYV", TARGET_SAME_MS),
    Case("720p -> 720p I420", (1280, 720), (1280, 720), "I420", TARGET_SAME_MS),
    Case("720p -> 1080p YUYV", (1280, 720), (1920, 1080), "YUYV", TARGET_1080_MS),
    Case("720p -> 1080p I420", (1280, 720), (1920, 1080), "I420", TARGET_1080_MS),
    Case("480p -> 720p YUYV", (854, 480), (1280, 720), "YUYV", TARGET_1080_MS),
]


@dataclass
class MicroResult:
    case: Case
    rows: list[Row]


def case_rows(case: Case, pics: list[U8]) -> list[Row]:
    sw, sh = case.src
    dw, dh = case.dst
    bridge_frames = [VideoFrame(sw, sh, p, arrived=0.0) for p in pics]
    lk_frames = [rtc.VideoFrame(sw, sh, rtc.VideoBufferType.I420, p.data) for p in pics]

    def pick(i: int) -> VideoFrame:
        return bridge_frames[i % len(bridge_frames)]

    def pick_lk(i: int) -> rtc.VideoFrame:
        return lk_frames[i % len(lk_frames)]

    rows: list[Row] = []
    for label, use_libyuv in (
        ("bridge: VideoConverter, libyuv", True),
        ("bridge: VideoConverter, swscale fallback", False),
    ):
        conv = VideoConverter(
            width=dw, height=dh, pixel_format=case.fmt, fit_mode="letterbox", use_libyuv=use_libyuv
        )
        if use_libyuv and conv.engine != "libyuv":
            label += " (libyuv NOT FOUND: swscale)"
        rows.append(Row(label, pick, conv.convert))

    def lk_rgb(frame: rtc.VideoFrame) -> U8:
        rgb = frame.convert(rtc.VideoBufferType.RGB24)
        return np.frombuffer(rgb.data, np.uint8).reshape(rgb.height, rgb.width, 3).copy()

    rows.append(
        Row(f"baseline: livekit convert RGB24 + copy ({sw}x{sh}, no scaling)", pick_lk, lk_rgb)
    )

    def av_frame(i: int) -> Any:
        # A fresh frame per call, as a decoder hands out: its SwsContext is not cached.
        pic = pics[i % len(pics)]
        return av.VideoFrame.from_ndarray(pic.reshape(sh * 3 // 2, sw), format="yuv420p")

    def av_rgb(frame: Any) -> Any:
        return frame.to_ndarray(format="rgb24", width=dw, height=dh)

    scaled = (sw, sh) != (dw, dh)
    size = f"scaled to {dw}x{dh}" if scaled else f"{sw}x{sh}"
    rows.append(Row(f"baseline: PyAV to_ndarray rgb24, defaults ({size})", av_frame, av_rgb))
    floor = np.empty_like(pics[0])

    def memcpy(frame: VideoFrame) -> None:
        np.copyto(floor, frame.data)

    rows.append(
        Row(f"reference: memcpy of the I420 frame ({pics[0].nbytes / 1e6:.2f} MB)", pick, memcpy)
    )
    return rows


def run_micro(frames_n: int, warmup: int) -> list[MicroResult]:
    pictures: dict[tuple[int, int], list[U8]] = {}
    results: list[MicroResult] = []
    for case in CASES:
        if case.src not in pictures:
            pictures[case.src] = render_frames(*case.src, count=16)
        rows = case_rows(case, pictures[case.src])
        time_rows(rows, frames_n, warmup)
        results.append(MicroResult(case, rows))
    return results


def print_micro(results: list[MicroResult], frames_n: int, others_pct: float) -> None:
    print()
    print(
        f"== 1. Per-frame cost of the conversion path: ms per frame, {frames_n} frames per row "
        "after warm-up, rows interleaved in blocks of 25 frames"
    )
    print(
        "   CPU = process_time (all threads of the process, so swscale's worker threads "
        "count); wall = perf_counter"
    )
    print(
        f"   other processes kept {others_pct:.0f} % of one core busy on average meanwhile "
        "(shared machine)"
    )
    print(f"   {'':<62} {'CPU p50':>8} {'CPU p95':>8}  {'wall p50':>8} {'wall p95':>8}")
    for result in results:
        case = result.case
        print(f" {case.name}  (target: bridge CPU <= {case.target_ms:g} ms)")
        for row in result.rows:
            print(f"   {row.label:<62} {row.timing.row()}")
        ours = pct(result.rows[0].timing.cpu_ms, 50)
        sws = pct(result.rows[1].timing.cpu_ms, 50)
        lk = pct(result.rows[2].timing.cpu_ms, 50)
        pyav = pct(result.rows[3].timing.cpu_ms, 50)
        p95 = pct(result.rows[0].timing.cpu_ms, 95)
        verdict = "MEETS" if p95 <= case.target_ms else "MISSES"
        print(
            f"   -> bridge CPU p95 {p95:.3f} ms {verdict} the target; p50 is "
            f"{_ratio(lk, ours)} livekit RGB, {_ratio(pyav, ours)} PyAV RGB, "
            f"{_ratio(sws, ours)} the swscale fallback"
        )


def _ratio(base: float, ours: float) -> str:
    if ours < 0.02:
        return "~0 (no work) vs"
    return f"{base / ours:.1f}x cheaper than" if base >= ours else f"{ours / base:.1f}x dearer than"


# ------------------------------------------------------------------------------- children


@dataclass
class Probe:
    """Per-window figures a child process keeps and writes on SIGUSR1."""

    dump_path: Path
    seq: int = 0
    frames: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    send_age_ms: list[float] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)
    arrivals: list[float] = field(default_factory=list)  # perf_counter() of each frame
    holds_ms: list[float] = field(default_factory=list)  # the webcam writer's pacing sleeps
    probe_cpu_s: float = 0.0
    last_stamp_frame: int = -1
    extra: Callable[[], dict[str, Any]] | None = None

    def stamp(self, luma: U8) -> None:
        """Decode the avatar's stamp (every STAMP_EVERY calls) and keep its age."""
        c0 = time.thread_time()
        h, w = luma.shape
        found = marker.decode(luma[: h // 4, : w // 2])
        if found is not None and found.frame != self.last_stamp_frame:
            self.last_stamp_frame = found.frame
            self.send_age_ms.append(sent_ms_age(found.sent_ms))
        self.probe_cpu_s += time.thread_time() - c0

    def dump(self) -> None:
        self.seq += 1
        body: dict[str, Any] = {
            "seq": self.seq,
            "frames": self.frames,
            "latencies_ms": self.latencies_ms,
            "send_age_ms": self.send_age_ms,
            "sizes": self.sizes,
            "arrival_gaps_ms": [(b - a) * 1000 for a, b in itertools.pairwise(self.arrivals)],
            "holds_ms": self.holds_ms,
            "probe_cpu_s": self.probe_cpu_s,
        }
        if self.extra is not None:
            body.update(self.extra())
        tmp = self.dump_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body))
        tmp.replace(self.dump_path)
        self.frames, self.latencies_ms, self.send_age_ms = 0, [], []
        self.sizes, self.probe_cpu_s, self.arrivals, self.holds_ms = {}, 0.0, [], []


_PROBE: Probe | None = None


class PacingClock:
    """Stands in for the ``time`` module inside the webcam sink: records its pacing sleeps.

    The writer sleeps only to keep a fresh frame at least half an interval after the
    previous write (``MIN_SPACING``); those holds are latency added on purpose.
    """

    def __init__(self, probe: Probe) -> None:
        self._probe = probe
        self.perf_counter = time.perf_counter
        self.monotonic = time.monotonic

    def sleep(self, seconds: float) -> None:
        self._probe.holds_ms.append(seconds * 1000)
        time.sleep(seconds)


class NullCamera:
    """A pyvirtualcam backend that discards frames (and samples the stamp for latency)."""

    def __init__(
        self, *, width: int, height: int, fps: float, fourcc: int, device: str | None, **kw: Any
    ) -> None:
        self._width, self._height, self._fourcc = width, height, fourcc
        self._yuyv = fourcc == _fourcc("YUY2")
        self._sent = 0

    def send(self, frame: U8) -> None:
        self._sent += 1
        probe = _PROBE
        if probe is None or self._sent % STAMP_EVERY:
            return
        w, h = self._width, self._height
        luma = marker.luma_of_yuyv(frame, w, h) if self._yuyv else marker.luma_of_i420(frame, w, h)
        probe.stamp(luma)

    def close(self) -> None:
        pass

    def device(self) -> str:
        return "bench-null"

    def native_fourcc(self) -> int | None:
        return self._fourcc


def _fourcc(code: str) -> int:
    from pyvirtualcam.util import encode_fourcc

    value: int = encode_fourcc(code)
    return value


async def bridge_child(config_path: Path, dump_path: Path) -> int:
    """The whole daemon, as ``heygen-bridge run`` builds it, with a null camera."""
    global _PROBE
    import pyvirtualcam

    import bridge.sinks.webcam as webcam_module
    from bridge import config, log
    from bridge.app import Bridge
    from bridge.supervisor import supervise

    pyvirtualcam.register_backend("bench-null", NullCamera)
    settings = config.load(config_path)
    log.setup(settings.config.log.level)
    bridge = Bridge(settings)
    webcam = bridge.webcam
    assert webcam is not None
    stats = webcam.stats
    stats.latencies_ms = deque(maxlen=LAT_KEEP)  # the whole window, not the last 600
    probe = Probe(dump_path)
    _PROBE = probe
    put = webcam.put

    def timed_put(frame: VideoFrame) -> None:  # arrival times, for the jitter figures
        probe.arrivals.append(frame.arrived)
        put(frame)

    # Every session's source takes the manager's handlers at its start: none has started yet.
    bridge.manager.handlers = dataclasses.replace(bridge.manager.handlers, video=timed_put)
    # Count the writer's pacing holds (the sink calls time.sleep only for those).
    webcam_module.time = PacingClock(probe)  # type: ignore[attr-defined,assignment]
    base = {"frames_in": 0, "frames_out": 0, "repeats": 0, "slate_frames": 0, "dropped": 0}

    def extra() -> dict[str, Any]:
        now = {k: int(getattr(stats, k)) for k in base}
        delta = {k: now[k] - base[k] for k in base}
        base.update(now)
        old, stats.latencies_ms = stats.latencies_ms, deque(maxlen=LAT_KEEP)
        late, gap = stats.max_late_ms, stats.max_gap_ms
        stats.max_late_ms = stats.max_gap_ms = 0.0  # per window, not since start
        source = bridge.manager.source
        snap = source.snapshot() if source is not None else {}
        size = snap.get("video_size")
        return {
            **delta,
            "frames": delta["frames_in"],
            "latencies_ms": list(old),
            "sizes": {f"{size[0]}x{size[1]}": delta["frames_in"]} if size else {},
            "engine": stats.engine,
            "max_late_ms": late,
            "max_gap_ms": gap,
        }

    probe.extra = extra
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, probe.dump)
    return await supervise(bridge.run)


async def baseline_child(url: str, token: str, dump_path: Path) -> int:
    """A bare subscriber: every avatar frame to RGB and copied, as common integrations do."""
    probe = Probe(dump_path)
    latest: list[U8] = []  # what a consumer would hand on

    async def video(track: rtc.Track) -> None:
        stream = rtc.VideoStream(track)  # defaults, as integrations write it
        try:
            async for event in stream:
                t0 = time.perf_counter()
                probe.arrivals.append(t0)
                frame = event.frame
                rgb = frame.convert(rtc.VideoBufferType.RGB24)
                image = np.frombuffer(rgb.data, np.uint8).reshape(rgb.height, rgb.width, 3)
                latest[:] = [image.copy()]
                t1 = time.perf_counter()
                probe.frames += 1
                probe.latencies_ms.append((t1 - t0) * 1000)
                key = f"{frame.width}x{frame.height}"
                probe.sizes[key] = probe.sizes.get(key, 0) + 1
                if probe.frames % STAMP_EVERY == 0 and frame.type == rtc.VideoBufferType.I420:
                    y = np.frombuffer(frame.data, np.uint8)[: frame.width * frame.height]
                    probe.stamp(y.reshape(frame.height, frame.width))
                _ready("converting the avatar's frames")
        finally:
            await stream.aclose()

    async def audio(track: rtc.Track) -> None:
        stream = rtc.AudioStream(track, sample_rate=48000, num_channels=1)
        try:
            async for _event in stream:
                pass
        finally:
            await stream.aclose()

    return await _subscriber(url, token, probe, video, audio)


async def discard_child(url: str, token: str, dump_path: Path) -> int:
    """The SDK's floor: the avatar's video and audio streams consumed with the bridge's own
    settings (bridge/source/livekit.py: bounded queues, I420, 48 kHz mono in 40 ms frames),
    every frame dropped.  What any subscriber of this room pays before doing anything."""
    from bridge.source import livekit as source

    probe = Probe(dump_path)

    async def video(track: rtc.Track) -> None:
        stream = rtc.VideoStream(
            track, capacity=source.VIDEO_CAPACITY, format=rtc.VideoBufferType.I420
        )
        try:
            async for event in stream:
                probe.frames += 1
                if probe.frames % STAMP_EVERY == 0:  # send -> arrival: the upstream share
                    frame = event.frame
                    y = np.frombuffer(frame.data, np.uint8)[: frame.width * frame.height]
                    probe.stamp(y.reshape(frame.height, frame.width))
                _ready("discarding the avatar's frames")
        finally:
            await stream.aclose()

    async def audio(track: rtc.Track) -> None:
        stream = rtc.AudioStream(
            track,
            capacity=source.AUDIO_CAPACITY,
            sample_rate=source.SAMPLE_RATE,
            num_channels=1,
            frame_size_ms=source.AUDIO_FRAME_MS,
        )
        try:
            async for _event in stream:
                pass
        finally:
            await stream.aclose()

    return await _subscriber(url, token, probe, video, audio)


_READY: list[bool] = []


def _ready(what: str) -> None:
    if not _READY:
        _READY.append(True)
        sdnotify.notify(f"READY=1\nSTATUS={what}")


async def _subscriber(
    url: str,
    token: str,
    probe: Probe,
    video: Callable[[rtc.Track], Awaitable[None]],
    audio: Callable[[rtc.Track], Awaitable[None]],
) -> int:
    """Join the room, run ``video``/``audio`` on the avatar's tracks until SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, probe.dump)
    tasks: set[asyncio.Task[None]] = set()
    room = rtc.Room()

    async def consume(job: Awaitable[None]) -> None:
        await job

    @room.on("track_subscribed")
    def _subscribed(
        track: rtc.Track, publication: rtc.RemoteTrackPublication, who: rtc.RemoteParticipant
    ) -> None:
        if who.identity != AVATAR_IDENTITY:
            return
        job = video(track) if track.kind == rtc.TrackKind.KIND_VIDEO else audio(track)
        task = asyncio.create_task(consume(job), name=f"subscriber-{track.sid}")
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    await room.connect(url, token)
    try:
        await stop.wait()
    finally:
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await room.disconnect()
    return 0


# ------------------------------------------------------------------------------- part 2


@dataclass
class Window:
    who: str
    seconds: float
    cpu_pct: float
    fps: float
    lat_p50: float
    lat_p95: float
    lat_max: float
    age_p50: float
    age_p95: float
    probe_pct: float
    sim_pct: float
    server_pct: float
    machine_pct: float
    others_pct: float
    sizes: dict[str, int]
    extra: dict[str, Any]
    threads: dict[str, float]
    jitter: str = ""
    round: int = 0


class Child:
    """A child process (this file in a role) with its dump file and log, started by the kit's
    launcher: it is ready when it says READY=1 (the bridge: its control API serves; the
    baseline: its first frame is converted)."""

    def __init__(self, role: str, args: list[str], workdir: Path, env: dict[str, str]) -> None:
        self.role = role
        self.dump_path = workdir / f"{role}.json"
        self.log_path = workdir / f"{role}.log"
        self.args = [sys.executable, str(HERE), f"_{role}", "--dump", str(self.dump_path), *args]
        self.env = env
        self.process: Launched | None = None
        self._seq = 0

    async def start(self) -> None:
        self.process = await launch(
            f"the {self.role}", self.args, log_path=self.log_path, env=self.env, ready_within=60
        )

    @property
    def running(self) -> Launched:
        assert self.process is not None, f"the {self.role} was not started"
        return self.process

    @property
    def pid(self) -> int:
        return self.running.pid

    async def dump(self) -> dict[str, Any]:
        """Ask for the window's figures (and start a new window)."""
        self._seq += 1
        self.running.proc.send_signal(signal.SIGUSR1)

        def figures() -> dict[str, Any] | None:
            try:
                body: dict[str, Any] = json.loads(self.dump_path.read_text())
            except (OSError, ValueError):
                return None
            return body if body["seq"] == self._seq else None

        found = await eventually(figures, within=10, what=f"the {self.role}'s figures", every=0.02)
        assert found is not None  # eventually returns a value that passed: not None
        return found

    async def stop(self) -> None:
        if self.process is not None:
            await self.process.stop(within=20)

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-3000:]
        return ""


async def measure(
    child: Child,
    who: str,
    seconds: float,
    sim_pid: int,
    server_pid: int | None,
    before_dump: Callable[[], Awaitable[dict[str, Any]]] | None = None,
) -> Window:
    await child.dump()  # start the window
    pids = [child.pid, sim_pid, os.getpid()] + ([server_pid] if server_pid else [])
    c0 = [proc_cpu_s(p) for p in pids]
    th0 = thread_cpu_s(child.pid)
    m0, t0 = machine_busy_s(), time.perf_counter()
    await asyncio.sleep(seconds)
    c1 = [proc_cpu_s(p) for p in pids]
    th1 = thread_cpu_s(child.pid)
    m1, t1 = machine_busy_s(), time.perf_counter()
    status = await before_dump() if before_dump is not None else None
    body = await child.dump()
    span = t1 - t0
    share = [(b - a) / span * 100 for a, b in zip(c0, c1, strict=True)]
    lat = body["latencies_ms"]
    age = body["send_age_ms"]
    window = Window(
        who=who,
        seconds=span,
        cpu_pct=share[0],
        fps=body["frames"] / span,
        lat_p50=pct(lat, 50),
        lat_p95=pct(lat, 95),
        lat_max=max(lat) if lat else float("nan"),
        age_p50=pct(age, 50),
        age_p95=pct(age, 95),
        probe_pct=body["probe_cpu_s"] / span * 100,
        sim_pct=share[1],
        server_pct=share[3] if len(share) > 3 else float("nan"),
        machine_pct=(m1 - m0) / span * 100,
        others_pct=max(0.0, (m1 - m0) / span * 100 - sum(share)),
        sizes=body["sizes"],
        extra={
            k: v
            for k, v in body.items()
            if k not in {"latencies_ms", "send_age_ms", "arrival_gaps_ms", "holds_ms"}
        },
        threads={k: (v - th0.get(k, 0.0)) / span * 100 for k, v in th1.items()},
    )
    if status is not None:
        window.extra["status"] = status
    gaps = body["arrival_gaps_ms"]
    half = 1000 / FPS / 2
    window.jitter = (
        f"arrival gaps p5/p50/p95/max {fmt_ms(pct(gaps, 5), 1)}/{fmt_ms(pct(gaps, 50), 1)}/"
        f"{fmt_ms(pct(gaps, 95), 1)}/{fmt_ms(max(gaps) if gaps else float('nan'), 1)} ms, "
        f"{_share(gaps, lambda g: g < half)} of frames came < {half:.1f} ms after the previous; "
        f"{_share(lat, lambda x: x > TARGET_LATENCY_P95_MS)} of frames had latency > "
        f"{TARGET_LATENCY_P95_MS:g} ms"
    )
    holds = body.get("holds_ms", [])
    if who == "bridge":
        big = sum(1 for h in holds if h > TARGET_LATENCY_P95_MS)
        window.jitter += (
            f"; pacing (MIN_SPACING) held {len(holds)} frames, p50 {fmt_ms(pct(holds, 50), 1)} "
            f"max {fmt_ms(max(holds) if holds else float('nan'), 1)} ms, {big} of them > "
            f"{TARGET_LATENCY_P95_MS:g} ms"
        )
    return window


def _share(values: Sequence[float], test: Callable[[float], bool]) -> str:
    if not values:
        return "n/a"
    return f"{sum(1 for v in values if test(v)) / len(values) * 100:.1f} %"


async def http_json(
    http: aiohttp.ClientSession, method: str, url: str, **kw: Any
) -> dict[str, Any]:
    async with http.request(method, url, **kw) as resp:
        body: dict[str, Any] = await resp.json()
        if resp.status >= 400:
            raise RuntimeError(f"{method} {url}: {resp.status} {body}")
        return body


async def subscriber_phase(
    role: str,
    http: aiohttp.ClientSession,
    sim_url: str,
    key: str,
    workdir: Path,
    env: dict[str, str],
    warmup: float,
    seconds: float,
    sim_pid: int,
    server_pid: int | None,
    encoding: str,
) -> Window:
    head = {"x-api-key": key}
    new = await http_json(
        http,
        "POST",
        f"{sim_url}/v1/streaming.new",
        headers=head,
        json={
            "quality": "high",
            "version": "v2",
            "video_encoding": encoding,
            "disable_idle_timeout": True,
        },
    )
    data = new["data"]
    session_id = data["session_id"]
    await http_json(
        http,
        "POST",
        f"{sim_url}/v1/streaming.start",
        headers=head,
        json={"session_id": session_id},
    )
    child = Child(role, ["--url", data["url"], "--token", data["access_token"]], workdir, env)
    try:
        await child.start()
        await asyncio.sleep(warmup)
        window = await measure(child, role, seconds, sim_pid, server_pid)
    finally:
        await child.stop()
        with contextlib.suppress(RuntimeError, aiohttp.ClientError):
            await http_json(
                http,
                "POST",
                f"{sim_url}/v1/streaming.stop",
                headers=head,
                json={"session_id": session_id},
            )
    return window


async def bridge_phase(
    http: aiohttp.ClientSession,
    sim_url: str,
    key: str,
    workdir: Path,
    env: dict[str, str],
    warmup: float,
    seconds: float,
    sim_pid: int,
    server_pid: int | None,
    pixel_format: str,
    encoding: str,
) -> Window:
    cfg = workdir / "bridge.yaml"
    cfg.write_text(
        json.dumps(  # JSON is YAML
            {
                "provider": "heygen",
                "heygen": {"base_url": sim_url, "timeout": 10, "retry_deadline": 10},
                "avatar": {"quality": "high", "video_encoding": encoding},
                "camera": {
                    "backend": "bench-null",
                    "width": 1280,
                    "height": 720,
                    "fps": FPS,
                    "pixel_format": pixel_format,
                },
                "microphone": {"enabled": False},
                "control": {"port": 0},  # its choice: the launcher reads the URL it serves at
                "log": {"level": "WARNING"},
            }
        )
    )
    child = Child("bridge", ["--config", str(cfg)], workdir, {**env, "HEYGEN_API_KEY": key})
    try:
        await child.start()
        status_url = f"{child.running.url}/v1/status"

        async def status() -> dict[str, Any]:
            child.running.check_running()
            return await http_json(http, "GET", status_url)

        await eventually(
            status,
            until=lambda s: s["session"]["state"] == "live" and s["camera"]["frames_in"],
            within=60,
            what="the bridge live, frames arriving",
            every=0.25,
        )
        await asyncio.sleep(warmup)

        async def camera_status() -> dict[str, Any]:
            # Read before the window closes: the sink's latency list then holds the window.
            cam: dict[str, Any] = (await http_json(http, "GET", status_url))["camera"]
            return cam

        window = await measure(child, "bridge", seconds, sim_pid, server_pid, camera_status)
    finally:
        await child.stop()
    return window


async def run_e2e(args: argparse.Namespace) -> list[Window] | str:
    from bridge.sim import DEFAULT_HEYGEN_KEY
    from bridge.sim.livekit_server import LiveKitServer, find_binary

    binary = find_binary()
    if binary is None:
        return (
            "skipped: livekit-server not found (go install "
            "github.com/livekit/livekit-server/cmd/server@v1.13.5)"
        )
    windows: list[Window] = []
    with tempfile.TemporaryDirectory(prefix="bench-video-") as tmp:
        workdir = Path(tmp)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.endswith(("_API_KEY", "_BASE_URL")) and not k.startswith("LIVEKIT_")
        }
        server = LiveKitServer(binary, log_path=workdir / "livekit.log")
        await server.start()
        server_pid = next((p for p, _ in children_of(os.getpid())), None)
        try:
            async with (
                sim_process(server, workdir / "sim.log", env=env) as sim,
                aiohttp.ClientSession() as http,
            ):
                for n in range(args.rounds):
                    for role in ("baseline", "discard"):
                        print(f"   round {n + 1}/{args.rounds}: {role} ...", flush=True)
                        window = await subscriber_phase(
                            role, http, sim.url, DEFAULT_HEYGEN_KEY, workdir, env,
                            args.warmup, args.seconds, sim.pid, server_pid, args.encoding,
                        )  # fmt: skip
                        window.round = n + 1
                        windows.append(window)
                    print(f"   round {n + 1}/{args.rounds}: bridge ...", flush=True)
                    window = await bridge_phase(
                        http, sim.url, DEFAULT_HEYGEN_KEY, workdir, env,
                        args.warmup, args.seconds, sim.pid, server_pid, args.pixel_format,
                        args.encoding,
                    )  # fmt: skip
                    window.round = n + 1
                    windows.append(window)
        finally:
            server.stop()
    return windows


def print_e2e(result: list[Window] | str, args: argparse.Namespace) -> None:
    print()
    print(
        f"== 2. End to end: livekit-server --dev + simulator avatar 720p30 {args.encoding}; "
        "each subject "
        f"alone with the avatar, {args.warmup:g} s warm-up, {args.seconds:g} s steady window"
    )
    if isinstance(result, str):
        print(f"   {result}")
        return
    print("   CPU = utime+stime of the subject's whole process over the window, % of one core")
    print("   latency: bridge = frame arrival -> camera write (webcam sink stats);")
    print("            baseline = frame arrival -> RGB copy ready")
    print("   discard: the SDK's floor, the bridge's stream settings, every frame dropped")
    print("            (its s->o is avatar send -> arrival: the upstream share alone)")
    print(
        f"   send->out: avatar capture call -> camera write / RGB ready, incl. {args.encoding} "
        "encode, SFU,"
    )
    print(
        f"              jitter buffer and decode (every {STAMP_EVERY}th frame's stamp; info only)"
    )
    print("   probe %: the bench's own stamp reading inside the subject (included in its CPU %)")
    print("   sim/SFU: the avatar simulator and livekit-server; all: every busy core-second of")
    print("   the machine (200 = both cores); other: all minus subject, sim, SFU and this bench")
    head = (
        f"   {'round/subject':<16} {'CPU %':>6} {'fps':>5} {'lat p50':>8} {'lat p95':>8} "
        f"{'lat max':>8} {'s->o p50':>8} {'s->o p95':>8} {'probe %':>7} | "
        f"{'sim %':>6} {'SFU %':>6} {'all %':>6} {'other %':>7}  frames"
    )
    print(head)
    for w in result:
        sizes = ", ".join(f"{k}:{v}" for k, v in w.sizes.items()) or "?"
        print(
            f"   {f'{w.round} {w.who}':<16} {w.cpu_pct:6.1f} {w.fps:5.1f} "
            f"{fmt_ms(w.lat_p50, 2):>8} {fmt_ms(w.lat_p95, 2):>8} {fmt_ms(w.lat_max, 1):>8} "
            f"{fmt_ms(w.age_p50, 1):>8} {fmt_ms(w.age_p95, 1):>8} {w.probe_pct:7.2f} | "
            f"{w.sim_pct:6.1f} {w.server_pct:6.1f} {w.machine_pct:6.1f} {w.others_pct:7.1f}  "
            f"{sizes}"
        )
    for w in result:
        top = sorted(w.threads.items(), key=lambda kv: -kv[1])
        shown = ", ".join(f"{name} {share:.1f}" for name, share in top[:8] if share >= 0.05)
        print(f"   {w.round} {w.who} threads, % of one core: {shown}")
        if w.who != "discard":  # it keeps no per-frame figures: it does nothing with them
            print(f"   {w.round} {w.who} {w.jitter}")
        if w.who != "bridge":
            continue
        e = w.extra
        st = e.get("status", {})
        print(
            f"   {w.round} bridge camera: engine {e.get('engine')}, frames in/out "
            f"{e.get('frames_in')}/{e.get('frames_out')}, repeats {e.get('repeats')}, "
            f"slate {e.get('slate_frames')}, dropped {e.get('dropped')}, max_late "
            f"{e.get('max_late_ms', 0):.1f} ms, max_gap {e.get('max_gap_ms', 0):.1f} ms; "
            f"GET /v1/status: latency p50/p95 {st.get('latency_ms_p50')}/"
            f"{st.get('latency_ms_p95')} ms"
        )
    bridges = [w for w in result if w.who == "bridge"]
    bases = [w for w in result if w.who == "baseline"]
    if not bridges or not bases:
        return

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    b_cpu, r_cpu = mean([w.cpu_pct for w in bases]), mean([w.cpu_pct for w in bridges])
    b_p95, r_p95 = mean([w.lat_p95 for w in bases]), mean([w.lat_p95 for w in bridges])
    r_probe = mean([w.probe_pct for w in bridges])
    print("   mean over rounds:")
    print(
        f"     CPU, % of one core:  bridge {r_cpu:.1f}  (of which the bench's stamp probe "
        f"{r_probe:.2f})  vs baseline {b_cpu:.1f}   target <= {TARGET_DAEMON_PCT:g}: "
        f"{'MEETS' if r_cpu <= TARGET_DAEMON_PCT else 'MISSES'}"
    )
    print(
        f"     latency p95, ms:     bridge {r_p95:.2f}  vs baseline {b_p95:.2f}   "
        f"target <= {TARGET_LATENCY_P95_MS:g}: "
        f"{'MEETS' if r_p95 <= TARGET_LATENCY_P95_MS else 'MISSES'}"
    )
    print_floor(bridges, [w for w in result if w.who == "discard"])


def print_floor(bridges: list[Window], floors: list[Window]) -> None:
    """The daemon against the SDK's receive-and-discard floor, and the latency split."""
    if not floors:
        return

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    ratios = [
        b.cpu_pct / f.cpu_pct
        for b in bridges
        for f in floors
        if b.round == f.round and f.cpu_pct > 0
    ]
    f_cpu, r_cpu = mean([w.cpu_pct for w in floors]), mean([w.cpu_pct for w in bridges])
    ratio = r_cpu / f_cpu if f_cpu > 0 else float("nan")
    per_round = ", ".join(f"{r:.2f}" for r in ratios)
    print(
        f"     CPU vs the SDK floor: bridge {r_cpu:.1f} vs discard {f_cpu:.1f} = {ratio:.2f}x "
        f"(per round {per_round}); bridge's own share {r_cpu - f_cpu:.1f} points   target "
        f"<= {TARGET_FLOOR_RATIO:g}x: {'MEETS' if ratio <= TARGET_FLOOR_RATIO else 'MISSES'}"
    )
    up = mean([w.age_p50 for w in floors])
    own = mean([w.lat_p50 for w in bridges])
    whole = mean([w.age_p50 for w in bridges])
    print(
        f"     latency split, p50 ms: avatar send -> arrival (encode, SFU, jitter buffer, "
        f"decode, SDK; the discard subscriber's) {up:.1f}; arrival -> camera write (the "
        f"bridge's share) {own:.2f}; the bridge's send -> camera {whole:.1f}"
    )


# ------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/video.py", description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30.0, help="e2e steady window (default 30)")
    p.add_argument("--warmup", type=float, default=8.0, help="e2e warm-up per phase (default 8)")
    p.add_argument("--rounds", type=int, default=2, help="baseline+bridge rounds (default 2)")
    p.add_argument("--frames", type=int, default=600, help="micro frames per row (>= 300)")
    p.add_argument("--pixel-format", choices=["YUYV", "I420"], default="YUYV")
    p.add_argument(
        "--encoding", choices=["H264", "VP8"], default="H264", help="the avatar's video codec"
    )
    p.add_argument("--skip-micro", action="store_true")
    p.add_argument("--skip-e2e", action="store_true")
    args = p.parse_args(argv)
    if args.frames < 300:
        p.error("--frames must be at least 300")
    return args


def child_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="bench/video.py (child)")
    p.add_argument("role", choices=list(ROLES))
    p.add_argument("--dump", type=Path, required=True)
    p.add_argument("--config", type=Path)
    p.add_argument("--url")
    p.add_argument("--token")
    args = p.parse_args(argv)
    if args.role == "_bridge":
        return asyncio.run(bridge_child(args.config, args.dump))
    subscriber = baseline_child if args.role == "_baseline" else discard_child
    return asyncio.run(subscriber(args.url, args.token, args.dump))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ROLES:
        return child_main(argv)
    args = parse_args(argv)
    print("heygen-bridge video benchmark (bench/video.py)")
    for line in machine_lines():
        print(f"  {line}")
    if not args.skip_micro:
        m0, c0, t0 = machine_busy_s(), proc_cpu_s(os.getpid()), time.perf_counter()
        micro = run_micro(args.frames, warmup=30)
        m1, c1, t1 = machine_busy_s(), proc_cpu_s(os.getpid()), time.perf_counter()
        others = max(0.0, (m1 - m0) - (c1 - c0)) / (t1 - t0) * 100
        print_micro(micro, args.frames, others)
    if not args.skip_e2e:
        print_e2e(asyncio.run(run_e2e(args)), args)
    print()
    print(f"load avg at end: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
