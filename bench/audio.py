"""Audio path benchmark: MicSink vs a naive pacat pipe, on a real private PulseAudio.

    python bench/audio.py [--seconds 120] [--seed 1] [--jitter-buffer-ms 60]

Both runs play the same 440 Hz tone (0.5 FS) as 10 ms chunks whose arrival times come from
one seeded schedule: network jitter (2 ms + an exponential tail, mean 3 ms) plus, every ~4 s
on average, a 30–50 ms stall after which the held chunks arrive together (what a LiveKit
audio stream looks like from the event loop).  The devices are made by ``PulseDevices``
(same null sink + remap source, same watcher) and ``parec --latency-msec=10`` records the
virtual mic.

(a) ours: ``MicSink.put()`` from an asyncio task as each chunk arrives;
(b) baseline: each chunk written straight to a ``pacat --latency-msec=20`` pipe as it arrives
    (from a thread; no buffer, no silence between chunks) — what a naive integration does.

Printed for both: gaps (runs of > 10 ms of digital silence inside the tone) per minute, the
sink's own underrun count (ours only: pacat counts none), and the latency from a chunk's
arrival to the moment ``parec`` hands it over (marker samples every 0.5 s; includes parec's
own ~10 ms), next to what ``MicSink.latency_ms()`` predicted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.kit

from bridge.config import MicrophoneConfig
from bridge.devices.pulse_modules import PulseDevices
from bridge.devices.pulse_stream import BLOCK, RATE
from bridge.media.frames import AudioChunk
from tests.kit.eventually import eventually
from tests.kit.pulse import (
    PrivatePulse,
    Recorder,
    pulse_available,
    rms,
    running_mic,
    tone_region,
    zero_runs,
)

MARK_EVERY = 50  # chunks: a marker each 0.5 s
MARK, MARK_BASE = 32767, 20000  # marker = [32767, 20000 + n]; the tone never exceeds 16384
GAP_MS = 10
BASELINE_LATENCY_MS = 20


def mic_config(jitter_buffer_ms: int) -> MicrophoneConfig:
    return MicrophoneConfig(
        sink_name="bench_avatar_sink",
        sink_description="Bench Avatar Speaker",
        source_name="bench_avatar_mic",
        source_description="Bench Avatar Mic",
        jitter_buffer_ms=jitter_buffer_ms,
    )


def arrivals(n: int, rng: random.Random) -> tuple[list[float], int]:
    """When chunk k arrives, in s after the start (in order, as a socket delivers); stalls."""
    times: list[float] = []
    stall_until = float("-inf")
    latest = 0.0
    stalls = 0
    for k in range(n):
        nominal = k * 0.010
        if rng.random() < 1 / 400:
            stall_until = max(stall_until, nominal + rng.uniform(0.030, 0.050))
            stalls += 1
        at = nominal + 0.002 + rng.expovariate(1 / 0.003)
        if nominal < stall_until:
            at = max(at, stall_until)
        latest = max(latest, at)
        times.append(latest)
    return times, stalls


def tone_chunks(n: int) -> list[npt.NDArray[np.int16]]:
    t = np.arange(n * BLOCK) / RATE
    tone = np.round(0.5 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    chunks = [tone[k * BLOCK : (k + 1) * BLOCK].copy() for k in range(n)]
    for k in range(0, n, MARK_EVERY):
        chunks[k][0], chunks[k][1] = MARK, MARK_BASE + k // MARK_EVERY
    return chunks


@dataclass
class Result:
    name: str
    seconds: float = 0.0
    gaps: int = 0
    longest_gap_ms: float = 0.0
    underruns: int | None = None
    overruns: int | None = None
    trims: int | None = None
    late_writes: int | None = None
    max_write_gap_ms: float | None = None
    latencies_ms: list[float] = field(default_factory=list)
    predicted_ms: list[float] = field(default_factory=list)
    markers_lost: int = 0
    level_db: float = 0.0
    cpu_ms_per_s: float = 0.0


def analyse(
    result: Result,
    recorder: Recorder,
    put_times: dict[int, float],
    expected_rms: float,
) -> None:
    x = recorder.samples()
    start, end = tone_region(x, floor=expected_rms * 0.25)
    edge = RATE // 20
    tone = x[start + edge : end - edge]
    result.seconds = len(tone) / RATE
    runs = [length for _, length in zero_runs(tone, RATE * GAP_MS // 1000 + 1)]
    result.gaps = len(runs)
    result.longest_gap_ms = max(runs, default=0) * 1000 / RATE
    loud = tone[np.abs(tone.astype(np.int32)) < MARK_BASE]
    result.level_db = 20 * float(np.log10(max(rms(loud), 1e-9) / expected_rms))
    found = 0
    for pos in np.flatnonzero(x[:-1] == MARK):
        marker = int(x[pos + 1]) - MARK_BASE
        put = put_times.get(marker)
        heard = recorder.time_of_sample(int(pos))
        if put is None or heard is None or marker < 0:
            continue
        found += 1
        result.latencies_ms.append((heard - put) * 1000)
    result.markers_lost = len(put_times) - found


def cpu_ms(pid_or_tid: str) -> float:
    """User + system CPU of a process (``"1234"``) or own thread (``"self/task/1234"``), ms."""
    try:
        stat = Path(f"/proc/{pid_or_tid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def own_threads_cpu_ms(exclude: set[int | None]) -> dict[int, float]:
    """CPU per thread of this process, except ``exclude`` (the feeder, the recorder)."""
    return {
        int(tid): cpu_ms(f"self/task/{tid}")
        for tid in os.listdir("/proc/self/task")
        if int(tid) not in exclude
    }


def pct(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))]:.1f}"


async def run_ours(
    pulse: PrivatePulse,
    cfg: MicrophoneConfig,
    chunks: list[npt.NDArray[np.int16]],
    schedule: list[float],
) -> Result:
    result = Result("MicSink (ours)")
    recorder = Recorder(cfg.source_name, env=pulse.env())
    put_times: dict[int, float] = {}
    async with running_mic(cfg) as (mic, _):
        try:
            await eventually(lambda: mic.stats.state == "silent", within=30, what="mic writing")
            recorder.start()
            await asyncio.sleep(0.5)
            skip = {threading.main_thread().native_id, recorder.reader_thread_id}
            cpu0 = own_threads_cpu_ms(skip)
            start = time.perf_counter() + 0.05
            for k, (chunk, at) in enumerate(zip(chunks, schedule, strict=True)):
                await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
                now = time.perf_counter()
                mic.put(AudioChunk(chunk, RATE, now))
                if k % MARK_EVERY == 0:
                    put_times[k // MARK_EVERY] = now
                    predicted = mic.latency_ms()
                    if predicted is not None:
                        result.predicted_ms.append(predicted)
            await asyncio.sleep(0.5)
            cpu1 = own_threads_cpu_ms(skip)
            used = sum(cpu1[t] - cpu0.get(t, 0.0) for t in cpu1)
            result.cpu_ms_per_s = used / (schedule[-1] + 0.55)
        finally:
            await asyncio.to_thread(recorder.stop)
    stats = mic.stats
    result.underruns, result.overruns, result.trims = stats.underruns, stats.overruns, stats.trims
    result.late_writes, result.max_write_gap_ms = stats.late_writes, stats.max_write_gap_ms
    analyse(result, recorder, put_times, rms(np.concatenate(chunks[1:MARK_EVERY])))
    return result


def start_pacat(cfg: MicrophoneConfig, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            "pacat",
            "--playback",
            "--raw",
            "--format=s16le",
            f"--rate={RATE}",
            "--channels=1",
            f"--latency-msec={BASELINE_LATENCY_MS}",
            "-d",
            cfg.sink_name,
        ],
        stdin=subprocess.PIPE,
        env=env,
    )


async def run_baseline(
    pulse: PrivatePulse,
    cfg: MicrophoneConfig,
    chunks: list[npt.NDArray[np.int16]],
    schedule: list[float],
) -> Result:
    result = Result("pacat pipe (baseline)")
    devices = PulseDevices(cfg)
    keeper = asyncio.create_task(devices.maintain(), name="mic-devices")
    recorder = Recorder(cfg.source_name, env=pulse.env())
    put_times: dict[int, float] = {}

    def feed(fd: int, start: float) -> None:
        for k, (chunk, at) in enumerate(zip(chunks, schedule, strict=True)):
            time.sleep(max(0.0, start + at - time.perf_counter()))
            now = time.perf_counter()
            os.write(fd, chunk.tobytes())
            if k % MARK_EVERY == 0:
                put_times[k // MARK_EVERY] = now

    pacat: subprocess.Popen[bytes] | None = None
    try:
        await eventually(lambda: devices.state.ready, within=30, what="devices made")
        pacat = await asyncio.to_thread(start_pacat, cfg, pulse.env())
        assert pacat.stdin is not None
        recorder.start()
        await asyncio.sleep(0.5)
        cpu0 = cpu_ms(str(pacat.pid))
        feeder = threading.Thread(
            target=feed,
            args=(pacat.stdin.fileno(), time.perf_counter() + 0.05),
            name="baseline-feeder",
        )
        feeder.start()
        await asyncio.to_thread(feeder.join)
        await asyncio.sleep(0.5)
        result.cpu_ms_per_s = (cpu_ms(str(pacat.pid)) - cpu0) / (schedule[-1] + 0.55)
    finally:
        if pacat is not None and pacat.stdin is not None:
            pacat.stdin.close()
            await asyncio.to_thread(pacat.wait)
        await asyncio.to_thread(recorder.stop)
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
    analyse(result, recorder, put_times, rms(np.concatenate(chunks[1:MARK_EVERY])))
    return result


def report(results: list[Result], args: argparse.Namespace, server: str) -> None:
    print(
        f"audio bench: {args.seconds:g} s of 10 ms chunks (440 Hz, 0.5 FS), jitter seed "
        f"{args.seed}, {args.stalls} stalls of 30–50 ms; {server}"
    )
    print(
        f"ours: jitter buffer {args.jitter_buffer_ms} ms + libpulse stream; baseline: "
        f"pacat --latency-msec={BASELINE_LATENCY_MS}, chunks written as they arrive"
    )
    cols = [r.name for r in results]
    print(f"{'':38}" + "".join(f"{c:>24}" for c in cols))

    def row(label: str, values: list[str]) -> None:
        print(f"{label:38}" + "".join(f"{v:>24}" for v in values))

    def per_min(r: Result, n: int | None) -> str:
        return "-" if n is None or not r.seconds else f"{n * 60 / r.seconds:.2f}"

    row("tone recorded (s)", [f"{r.seconds:.1f}" for r in results])
    row("gaps > 10 ms per minute", [per_min(r, r.gaps) for r in results])
    row("longest gap (ms)", [f"{r.longest_gap_ms:.1f}" for r in results])
    row(
        "underruns per minute (sink's count)",
        [per_min(r, r.underruns) if r.underruns is not None else "n/a" for r in results],
    )
    row(
        "overruns / drift trims",
        [f"{r.overruns} / {r.trims}" if r.overruns is not None else "n/a" for r in results],
    )
    row(
        "writer late: stream ran dry / max idle",
        [
            f"{r.late_writes} / {r.max_write_gap_ms:.1f} ms"
            if r.late_writes is not None and r.max_write_gap_ms is not None
            else "n/a"
            for r in results
        ],
    )
    row("level vs sent (dB)", [f"{r.level_db:+.2f}" for r in results])
    for q, label in ((0.5, "p50"), (0.95, "p95"), (1.0, "max")):
        row(f"latency arrival→recorder {label} (ms)", [pct(r.latencies_ms, q) for r in results])
    row("latency_ms() predicted p50 (ms)", [pct(r.predicted_ms, 0.5) for r in results])
    row("markers lost", [str(r.markers_lost) for r in results])
    row("CPU ms/s (writer + libpulse | pacat)", [f"{r.cpu_ms_per_s:.1f}" for r in results])


async def main_async(args: argparse.Namespace) -> int:
    missing = pulse_available()
    if missing is not None:
        print(f"cannot run: {missing}", file=sys.stderr)
        return 1
    sys.setswitchinterval(0.001)  # as the daemon does (bridge/app.py)
    n = int(args.seconds * 100)
    rng = random.Random(args.seed)
    schedule, args.stalls = arrivals(n, rng)
    chunks = tone_chunks(n)
    root = Path(tempfile.mkdtemp(prefix="hb-bench-"))
    pulse = PrivatePulse(root)
    saved = dict(os.environ)
    try:
        pulse.start()
        os.environ.update(pulse.client_env())
        info = pulse.pactl("info")
        server = next(
            (
                line.split(":", 1)[1].strip()
                for line in info.splitlines()
                if line.startswith("Server Version")
            ),
            "?",
        )
        cfg = mic_config(args.jitter_buffer_ms)
        ours = await run_ours(pulse, cfg, chunks, schedule)
        baseline = await run_baseline(pulse, cfg, chunks, schedule)
        report([ours, baseline], args, f"private PulseAudio {server}")
    finally:
        pulse.stop()
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(root, ignore_errors=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="length of each run")
    parser.add_argument("--seed", type=int, default=1, help="seed of the arrival schedule")
    parser.add_argument("--jitter-buffer-ms", type=int, default=60)
    args = parser.parse_args()
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
