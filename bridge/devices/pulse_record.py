"""One record stream (s16le, mono, 48 kHz) from a named source that never moves, via ctypes.

Why not libpulse-simple, as the mic's playback stream is: a stream whose source vanishes is
moved by the server to the *default* source, and pa_simple cannot forbid it.  The virtual
speaker's monitor is what the avatar hears; if it moved, the avatar would hear the default
microphone, which may be its own (``microphone.make_default``): its own voice fed back to it.
Measured before this module: after the speaker's null sink was unloaded under a running
stream, 3 blocks (60 ms) of the avatar's voice reached its room in one run of four, before the
bridge saw the devices change.  So the stream is connected with ``PA_STREAM_DONT_MOVE``,
which makes the server kill it instead of moving it; that needs libpulse's asynchronous API.

:class:`PulseRecorder` runs its own (non-threaded) ``pa_mainloop`` in the caller's thread:
``read()`` iterates it, blocking until a whole block has arrived, so the server's clock paces
the reader.  Every failure (no server, no such source, the stream killed) is a
:class:`~bridge.errors.DeviceUnavailable` with the fix to run; the caller closes and reopens.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

import numpy as np

from bridge.devices.pactl import DEVICE, server_fix
from bridge.devices.pulse_stream import (
    DEVICES_UP_FIX,
    LIBPULSE_FIX,
    PA_DEFAULT,
    PA_SAMPLE_S16LE,
    RATE,
    _BufferAttr,
    _SampleSpec,
)
from bridge.errors import DeviceUnavailable
from bridge.media.frames import I16

# pa_context_state / pa_stream_state values (pulse/def.h)
CONTEXT_READY, CONTEXT_FAILED, CONTEXT_TERMINATED = 4, 5, 6
STREAM_READY, STREAM_FAILED, STREAM_TERMINATED = 2, 3, 4
PA_STREAM_ADJUST_LATENCY = 0x2000
PA_STREAM_DONT_MOVE = 0x0200
SIZE_ERROR = ctypes.c_size_t(-1).value
SETUP_ITERATIONS = 10_000  # a bound on waiting for a connection (each iteration blocks)

_lib: Any = None


def _libpulse() -> Any:
    """libpulse, loaded once, with the signatures this module calls."""
    global _lib
    if _lib is not None:
        return _lib
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("pulse") or "libpulse.so.0")
    except OSError as exc:
        raise DeviceUnavailable(DEVICE, f"libpulse is not installed ({exc})", LIBPULSE_FIX) from exc
    p, i, u, s = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint, ctypes.c_size_t
    signatures: dict[str, tuple[Any, list[Any]]] = {
        "pa_mainloop_new": (p, []),
        "pa_mainloop_get_api": (p, [p]),
        "pa_mainloop_iterate": (i, [p, i, p]),
        "pa_mainloop_free": (None, [p]),
        "pa_context_new": (p, [p, ctypes.c_char_p]),
        "pa_context_connect": (i, [p, ctypes.c_char_p, u, p]),
        "pa_context_get_state": (i, [p]),
        "pa_context_errno": (i, [p]),
        "pa_context_disconnect": (None, [p]),
        "pa_context_unref": (None, [p]),
        "pa_stream_new": (p, [p, ctypes.c_char_p, ctypes.POINTER(_SampleSpec), p]),
        "pa_stream_connect_record": (i, [p, ctypes.c_char_p, ctypes.POINTER(_BufferAttr), u]),
        "pa_stream_get_state": (i, [p]),
        "pa_stream_readable_size": (s, [p]),
        "pa_stream_peek": (i, [p, ctypes.POINTER(p), ctypes.POINTER(s)]),
        "pa_stream_drop": (i, [p]),
        "pa_stream_disconnect": (i, [p]),
        "pa_stream_unref": (None, [p]),
        "pa_strerror": (ctypes.c_char_p, [i]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    _lib = lib
    return lib


class PulseRecorder:
    """Records ``device`` (e.g. ``<sink>.monitor``) ``block`` samples at a time; never moves."""

    def __init__(self, device: str, *, block: int) -> None:
        self._pa = _libpulse()
        self.name = f"libpulse ← {device} (never moved)"
        self.device = device
        self.block = block
        self._pending = bytearray()
        self._mainloop = self._pa.pa_mainloop_new()
        self._context: int | None = None
        self._stream: int | None = None
        try:
            self._connect()
        except DeviceUnavailable:
            self.close()
            raise

    def read(self) -> I16:
        """The next ``block`` samples (a new array); blocks until the server has them."""
        want = self.block * 2
        while len(self._pending) < want:
            self._check_alive()
            if not self._take_readable():
                self._iterate()
        data = np.frombuffer(bytes(self._pending[:want]), dtype="<i2").copy()
        del self._pending[:want]
        return data

    def close(self) -> None:
        pa = self._pa
        stream, self._stream = self._stream, None
        if stream is not None:
            pa.pa_stream_disconnect(stream)
            pa.pa_stream_unref(stream)
        context, self._context = self._context, None
        if context is not None:
            pa.pa_context_disconnect(context)
            pa.pa_context_unref(context)
        mainloop, self._mainloop = self._mainloop, None
        if mainloop:
            pa.pa_mainloop_free(mainloop)

    # --- inside ------------------------------------------------------------------------------

    def _connect(self) -> None:
        pa = self._pa
        api = pa.pa_mainloop_get_api(self._mainloop)
        self._context = pa.pa_context_new(api, b"heygen-bridge")
        # server=NULL: found as every client finds it (PULSE_SERVER, the user's runtime dir).
        if pa.pa_context_connect(self._context, None, 0, None) < 0:
            raise self._error("cannot reach the sound server", opening=False)
        self._wait(lambda: pa.pa_context_get_state(self._context), CONTEXT_READY, "connect")
        spec = _SampleSpec(PA_SAMPLE_S16LE, RATE, 1)
        self._stream = pa.pa_stream_new(
            self._context, b"meeting sound for the avatar", ctypes.byref(spec), None
        )
        if not self._stream:
            raise self._error("cannot make a record stream", opening=False)
        # fragsize: the server hands over one block at a time, so a read waits no longer.
        attr = _BufferAttr(PA_DEFAULT, PA_DEFAULT, PA_DEFAULT, PA_DEFAULT, self.block * 2)
        flags = PA_STREAM_DONT_MOVE | PA_STREAM_ADJUST_LATENCY
        if pa.pa_stream_connect_record(
            self._stream, self.device.encode(), ctypes.byref(attr), flags
        ):
            raise self._error(f"cannot record from {self.device}", opening=True)
        self._wait(lambda: pa.pa_stream_get_state(self._stream), STREAM_READY, "record")

    def _wait(self, state: Any, ready: int, what: str) -> None:
        for _ in range(SETUP_ITERATIONS):
            now = state()
            if now == ready:
                return
            if now in (CONTEXT_FAILED, CONTEXT_TERMINATED) and what == "connect":
                raise self._error("cannot reach the sound server", opening=False)
            if now in (STREAM_FAILED, STREAM_TERMINATED) and what == "record":
                raise self._error(f"cannot record from {self.device}", opening=True)
            self._iterate()
        raise DeviceUnavailable(DEVICE, f"the sound server did not answer ({what})", server_fix())

    def _iterate(self) -> None:
        if self._pa.pa_mainloop_iterate(self._mainloop, 1, None) < 0:
            raise self._error("lost the sound server", opening=False)

    def _check_alive(self) -> None:
        if self._stream is None or self._pa.pa_stream_get_state(self._stream) != STREAM_READY:
            # DONT_MOVE: the source went away and the server killed the stream.
            raise DeviceUnavailable(
                DEVICE, f"the record stream from {self.device} ended", DEVICES_UP_FIX
            )

    def _take_readable(self) -> bool:
        """Move what the server has handed over into the pending bytes; False if nothing."""
        pa = self._pa
        if pa.pa_stream_readable_size(self._stream) in (0, SIZE_ERROR):
            return False
        data, size = ctypes.c_void_p(), ctypes.c_size_t()
        if pa.pa_stream_peek(self._stream, ctypes.byref(data), ctypes.byref(size)) < 0:
            raise self._error("lost the sound server", opening=False)
        if size.value:
            if data.value:
                self._pending += ctypes.string_at(data.value, size.value)
            else:  # a hole in the stream: silence of that length
                self._pending += bytes(size.value)
            pa.pa_stream_drop(self._stream)
        return size.value > 0

    def _error(self, what: str, *, opening: bool) -> DeviceUnavailable:
        pa = self._pa
        code = pa.pa_context_errno(self._context) if self._context else 0
        text = (pa.pa_strerror(code) or b"unknown error").decode(errors="replace")
        if opening:
            return DeviceUnavailable(DEVICE, f"{what} ({text})", DEVICES_UP_FIX)
        return DeviceUnavailable(DEVICE, f"{what}: {text}", server_fix())
