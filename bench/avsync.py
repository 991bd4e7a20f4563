"""Lip sync at the sinks, end to end: simulator → real LiveKit → bridge → camera + real mic.

    python bench/avsync.py [--seconds 120]

The simulator runs as its own process with ``--sync-marks``: one frame and one audio click per
second belong to the same instant (tests/kit/avsync.py explains the measurement).  Its avatar
also plays a quiet 440 Hz tone the whole time, so gaps in the voice can be counted.  The
camera is the recording backend, the mic a real private PulseAudio recorded with ``parec``.

(a) ours: the bridge as configured by default (60 ms jitter buffer, video delayed by the
    audio path's measured latency);
(b) baseline, same run: the same bridge writing the audio as it arrives (jitter buffer 0)
    and the video undelayed — the same stream without the bridge's buffering and alignment.

Printed for both: camera−mic offset p50/p95 over the clicks (|offset| for p95), the voice's
latency, mic underruns and recorded gaps (> 10 ms of silence inside the tone) per minute.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyvirtualcam

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.kit

from bridge.app import Bridge
from bridge.sim.livekit_server import LiveKitServer, find_binary
from tests.kit import avsync
from tests.kit.bridge_process import bridge_settings, running
from tests.kit.camera import RECORDINGS, RecordingBackend
from tests.kit.pulse import PrivatePulse, Recorder, pulse_available, zero_runs
from tests.kit.simproc import SimProcess, sim_process

LOADAVG = Path("/proc/loadavg")
TONE_LEVEL = 0.1  # under the clicks' threshold, above silence
GAP_MS = 10


@dataclass
class Result:
    name: str
    offsets_ms: list[float]
    audio_ms: list[float]
    video_ms: list[float]
    underruns: int
    overruns: int
    trims: int
    gaps: int
    seconds: float
    video_delay_ms: float

    def p(self, values: list[float], q: float) -> float:
        return float(np.percentile(values, q)) if values else float("nan")


async def one_round(
    name: str,
    *,
    sim: SimProcess,
    livekit: LiveKitServer,
    pulse: PrivatePulse,
    seconds: float,
    buffered: bool,
) -> Result:
    tag = "ours" if buffered else "base"
    device = f"bench-av-{tag}"
    settings = bridge_settings(
        sim.url,
        livekit,
        provider="heygen",
        camera={"device": device, "width": 640, "height": 360},
        microphone={
            "sink_name": f"bench_{tag}_sink",
            "source_name": f"bench_{tag}_mic",
            "jitter_buffer_ms": 60 if buffered else 0,
        },
        quality="low",
    )
    bridge = Bridge(settings)
    if not buffered:
        bridge.aligner = None

    def mic_writing(bridge: Bridge) -> bool:
        live, mic = bridge.manager.state == "live", bridge.mic
        return live and mic is not None and mic.stats.state in ("silent", "speaking")

    async with running(bridge, ready=mic_writing):
        assert bridge.manager.session is not None and bridge.mic is not None
        session = bridge.manager.session.session_id
        await sim.signal(session, 440, seconds + 8, TONE_LEVEL)
        await asyncio.sleep(4.0)  # warm-up: bandwidth estimate, buffers, the aligner
        recorder = Recorder(f"bench_{tag}_mic", env=pulse.env(), latency_msec=5).start()
        start = time.perf_counter()
        await asyncio.sleep(seconds)
        await asyncio.to_thread(recorder.stop)
        mic = bridge.mic.stats.snapshot()
        delay = bridge.webcam.stats.delay_ms if bridge.webcam else 0.0
    sync = avsync.measure(RECORDINGS[device].since(start), recorder, avsync.wall_offset())
    samples = recorder.samples()
    gaps = len(zero_runs(samples, 48000 * GAP_MS // 1000))
    return Result(
        name=name,
        offsets_ms=sync.offsets_ms,
        audio_ms=sync.audio_ms,
        video_ms=sync.video_ms,
        underruns=int(mic["underruns"]),
        overruns=int(mic["overruns"]),
        trims=int(mic["trims"]),
        gaps=gaps,
        seconds=seconds,
        video_delay_ms=delay,
    )


def report(results: list[Result]) -> None:
    ours, base = results
    per_min = 60.0 / ours.seconds

    def row(label: str, a: str, b: str) -> None:
        print(f"  {label:<44} {a:>16} {b:>22}")

    print()
    row("", "bridge (ours)", "baseline (unbuffered)")
    figures: list[tuple[str, Callable[[Result], float]]] = [
        ("camera-mic offset p50 (ms, + = picture late)", lambda r: r.p(r.offsets_ms, 50)),
        ("|camera-mic offset| p95 (ms)", lambda r: r.p([abs(o) for o in r.offsets_ms], 95)),
        ("voice latency sim->mic p50 (ms)", lambda r: r.p(r.audio_ms, 50)),
        ("picture latency sim->camera p50 (ms)", lambda r: r.p(r.video_ms, 50)),
        ("video alignment delay (ms)", lambda r: r.video_delay_ms),
    ]
    for name, pick in figures:
        row(name, f"{pick(ours):.1f}", f"{pick(base):.1f}")
    row(
        "mic underruns per minute",
        f"{ours.underruns * per_min:.2f}",
        f"{base.underruns * per_min:.2f}",
    )
    row(
        "gaps > 10 ms in the voice per minute",
        f"{ours.gaps * per_min:.2f}",
        f"{base.gaps * per_min:.2f}",
    )
    row("overruns / trims", f"{ours.overruns} / {ours.trims}", f"{base.overruns} / {base.trims}")
    row("clicks matched", str(len(ours.offsets_ms)), str(len(base.offsets_ms)))
    print()
    p95 = ours.p([abs(o) for o in ours.offsets_ms], 95)
    verdict = "MEETS" if p95 <= 20 else "MISSES"  # 95 % of the clicks within ±20 ms
    print(
        f"  target: A/V offset within ±20 ms (DESIGN.md): p50 {ours.p(ours.offsets_ms, 50):.1f}"
        f" ms, p95 |offset| {p95:.1f} ms -> {verdict}"
    )


async def main_async(args: argparse.Namespace) -> int:
    missing = pulse_available()
    binary = find_binary()
    if missing or binary is None:
        print(f"cannot run: {missing or 'livekit-server not installed (./scripts/test builds it)'}")
        return 1
    pyvirtualcam.register_backend("recording", RecordingBackend)
    root = Path(tempfile.mkdtemp(prefix="bench-av-"))
    livekit = await LiveKitServer(binary, log_path=root / "livekit.log").start()
    pulse = PrivatePulse(Path(tempfile.mkdtemp(prefix="hb-pa-")))
    pulse.start()
    os.environ.update(pulse.client_env())
    print("heygen-bridge A/V sync benchmark (bench/avsync.py)")
    print(
        f"  date {time.strftime('%Y-%m-%dT%H:%M:%S%z')}, {args.seconds:g} s per round, "
        f"load avg {args.loadavg}"
    )
    try:
        async with sim_process(livekit, root / "sim.log", "--sync-marks") as sim:
            results = [
                await one_round(
                    name,
                    sim=sim,
                    livekit=livekit,
                    pulse=pulse,
                    seconds=args.seconds,
                    buffered=buffered,
                )
                for name, buffered in (("ours", True), ("baseline", False))
            ]
    finally:
        pulse.stop()
        livekit.stop()
    report(results)
    del RECORDINGS["bench-av-ours"], RECORDINGS["bench-av-base"]
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="measured seconds per round")
    args = parser.parse_args()
    args.loadavg = " ".join(LOADAVG.read_text().split()[:3])
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
