"""The meeting's sound as the avatar hears it: the virtual speaker's monitor → voice activity →
blocks handed to the event loop.

The meeting app plays into the virtual speaker (a null sink that
:class:`~bridge.devices.pulse_modules.PulseDevices` makes with a
:class:`~bridge.devices.pactl.SinkOnly`); a named thread (``ears-reader``) records its
monitor, 20 ms at a time, off the event loop, runs each block through an
:class:`~bridge.media.vad.EnergyGate` and hands what the gate lets through to ``deliver`` on
the loop (``call_soon_threadsafe``).  Nothing is handed over while ``listening`` is off.

**The avatar's own voice never feeds its input.**  The avatar's voice plays into the virtual
mic's null sink, a different sink; this reads the speaker's monitor by name, never a default.
PulseAudio moves a record stream whose source vanishes to the *default* source (which may be
the avatar's mic: ``microphone.make_default``), so the stream is made unmovable
(:mod:`bridge.devices.pulse_record`: the server kills it instead), and, as a second guard, it
is closed the moment the devices change (``on_devices``) and a block read across such a
change is thrown away, never delivered.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from bridge.backoff import Backoff, Retrying
from bridge.config import ListenConfig
from bridge.devices.pulse_modules import DeviceState
from bridge.devices.pulse_record import PulseRecorder
from bridge.devices.pulse_stream import RATE
from bridge.errors import DeviceUnavailable
from bridge.media.frames import I16
from bridge.media.vad import SILENCE_DBFS, EnergyGate, level_dbfs
from bridge.sinks.base import JOIN_TIMEOUT_S, snapshot_of

log = logging.getLogger(__name__)

BLOCK = RATE // 50  # 20 ms: the gate's step, and the frames the uplink publishes
RETRY = Backoff(first=0.5, cap=3.0)

HearingState = Literal["starting", "hearing", "unavailable", "stopped"]


class Recorder(Protocol):
    """Where the reader gets blocks; ``read`` blocks at the device's pace."""

    name: str

    def read(self) -> I16: ...

    def close(self) -> None: ...


Deliver = Callable[[list[I16]], None]


@dataclass
class HearingStats:
    """The hearing's part of ``/v1/status`` (``listen.hearing``); the reader keeps it current."""

    state: HearingState = "starting"
    source: str | None = None
    level_dbfs: float = SILENCE_DBFS  # of the last 20 ms read
    seconds_read: float = 0.0
    loud_blocks: int = 0  # 20 ms blocks at least threshold_dbfs loud, listening or not
    seconds_passed: float = 0.0  # let through by the gate while listening
    utterances: int = 0  # times the gate opened
    discarded_blocks: int = 0  # read across a change of the devices: never delivered
    reopens: int = 0
    last_error: str | None = None
    fix: str | None = None

    def snapshot(self) -> dict[str, Any]:
        return snapshot_of(self)


class MeetingSound:
    """``start(loop)`` launches the reader; ``on_devices`` follows the speaker's devices;
    ``close()`` stops it (blocking: the loop calls ``aclose()``)."""

    def __init__(
        self,
        cfg: ListenConfig,
        *,
        deliver: Deliver,
        open_recorder: Callable[[str], Recorder] | None = None,
    ) -> None:
        self.source = f"{cfg.speaker_name}.monitor"
        self.stats = HearingStats(source=self.source)
        self.gate = EnergyGate(
            rate=RATE,
            block=BLOCK,
            threshold_dbfs=cfg.threshold_dbfs,
            hangover_ms=cfg.hangover_ms,
            pre_roll_ms=cfg.pre_roll_ms,
        )
        self.listening = False  # set by the uplink; read by the reader at every block
        self._deliver = deliver
        self._open_recorder = open_recorder or _pulse_recorder
        self._devices: DeviceState | None = None
        self._opened_generation = -1
        self._recorder: Recorder | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._retrying = Retrying(RETRY)

    # --- the event loop's side --------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._main, name="ears-reader", daemon=True)
        self._thread.start()

    def on_devices(self, state: DeviceState) -> None:
        """The speaker's devices changed (any thread): reopen, or let go of, the stream."""
        self._devices = state
        self._wake.set()

    def close(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=JOIN_TIMEOUT_S)
            self._thread = None
        self.stats.state = "stopped"

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    # --- the reader thread --------------------------------------------------------------------

    def _main(self) -> None:
        try:
            while not self._stopping.is_set():
                recorder = self._recorder or self._open()
                if recorder is not None:
                    self._read_one(recorder)
        # The thread's boundary: nobody above it can catch; logged once, the daemon goes on.
        except Exception as exc:
            self.stats.state, self.stats.last_error = "unavailable", repr(exc)
            log.exception("ears-reader stopped by %s", type(exc).__name__)
        finally:
            self._let_go()

    def _open(self) -> Recorder | None:
        devices = self._devices
        if devices is None or not devices.ready:
            if devices is not None and (devices.generation or devices.fix):
                self._unavailable(devices.reason or "no virtual speaker", devices.fix)
            self._sleep(RETRY.cap)
            return None
        try:
            recorder = self._open_recorder(self.source)
        except DeviceUnavailable as exc:
            self._unavailable(exc.reason, exc.fix)
            self._sleep(self._retrying.failed())
            return None
        self._retrying.succeeded()
        if self._opened_generation >= 0:
            self.stats.reopens += 1
        self._recorder, self._opened_generation = recorder, devices.generation
        self.stats.state, self.stats.last_error, self.stats.fix = "hearing", None, None
        log.info("hearing the meeting through %s", recorder.name)
        return recorder

    def _read_one(self, recorder: Recorder) -> None:
        if self._devices_changed():
            self._let_go()
            return
        try:
            block = recorder.read()
        except DeviceUnavailable as exc:
            self._let_go()
            self._unavailable(exc.reason, exc.fix)
            return
        if self._devices_changed():  # the stream may have been moved meanwhile: not ours
            self.stats.discarded_blocks += 1
            self._let_go()
            return
        self._hear(block)

    def _hear(self, block: I16) -> None:
        stats, gate = self.stats, self.gate
        stats.seconds_read += BLOCK / RATE
        if not self.listening:
            gate.reset()
            stats.level_dbfs = level_dbfs(block)
        else:
            self._pass(gate.push(block))
            stats.level_dbfs = gate.level
        if stats.level_dbfs >= gate.threshold_dbfs:
            stats.loud_blocks += 1

    def _pass(self, passed: list[I16]) -> None:
        stats = self.stats
        stats.utterances = self.gate.openings
        if passed:
            stats.seconds_passed += len(passed) * BLOCK / RATE
            self._hand_over(passed)

    def _hand_over(self, blocks: list[I16]) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._deliver, blocks)
        except RuntimeError:  # the loop is closed: the daemon is on its way out
            self._stopping.set()

    def _devices_changed(self) -> bool:
        devices = self._devices
        return devices is None or not devices.ready or devices.generation != self._opened_generation

    def _let_go(self) -> None:
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            recorder.close()
        self.gate.reset()

    def _unavailable(self, reason: str, fix: str | None) -> None:
        stats = self.stats
        if stats.state != "unavailable" or stats.last_error != reason:
            log.warning("not hearing the meeting: %s%s", reason, f" (fix: {fix})" if fix else "")
        stats.state, stats.last_error, stats.fix = "unavailable", reason, fix
        stats.level_dbfs = SILENCE_DBFS

    def _sleep(self, seconds: float) -> None:
        if self._wake.wait(seconds):
            self._wake.clear()


def _pulse_recorder(source: str) -> Recorder:
    return PulseRecorder(source, block=BLOCK)
