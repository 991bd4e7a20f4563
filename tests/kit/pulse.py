"""A real PulseAudio daemon, private to one test (reference/test-recipes.md, "PulseAudio").

:class:`PrivatePulse` runs ``pulseaudio --daemonize=no -n --exit-idle-time=-1
--load=module-native-protocol-unix`` with its own ``HOME``/``XDG_RUNTIME_DIR``/
``PULSE_RUNTIME_PATH`` under a short temporary directory (a unix socket path must stay under
108 bytes, which pytest's ``tmp_path`` does not promise), so it never meets the machine's own
server.  It works as root (the daemon only warns).  Clients (``pactl``, ``parec``, libpulse in
the code under test) find it through ``PULSE_SERVER``, which the :func:`pulse_server` fixture
sets for the test; ``kill()`` + ``start()`` simulate a sound-server crash and restart.

:class:`Recorder` records a source with ``parec`` and remembers when each byte arrived; the
``tone_*`` helpers analyse what it recorded.  ``bench/audio.py`` uses them too.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from bridge.config import MicrophoneConfig
from bridge.devices.pulse_modules import PulseDevices
from bridge.sinks.mic import MicSink
from tests.kit.eventually import eventually_blocking

INSTALL = "sudo apt-get install pulseaudio pulseaudio-utils"
RATE = 48000


class PrivatePulse:
    """One private PulseAudio daemon; ``start()``/``stop()``/``kill()`` may be repeated."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.runtime = root / "run"
        self.pulse_dir = self.runtime / "pulse"
        self.log_path = root / "pulseaudio.log"
        self.server = f"unix:{self.pulse_dir / 'native'}"
        for d in (self.home, self.runtime, self.pulse_dir):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o700)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def client_env(self) -> dict[str, str]:
        """What a client needs to reach this daemon and nothing else."""
        return {
            "PULSE_SERVER": self.server,
            "HOME": str(self.home),
            "XDG_RUNTIME_DIR": str(self.runtime),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "PULSE_RUNTIME_PATH": str(self.pulse_dir),
            "PULSE_STATE_PATH": str(self.root / "state"),
        }

    def env(self) -> dict[str, str]:
        return {**os.environ, **self.client_env()}

    def start(self, timeout: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("the private PulseAudio is already running")
        daemon_env = self.env()
        daemon_env.pop("PULSE_SERVER")  # the daemon itself must not look for a server
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    "pulseaudio",
                    "--daemonize=no",
                    "-n",
                    "--exit-idle-time=-1",
                    # Audio over the socket, not shared memory: a client SIGKILLed mid-stream
                    # (the crash tests) once made PulseAudio 16 abort on an assertion in its
                    # shared-memory import (memblock.c:780, memblock_replace_import).
                    "--disable-shm=true",
                    "--use-pid-file=no",
                    "--log-target=stderr",
                    "--load=module-native-protocol-unix",
                ],
                env=daemon_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self.starts += 1
        proc = self.proc

        def answering() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"pulseaudio exited at start:\n{self.log_tail()}")
            return self.pactl_ok()

        try:
            eventually_blocking(
                answering, within=timeout, what="pulseaudio answering `pactl info`", every=0.05
            )
        except AssertionError as exc:
            self.stop()
            raise RuntimeError(f"{exc}:\n{self.log_tail()}") from None

    def pactl_ok(self) -> bool:
        done = subprocess.run(
            ["pactl", "info"], env=self.env(), capture_output=True, timeout=5, check=False
        )
        return done.returncode == 0

    def pactl(self, *args: str) -> str:
        done = subprocess.run(
            ["pactl", *args], env=self.env(), capture_output=True, text=True, timeout=10
        )
        if done.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def stop(self) -> None:
        """Stop the daemon by its PID (SIGTERM, then SIGKILL after 5 s)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def kill(self) -> None:
        """A crash: SIGKILL, no clean-up by the daemon."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # --- what the server holds, for assertions ----------------------------------------------

    def modules(self) -> list[tuple[int, str, str]]:
        """``(index, name, arguments)`` of every loaded module."""
        rows = []
        for line in self.pactl("list", "modules", "short").splitlines():
            parts = line.split("\t")
            if len(parts) >= 2:
                rows.append((int(parts[0]), parts[1], parts[2] if len(parts) > 2 else ""))
        return rows

    def objects(self, kind: str) -> list[dict[str, str]]:
        """``pactl list sinks|sources``: one dict per object (Name, Description, properties)."""
        found: list[dict[str, str]] = []
        for block in self.pactl("list", kind).split("\n\n"):
            entry: dict[str, str] = {}
            for raw in block.splitlines():
                line = raw.strip()
                if " = " in line and raw.startswith("\t\t"):
                    key, _, value = line.partition(" = ")
                    entry[key] = value.strip('"')
                elif ": " in line:
                    key, _, value = line.partition(": ")
                    entry.setdefault(key, value)
            if "Name" in entry:
                found.append(entry)
        return found


