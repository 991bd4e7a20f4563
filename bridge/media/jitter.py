"""The audio jitter buffer: a bounded FIFO of samples between the event loop and a writer.

``push`` (the loop thread) appends a chunk and never blocks for long; ``pop`` (the writer
thread, every block) returns the next ``block`` samples, or silence.  Contract:

* after silence, audio starts playing once the buffer holds ``target`` samples, or when no
  more audio came for that long (so a short last word is not held back);
* running dry mid-speech fills the gap with silence; audio back within
  ``UNDERRUN_WINDOW_S`` counts one of ``underruns`` (a gap, not the end of speech); playback
  waits for the buffer to refill;
* beyond ``bound`` (target + headroom: a stalled loop delivering a burst) the oldest audio is
  dropped down to the target (``overruns``, ``overrun_dropped``);
* a median fill over ``TRIM_WINDOW_S`` that stays ``TRIM_MARGIN_MS`` above the target (time
  the sound server lost in a stall, clock drift) is trimmed (``trims``, ``trimmed``);
* the target follows the longest wait between arrivals of the last ``ADAPT_WINDOW_S``, up to
  ``ADAPT_MAX_MS``, and shrinks back when the stalls stop;
* :meth:`JitterBuffer.latency_ms` is how long audio arriving now waits before the writer
  takes it: measured as each chunk's first sample leaves, predicted between utterances.

Pure: no I/O, no clock of its own (every call takes ``now``), one lock.  Why these numbers:
docs/microphone.md.
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

from bridge.media.frames import I16

UNDERRUN_WINDOW_S = 0.5  # audio back within this after running dry: it was a gap
# Latency that crept in (a sound server that stalled and lost time, a burst after a stall)
# is given back: when the buffer's typical fill over a window stays this far above the
# target, the excess goes.  The median, not the minimum: one late packet must not hide a
# second of extra latency from the trim.
TRIM_WINDOW_S = 1.0
TRIM_MARGIN_MS = 30
# The target grows to the longest wait between arrivals seen lately (a loaded machine or
# network stalls for 100-200 ms now and then): held back that long, the next such stall does
# not run the voice dry.  It shrinks back when the stalls stop.
ADAPT_WINDOW_S = 15.0
ADAPT_MAX_MS = 300
WAIT_FRESH_S = 0.5  # a measured buffer wait older than this no longer describes the buffer


class JitterBuffer:
    """A bounded FIFO of samples: ``push`` from the loop thread, ``pop`` from the writer."""

    def __init__(self, *, rate: int, target_ms: int, max_ms: int, block: int) -> None:
        self.rate = rate
        self.base_target = self.target = rate * target_ms // 1000
        self._headroom = max(rate * max_ms // 1000 - self.target, block)
        self.bound = self.target + self._headroom
        self.block = block
        self.playing = False
        self.underruns = 0
        self.overruns = 0
        self.overrun_dropped = 0  # samples
        self.trims = 0
        self.trimmed = 0  # samples
        self.audio_blocks = 0
        self.silence_blocks = 0
        self._chunks: deque[I16] = deque()
        self._arrivals: deque[float] = deque()  # when each chunk's first sample arrived
        self._head = 0  # samples of _chunks[0] already taken
        self._chunk_len = block  # the last chunk's length and how long it had been gathered
        self._lead = 0.0
        self._wait: float | None = None  # the last measured wait of a chunk's first sample
        self._wait_at = float("-inf")
        self._size = 0
        self._last_push = float("-inf")
        self._dry_since: float | None = None
        self._window_end = 0.0
        self._fills: list[int] = []
        self._waits: deque[tuple[float, float]] = deque()  # (when, seconds since the last)
        self._silence = np.zeros(block, dtype=np.int16)
        self._lock = threading.Lock()

    @property
    def buffered(self) -> int:
        return self._size

    def buffered_ms(self) -> float:
        return self._size * 1000 / self.rate

    def latency_ms(self, now: float) -> float:
        """How long audio arriving now waits before the writer takes it.

        While playing: the wait last measured as a chunk's first sample was taken.  Otherwise
        the wait the next utterance's first sample will have: its chunk and those after it
        are held until the buffer reaches the target.
        """
        with self._lock:
            if self.playing and self._wait is not None and now - self._wait_at <= WAIT_FRESH_S:
                return max(self._wait, 0.0) * 1000
            chunks = -(-self.target // self._chunk_len)  # pushes it takes to reach the target
            held = (chunks - 1) * self._chunk_len / self.rate + self._lead
            return max(held, self._size / self.rate) * 1000

    def push(self, samples: I16, now: float, arrived: float | None = None) -> None:
        """``arrived``: when the chunk's first sample reached the bridge (default ``now``)."""
        if len(samples) == 0:
            return
        with self._lock:
            self._adapt(now)
            self._chunks.append(samples)
            self._arrivals.append(now if arrived is None else arrived)
            self._chunk_len, self._lead = len(samples), now - self._arrivals[-1]
            self._size += len(samples)
            self._last_push = now
            if self._dry_since is not None:
                if now - self._dry_since <= UNDERRUN_WINDOW_S:
                    self.underruns += 1
                self._dry_since = None
            if self._size > self.bound:
                excess = self._size - self.target
                self._drop(excess)
                self.overruns += 1
                self.overrun_dropped += excess

    def pop(self, now: float) -> tuple[I16, bool]:
        """The next ``block`` samples, and whether they carry avatar audio (else silence)."""
        with self._lock:
            if not self.playing:
                if self._size >= self.target or (
                    self._size > 0 and now - self._last_push >= self.target / self.rate
                ):
                    self.playing = True
                    self._window_end, self._fills = now + TRIM_WINDOW_S, []
                else:
                    self.silence_blocks += 1
                    return self._silence, False
            if self._size >= self.block:
                out = self._take(self.block, now)
            else:  # ran dry: what is left, then silence until the buffer refills
                out = np.concatenate(
                    [self._take(self._size, now), np.zeros(self.block - self._size, np.int16)]
                )
                self.playing = False
                self._dry_since = now
            self.audio_blocks += 1
            if self.playing:
                self._track_drift(now)
            return out, True

    def clear(self) -> int:
        """Drop everything; returns how many samples were dropped."""
        with self._lock:
            dropped = self._size
            self._drop(self._size)
            self.playing = False
            self._dry_since = None
            return dropped

    # --- under the lock -----------------------------------------------------------------------

    def _adapt(self, now: float) -> None:
        """Follow the target to the longest recent wait between arrivals (within bounds)."""
        if self.playing and self._last_push > float("-inf"):
            self._waits.append((now, now - self._last_push))
        while self._waits and self._waits[0][0] < now - ADAPT_WINDOW_S:
            self._waits.popleft()
        worst = max((wait for _, wait in self._waits), default=0.0)
        ceiling = self.rate * ADAPT_MAX_MS // 1000
        self.target = max(self.base_target, min(ceiling, int(worst * self.rate) + self.block))
        self.bound = self.target + self._headroom

    def _track_drift(self, now: float) -> None:
        self._fills.append(self._size)
        if now < self._window_end:
            return
        excess = sorted(self._fills)[len(self._fills) // 2] - self.target
        if excess > self.rate * TRIM_MARGIN_MS // 1000:
            excess = min(excess, self._size)
            self._drop(excess)
            self.trims += 1
            self.trimmed += excess
        self._window_end, self._fills = now + TRIM_WINDOW_S, []

    def _take(self, n: int, now: float) -> I16:
        """The next ``n`` samples, to be played from ``now`` on (10 ms apart per block)."""
        parts: list[I16] = []
        taken = 0
        while n > 0:
            head = self._chunks[0]
            if self._head == 0:  # a chunk's first sample: measure how long it waited
                self._wait = now + taken / self.rate - self._arrivals[0]
                self._wait_at = now
            piece = head[self._head : self._head + n]
            taken += len(piece)
            parts.append(piece)
            n -= len(piece)
            self._size -= len(piece)
            self._head += len(piece)
            if self._head >= len(head):
                self._chunks.popleft()
                self._arrivals.popleft()
                self._head = 0
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)

    def _drop(self, n: int) -> None:
        while n > 0 and self._chunks:
            left = len(self._chunks[0]) - self._head
            if left <= n:
                self._chunks.popleft()
                self._arrivals.popleft()
                self._head = 0
                self._size -= left
                n -= left
            else:
                self._head += n
                self._size -= n
                n = 0
