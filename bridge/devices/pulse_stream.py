"""One libpulse-simple playback stream (s16le, mono, 48 kHz) into a named sink, via ctypes.

:class:`PulseStream` opens the stream (``tlength`` ``target_ms``, default
:data:`STREAM_TARGET_MS`; ``minreq`` one 10 ms :data:`BLOCK`); ``write`` blocks until the
server wants more, so the server's clock paces the writer; ``latency_ms`` is the latency the
server reports (None when unknown); ``close`` frees it.  Every failure is a
:class:`~bridge.errors.DeviceUnavailable` whose ``fix`` says what to do: a missing sink →
``heygen-bridge devices up``, no permission → run as the desktop's user, no server → start it,
no libpulse → install ``libpulse0``.  The libraries are loaded once, on first use.

Why libpulse-simple through ctypes and not a ``pacat`` pipe, and why a 100 ms target (with
measurements): docs/microphone.md, "The stream".  (Recording, which must never move to
another source, is :mod:`bridge.devices.pulse_record`.)
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

import numpy as np

from bridge.devices import pactl
from bridge.devices.pactl import DEVICE, server_fix
from bridge.errors import DeviceUnavailable
from bridge.media.frames import I16

RATE = pactl.RATE  # the null sink's rate: the stream plays into it unresampled
BLOCK = RATE // 100  # 10 ms: the writes the stream is sized for (its minreq)
# libpulse tlength: enough to ride out a short stall of the sound server or of the writer
# thread without the server losing time (each such loss would add to the voice's latency).
STREAM_TARGET_MS = 100
DEVICES_UP_FIX = "heygen-bridge devices up"


class _SampleSpec(ctypes.Structure):
    _fields_ = [("format", ctypes.c_int), ("rate", ctypes.c_uint32), ("channels", ctypes.c_uint8)]


class _BufferAttr(ctypes.Structure):
    _fields_ = [
        ("maxlength", ctypes.c_uint32),
        ("tlength", ctypes.c_uint32),
        ("prebuf", ctypes.c_uint32),
        ("minreq", ctypes.c_uint32),
        ("fragsize", ctypes.c_uint32),
    ]


PA_STREAM_PLAYBACK = 1
PA_SAMPLE_S16LE = 3
PA_DEFAULT = 0xFFFFFFFF  # (uint32_t) -1: let the server choose
PA_ERR_ACCESS, PA_ERR_NOENTITY, PA_ERR_AUTHKEY = 1, 5, 9
LIBPULSE_FIX = "sudo apt install libpulse0"

_libs: tuple[Any, Any] | None = None


def _libpulse() -> tuple[Any, Any]:
    """(libpulse-simple, libpulse), loaded once, signatures declared."""
    global _libs
    if _libs is not None:
        return _libs
    try:
        simple = ctypes.CDLL(ctypes.util.find_library("pulse-simple") or "libpulse-simple.so.0")
        pulse = ctypes.CDLL(ctypes.util.find_library("pulse") or "libpulse.so.0")
    except OSError as exc:
        raise DeviceUnavailable(DEVICE, f"libpulse is not installed ({exc})", LIBPULSE_FIX) from exc
    err = ctypes.POINTER(ctypes.c_int)
    simple.pa_simple_new.restype = ctypes.c_void_p
    simple.pa_simple_new.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.POINTER(_SampleSpec),
        ctypes.c_void_p,
        ctypes.POINTER(_BufferAttr),
        err,
    ]
    simple.pa_simple_write.restype = ctypes.c_int
    simple.pa_simple_write.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, err]
    simple.pa_simple_get_latency.restype = ctypes.c_uint64
    simple.pa_simple_get_latency.argtypes = [ctypes.c_void_p, err]
    simple.pa_simple_free.restype = None
    simple.pa_simple_free.argtypes = [ctypes.c_void_p]
    pulse.pa_strerror.restype = ctypes.c_char_p
    pulse.pa_strerror.argtypes = [ctypes.c_int]
    _libs = (simple, pulse)
    return _libs


class PulseStream:
    """One libpulse-simple playback stream (s16le mono 48 kHz) into ``device``."""

    def __init__(self, device: str, *, target_ms: int = STREAM_TARGET_MS) -> None:
        self._simple, self._pulse = _libpulse()
        self.name = f"libpulse-simple → {device}"
        self.device = device
        spec = _SampleSpec(PA_SAMPLE_S16LE, RATE, 1)
        bytes_per_ms = RATE * 2 // 1000
        attr = _BufferAttr(PA_DEFAULT, target_ms * bytes_per_ms, PA_DEFAULT, BLOCK * 2, PA_DEFAULT)
        error = ctypes.c_int(0)
        # server=NULL: libpulse finds the server as every client does (PULSE_SERVER, ...).
        handle = self._simple.pa_simple_new(
            None,
            b"heygen-bridge",
            PA_STREAM_PLAYBACK,
            device.encode(),
            b"avatar voice",
            ctypes.byref(spec),
            None,
            ctypes.byref(attr),
            ctypes.byref(error),
        )
        if not handle:
            raise self._error("cannot open a stream into " + device, error.value, opening=True)
        self._handle: int | None = handle
        self._error_code = ctypes.c_int(0)

    def write(self, block: I16) -> None:
        if self._handle is None:
            raise DeviceUnavailable(DEVICE, "the stream is closed", DEVICES_UP_FIX)
        data = np.ascontiguousarray(block, dtype="<i2")
        if self._simple.pa_simple_write(
            self._handle, data.ctypes.data, data.nbytes, ctypes.byref(self._error_code)
        ):
            raise self._error("lost the sound server", self._error_code.value, opening=False)

    def latency_ms(self) -> float | None:
        if self._handle is None:
            return None
        usec = int(self._simple.pa_simple_get_latency(self._handle, ctypes.byref(self._error_code)))
        return None if usec == 0xFFFFFFFFFFFFFFFF else usec / 1000

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            self._simple.pa_simple_free(handle)

    def _error(self, what: str, code: int, *, opening: bool) -> DeviceUnavailable:
        text = (self._pulse.pa_strerror(code) or b"unknown error").decode(errors="replace")
        if opening and code == PA_ERR_NOENTITY:
            return DeviceUnavailable(
                DEVICE, f"{what}: the sink {self.device} does not exist ({text})", DEVICES_UP_FIX
            )
        if code in (PA_ERR_ACCESS, PA_ERR_AUTHKEY):
            return DeviceUnavailable(
                DEVICE,
                f"{what}: {text}",
                "run heygen-bridge as the user who owns the desktop session's sound server",
            )
        return DeviceUnavailable(DEVICE, f"{what}: {text}", server_fix())