def pulse_available() -> str | None:
    """None when a private daemon can run here, else why not and how to fix it."""
    for binary in ("pulseaudio", "pactl", "parec"):
        if shutil.which(binary) is None:
            return f"{binary} not found: {INSTALL}"
    return None


@pytest.fixture
def pulse_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivatePulse]:
    """A fresh private PulseAudio for this test; ``PULSE_SERVER`` etc. point at it."""
    missing = pulse_available()
    if missing is not None:
        pytest.skip(missing)
    root = Path(tempfile.mkdtemp(prefix="hb-pa-"))
    server = PrivatePulse(root)
    try:
        server.start()
        for key, value in server.client_env().items():
            monkeypatch.setenv(key, value)
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


# --- recording ---------------------------------------------------------------------------------


class Recorder:
    """``parec`` on a source, read by a thread that notes when the bytes came."""

    def __init__(self, source: str, *, env: dict[str, str], latency_msec: int = 10) -> None:
        self.source = source
        self.argv = [
            "parec",
            "-d",
            source,
            "--raw",
            "--format=s16le",
            f"--rate={RATE}",
            "--channels=1",
            f"--latency-msec={latency_msec}",
        ]
        self.env = env
        self.data = bytearray()
        # (perf_counter, total bytes so far) after each read
        self.reads: list[tuple[float, int]] = []
        self.started = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> Recorder:
        self.started = time.perf_counter()
        self._proc = subprocess.Popen(
            self.argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self._thread = threading.Thread(target=self._read, name="parec-reader", daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while True:
            block = os.read(fd, 65536)
            if not block:
                return
            now = time.perf_counter()
            with self._lock:
                self.data += block
                self.reads.append((now, len(self.data)))

    @property
    def reader_thread_id(self) -> int | None:
        return self._thread.native_id if self._thread is not None else None

    def first_data_after(self) -> float | None:
        """Seconds from ``start()`` to the first bytes, or None."""
        with self._lock:
            return self.reads[0][0] - self.started if self.reads else None

    def seconds(self) -> float:
        with self._lock:
            return len(self.data) / 2 / RATE

    def samples(self) -> npt.NDArray[np.int16]:
        with self._lock:
            usable = len(self.data) - len(self.data) % 2
            return np.frombuffer(bytes(self.data[:usable]), dtype="<i2").astype(np.int16)

    def time_of_sample(self, index: int) -> float | None:
        """When the read that delivered sample ``index`` returned (perf_counter), or None."""
        need = (index + 1) * 2
        with self._lock:
            reads = list(self.reads)
        totals = [total for _, total in reads]
        pos = int(np.searchsorted(totals, need))
        return reads[pos][0] if pos < len(reads) else None

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            if proc.stderr is not None:
                proc.stderr.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()


# --- analysis ----------------------------------------------------------------------------------


def sine(
    freq: float, seconds: float, amplitude: float = 0.5, rate: int = RATE
) -> npt.NDArray[np.int16]:
    t = np.arange(round(seconds * rate)) / rate
    return np.round(amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def window_rms(x: npt.NDArray[np.int16], window: int) -> npt.NDArray[np.float64]:
    n = len(x) // window
    blocks = x[: n * window].astype(np.float64).reshape(n, window)
    return np.asarray(np.sqrt((blocks**2).mean(axis=1)), dtype=np.float64)


def tone_region(
    x: npt.NDArray[np.int16], *, floor: float = 1000.0, rate: int = RATE
) -> tuple[int, int]:
    """First and last sample (exclusive) of the 5 ms windows whose RMS exceeds ``floor``."""
    window = rate // 200
    loud = np.flatnonzero(window_rms(x, window) > floor)
    if len(loud) == 0:
        return 0, 0
    return int(loud[0]) * window, (int(loud[-1]) + 1) * window


def dominant_frequency(x: npt.NDArray[np.int16], rate: int = RATE) -> float:
    """Peak of a Hann-windowed spectrum, refined by parabolic interpolation."""
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    k = int(np.argmax(spectrum[1:])) + 1
    if 0 < k < len(spectrum) - 1:
        a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
        k_exact = k + 0.5 * (a - c) / (a - 2 * b + c)
    else:
        k_exact = float(k)
    return float(k_exact * rate / len(x))


@asynccontextmanager
async def running_mic(cfg: MicrophoneConfig) -> AsyncIterator[tuple[MicSink, PulseDevices]]:
    """The mic sink writing and its devices kept, as the daemon runs them; stopped after."""
    mic = MicSink(cfg)
    devices = PulseDevices(cfg, on_change=mic.on_devices)
    mic.start()
    keeper = asyncio.create_task(devices.maintain(), name="mic-devices")
    try:
        yield mic, devices
    finally:
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
        await mic.aclose()


def rms(x: npt.NDArray[np.int16]) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def true_runs(flags: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """``(start, length)`` of every run of True."""
    padded = np.concatenate(([False], flags, [False]))
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(s), int(e - s)) for s, e in zip(edges[0::2], edges[1::2], strict=True)]


def zero_runs(x: npt.NDArray[np.int16], min_samples: int) -> list[tuple[int, int]]:
    """``(start, length)`` of every run of exact zeros at least ``min_samples`` long."""
    return [(s, n) for s, n in true_runs(x == 0) if n >= min_samples]


def dips(
    x: npt.NDArray[np.int16], floor: float, *, window_ms: int = 5, rate: int = RATE
) -> list[tuple[int, int]]:
    """``(start, length)`` in samples of every run of ``window_ms`` windows whose RMS is below
    ``floor``."""
    window = rate * window_ms // 1000
    return [(s * window, n * window) for s, n in true_runs(window_rms(x, window) < floor)]


def steady_tone(
    x: npt.NDArray[np.int16], expected_rms: float, rate: int = RATE
) -> tuple[int, npt.NDArray[np.int16]]:
    """Where the steady part of a recorded tone starts in ``x``, and that part (the tone's
    first and last 50 ms left out)."""
    start, end = tone_region(x, floor=expected_rms * 0.25, rate=rate)
    first = start + rate // 20
    return first, x[first : max(first, end - rate // 20)]


def tone_holes(
    x: npt.NDArray[np.int16], expected_rms: float, rate: int = RATE
) -> list[tuple[int, int]]:
    """``(start, length)`` in ``x`` of every hole in a recorded steady tone (the part
    :func:`check_tone` looks at): runs of exact zeros of 1 ms or more, and runs of 5 ms
    windows below half the expected level."""
    first, steady = steady_tone(x, expected_rms, rate)
    holes = zero_runs(steady, rate // 1000) + dips(steady, expected_rms * 0.5, rate=rate)
    return [(first + offset, length) for offset, length in holes]


@dataclass(frozen=True, slots=True)
class ToneCheck:
    """What a recorded steady tone looks like (the first/last 50 ms are left out)."""

    seconds: float
    frequency: float
    level_db: float  # RMS relative to ``expected_rms``
    longest_zero_run_ms: float
    longest_dip_ms: float
    gaps_over_10ms: int


def check_tone(x: npt.NDArray[np.int16], expected_rms: float, rate: int = RATE) -> ToneCheck:
    _, steady = steady_tone(x, expected_rms, rate)
    if len(steady) < rate // 10:
        return ToneCheck(len(steady) / rate, 0.0, -120.0, 0.0, 0.0, 0)
    runs = zero_runs(steady, rate // 1000)
    longest = max((length for _, length in runs), default=0)
    return ToneCheck(
        seconds=len(steady) / rate,
        frequency=dominant_frequency(steady, rate),
        level_db=20 * float(np.log10(max(rms(steady), 1e-9) / expected_rms)),
        longest_zero_run_ms=longest * 1000 / rate,
        longest_dip_ms=max(
            (n * 1000 / rate for _, n in dips(steady, expected_rms * 0.5, rate=rate)), default=0.0
        ),
        gaps_over_10ms=sum(1 for _, length in runs if length > rate // 100),
    )
