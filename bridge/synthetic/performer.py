"""The demo avatar as a performer: a queue of utterances played against an audio master clock.

Two drivers use it: the in-process demo session and the simulator's avatar that publishes into
LiveKit.  A driver calls :meth:`Performer.pull_audio` every 10–20 ms of real time (that advances
the media clock), :meth:`Performer.render` once per video frame, and :meth:`Performer.drain_events`
to forward speech events.  Everything the picture and the events show follows the samples pulled
so far, so audio, picture and events stay in step however the driver paces itself.

Events per utterance, in this order::

    started → words × N → finished → ended

``started`` (text = the utterance text) when its first sample is pulled; one ``words`` event per
word (text chunks that concatenate to exactly the utterance text, the whitespace before a word
going with it) when the word's first sample is pulled; ``finished`` (text = what was spoken) and
``ended`` (duration_ms = milliseconds played) in the pull that delivers its last sample.  They map
onto HeyGen's avatar_start_talking / avatar_talking_message / avatar_end_message /
avatar_stop_talking and LiveAvatar's avatar.speak_started / avatar.transcription /
avatar.speak_ended.  After :meth:`Performer.interrupt`, the playing utterance gets ``finished`` and
``ended`` with ``interrupted=True`` at once (the words not yet reached are never sent); utterances
still queued, or still being synthesized, get only ``finished`` and ``ended`` (interrupted, 0 ms),
since they never started.

All methods are thread-safe, except that render() (which draws into one reused buffer) must be
called from one thread at a time.
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from bridge.media.frames import I16, U8
from bridge.synthetic import voice as speech
from bridge.synthetic.face import FaceRenderer
from bridge.synthetic.stamp import FRAME_LIMIT, SENT_MS_LIMIT, Stamp
from bridge.synthetic.voice import Utterance

__all__ = ["CLICK_FREQ", "CLICK_SECONDS", "Performer", "SpeechEvent"]

EventKind = Literal["started", "words", "finished", "ended"]

CAPTION_HOLD = 1.5  # seconds the last caption stays up after speech ends
CLICK_FREQ = 3000.0  # Hz, sync-mark burst
CLICK_SECONDS = 0.005
# Mouth opening from the RMS of the last frame's audio: -42 dBFS closed, -12 dBFS wide open.
_MOUTH_FLOOR_DB, _MOUTH_RANGE_DB = -42.0, 30.0

_WORD_RE = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class SpeechEvent:
    kind: EventKind
    task_id: str
    text: str = ""
    duration_ms: int = 0
    interrupted: bool = False


@dataclass(slots=True, eq=False)
class _Item:
    task_id: str
    text: str
    samples: I16 | None = None  # None while it is being synthesized
    chunks: tuple[tuple[int, str], ...] = ()  # (first sample, text chunk), in order
    pos: int = 0
    next_chunk: int = 0
    spoken: list[str] = field(default_factory=list)
    dropped: bool = False


def _chunks(text: str, utt: Utterance, n_samples: int) -> tuple[tuple[int, str], ...]:
    """Split ``text`` into per-word chunks that concatenate to it, each with its start sample."""
    spans = [m.span() for m in _WORD_RE.finditer(text)]
    if not spans:
        return ((0, text),) if text else ()
    pieces = []
    for i, (_, end) in enumerate(spans):
        begin = 0 if i == 0 else spans[i - 1][1]
        pieces.append(text[begin : len(text) if i == len(spans) - 1 else end])
    if len(utt.words) == len(spans):
        times = [t for t, _ in utt.words]
        starts = [round(t * utt.sample_rate) for t in times]
    else:  # the synthesizer saw other words (cleaned/capped text): spread by length
        weights = np.array([e - s + 1 for s, e in spans], dtype=np.float64)
        fractions = (np.cumsum(weights) - weights) / weights.sum()
        starts = [round(f * n_samples) for f in fractions]
    out: list[tuple[int, str]] = []
    last = 0
    for start, piece in zip(starts, pieces, strict=True):
        last = min(max(last, start), max(0, n_samples - 1))
        out.append((last, piece))
    return tuple(out)


class Performer:
    """Clock-driven demo avatar: speech queue, lip-synced face, captions and speech events.

    ``sync_marks=True`` (for A/V sync tests) puts a click into the audio at every whole second of
    media time, k = 1, 2, 3 … s: the click is :data:`CLICK_SECONDS` (5 ms) of a full-scale
    :data:`CLICK_FREQ` (3 kHz) cosine that *overwrites* the audio, and its first sample — value
    +32767, at sample index ``k * sample_rate`` of the stream pull_audio() returns — is the mark.
    The first frame rendered after the pull_audio() call that returned that sample carries
    ``sync=True`` in its stamp.  So with the lockstep pattern "pull one frame's worth of audio
    (sample_rate / fps samples), then render that frame", the sync frame is the frame whose audio
    starts exactly at the click: picture and click belong to the same instant, and at the sinks
    the camera–mic offset is (time the sync frame is shown) − (time the click onset is heard).
    With integer fps and that pattern this frame is frame number ``k * fps`` (counting from 0).
    A driver that pulls audio in other chunk sizes makes the sync frame late by up to one chunk.
    """

    def __init__(
        self,
        *,
        width: int,
        height: int,
        fps: float,
        sample_rate: int = 48000,
        voice_rate: float = 1.0,
        language: str = "en",
        synth: Callable[[str], Utterance] | None = None,
        sync_marks: bool = False,
        test_marks: bool = True,
        green: bool = False,
    ) -> None:
        """``test_marks``: draw the frame stamp and colour patch (off for the user's demo);
        ``green``: the face on a green screen."""
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be positive, got {fps}")
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.width, self.height, self.fps, self.sample_rate = width, height, fps, sample_rate
        self._face = FaceRenderer(width, height, test_patch=test_marks, green=green)
        self._test_marks = test_marks
        self._synth: Callable[[str], Utterance] = synth or functools.partial(
            speech.synthesize, rate=voice_rate, language=language, sample_rate=sample_rate
        )
        self._sync_marks = sync_marks
        self._lock = threading.Lock()
        self._queue: deque[_Item] = deque()
        self._current: _Item | None = None
        self._events: list[SpeechEvent] = []
        self._clock = 0  # samples pulled so far
        self._caption = ""
        self._caption_until = -1  # clock sample after which a finished caption clears
        self._sync_pending = False
        self._tail = np.zeros(max(1, round(sample_rate / fps)), dtype=np.int16)
        self._mouth = 0.0
        n_click = max(1, round(CLICK_SECONDS * sample_rate))
        phase = (2.0 * math.pi * CLICK_FREQ / sample_rate) * np.arange(n_click)
        self._click: I16 = np.rint(np.cos(phase) * 32767.0).astype(np.int16)

    # ------------------------------------------------------------------ queueing

    @property
    def speaking(self) -> bool:
        """True while an utterance plays or waits in the queue."""
        with self._lock:
            return self._current is not None or bool(self._queue)

    @property
    def media_time(self) -> float:
        """Seconds of audio pulled so far."""
        with self._lock:
            return self._clock / self.sample_rate

    async def say(self, text: str, task_id: str) -> float:
        """Synthesize ``text`` off the loop and queue it; returns its duration in seconds.

        Utterances play in the order say() was called, whatever order their synthesis finishes
        in.  If interrupt() is called while this one is being synthesized, it is dropped (it gets
        finished + ended with ``interrupted=True``) but its duration is still returned.
        """
        item = _Item(task_id=task_id, text=text)
        with self._lock:
            self._queue.append(item)
        try:
            utt = await asyncio.to_thread(self._synth, text)
            if utt.sample_rate != self.sample_rate:
                raise ValueError(f"synth returned {utt.sample_rate} Hz, need {self.sample_rate}")
        except BaseException:
            with self._lock:
                if item in self._queue:
                    self._queue.remove(item)
            raise
        samples = np.ascontiguousarray(utt.samples, dtype=np.int16)
        chunks = _chunks(text, utt, len(samples))
        with self._lock:
            item.chunks = chunks
            item.samples = samples  # ready: pull_audio may start it from now on
        return len(samples) / self.sample_rate

    def play_signal(self, samples: I16, task_id: str) -> None:
        """Queue a known raw signal (mono, at ``sample_rate``) as an utterance with no words."""
        data = np.ascontiguousarray(samples, dtype=np.int16).reshape(-1)
        with self._lock:
            self._queue.append(_Item(task_id=task_id, text="", samples=data))

    def interrupt(self) -> None:
        """Stop the current utterance and drop the queued ones (events: see the module doc)."""
        with self._lock:
            current, self._current = self._current, None
            if current is not None:
                self._finish(current, interrupted=True)
            while self._queue:
                item = self._queue.popleft()
                item.dropped = True
                self._finish(item, interrupted=True)

    def drain_events(self) -> list[SpeechEvent]:
        """Events emitted since the last call, oldest first (non-blocking)."""
        with self._lock:
            events, self._events = self._events, []
            return events

    # ------------------------------------------------------------------ clock

    def _emit(
        self,
        kind: EventKind,
        item: _Item,
        *,
        text: str = "",
        duration_ms: int = 0,
        interrupted: bool = False,
    ) -> None:
        self._events.append(SpeechEvent(kind, item.task_id, text, duration_ms, interrupted))

    def _finish(self, item: _Item, *, interrupted: bool) -> None:
        spoken = "".join(item.spoken)
        self._emit("finished", item, text=spoken, interrupted=interrupted)
        ms = round(item.pos * 1000 / self.sample_rate)
        self._emit("ended", item, duration_ms=ms, interrupted=interrupted)
        if item.spoken:
            self._caption_until = self._clock + round(CAPTION_HOLD * self.sample_rate)

    def _reach_words(self, item: _Item, upto: int) -> None:
        """Emit the word chunks whose first sample is below ``upto``."""
        while item.next_chunk < len(item.chunks) and item.chunks[item.next_chunk][0] < upto:
            piece = item.chunks[item.next_chunk][1]
            item.next_chunk += 1
            item.spoken.append(piece)
            self._caption = "".join(item.spoken).strip()
            self._emit("words", item, text=piece)

    def pull_audio(self, n: int) -> I16:
        """The next ``n`` samples (silence when idle); advances the media clock by ``n``."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        out = np.zeros(n, dtype=np.int16)
        with self._lock:
            start = self._clock
            filled = 0
            while True:
                item = self._current
                if item is None:
                    # Start the next utterance only once it is ready and its first sample is
                    # actually pulled now.
                    if filled >= n or not self._queue or self._queue[0].samples is None:
                        break
                    item = self._current = self._queue.popleft()
                    self._caption = ""
                    self._caption_until = -1
                    self._emit("started", item, text=item.text)
                samples = item.samples
                assert samples is not None  # only ready items leave the queue
                k = min(n - filled, len(samples) - item.pos)
                out[filled : filled + k] = samples[item.pos : item.pos + k]
                item.pos += k
                filled += k
                self._reach_words(item, item.pos)
                if item.pos >= len(samples):
                    self._reach_words(item, len(samples) + 1)
                    self._clock = start + filled
                    self._finish(item, interrupted=False)
                    self._current = None
                elif filled >= n:
                    break
            self._clock = start + n
            if self._caption_until >= 0 and self._clock >= self._caption_until:
                self._caption, self._caption_until = "", -1
            self._keep_tail(out)
            if self._sync_marks:
                self._add_clicks(out, start)
        return out

    def _keep_tail(self, out: I16) -> None:
        tail, n = self._tail, len(out)
        if n >= len(tail):
            tail[:] = out[-len(tail) :]
        elif n:
            tail[:-n] = tail[n:]
            tail[-n:] = out

    def _add_clicks(self, out: I16, start: int) -> None:
        sr, n, length = self.sample_rate, len(out), len(self._click)
        end = start + n
        first = max(1, -(-(start - length + 1) // sr))
        for k in range(first, (end - 1) // sr + 1):
            mark = k * sr
            lo, hi = max(mark, start), min(mark + length, end)
            if lo < hi:
                out[lo - start : hi - start] = self._click[lo - mark : hi - mark]
            if start <= mark < end:
                self._sync_pending = True

    # ------------------------------------------------------------------ picture

    def render(self, frame_number: int, sent_ms: int) -> U8:
        """The picture for the current media time, as the face renderer's reused I420 buffer.

        The stamp carries ``frame_number`` mod 2**24, ``sent_ms`` mod 2**32 and the sync flag
        (see the class doc).  Use the buffer before the next render().
        """
        with self._lock:
            rms = float(np.sqrt(np.mean(np.square(self._tail, dtype=np.float64)))) / 32768.0
            db = 20.0 * math.log10(rms) if rms > 0 else -120.0
            target = min(1.0, max(0.0, (db - _MOUTH_FLOOR_DB) / _MOUTH_RANGE_DB))
            # Open at once, close a little more gently.
            self._mouth = target if target >= self._mouth else 0.5 * (self._mouth + target)
            mouth, caption = self._mouth, self._caption
            t = self._clock / self.sample_rate
            sync, self._sync_pending = self._sync_pending, False
        stamp = (
            Stamp(frame_number % FRAME_LIMIT, sent_ms % SENT_MS_LIMIT, sync)
            if self._test_marks
            else None
        )
        return self._face.render(mouth_open=mouth, caption=caption, t=t, stamp=stamp)
