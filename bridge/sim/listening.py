"""The simulated avatar's ears: speech found by energy in a participant's audio track.

The providers run VAD and speech recognition on the user's microphone track in the room; the
simulators have no recognizer, so they only need to know *that* someone spoke and for how long.
:class:`EnergyVad` finds utterances in 48 kHz mono samples: the RMS of each 20 ms frame against
a threshold; :data:`ONSET_FRAMES` loud frames in a row start an utterance (a click does not),
:data:`HANGOVER_S` of quiet ends it (pauses between words do not).  :func:`listen` reads one
remote track through the LiveKit SDK and feeds it in; :class:`Ears` does that for every other
participant's audio track in the avatar's room.

A gate (push-to-talk) closes the ears: audio heard while it is closed is measured but never
starts an utterance, and closing it ends the utterance in progress at once, as releasing the
talk button does.
"""

from __future__ import annotations

import asyncio
import logging
import math

import numpy as np
from livekit import rtc

from bridge.media.frames import I16
from bridge.sim.media import Gate, Heard, OnHeard
from bridge.sim.tasks import cancel_and_wait

log = logging.getLogger(__name__)

SAMPLE_RATE = 48000
FRAME_S = 0.02
THRESHOLD_DBFS = -40.0  # far above an idle line's noise, far below speech (-30 .. -10 dBFS)
ONSET_FRAMES = 3
HANGOVER_S = 0.6


class EnergyVad:
    """Voice activity by energy, on frames of :data:`FRAME_S` (counted in samples: media time)."""

    def __init__(
        self,
        speaker: str,
        *,
        sample_rate: int = SAMPLE_RATE,
        threshold_dbfs: float = THRESHOLD_DBFS,
        hangover_s: float = HANGOVER_S,
    ) -> None:
        self.speaker = speaker
        self._frame = round(sample_rate * FRAME_S)
        self._threshold = 32768.0 * 10 ** (threshold_dbfs / 20)
        self._hangover = math.ceil(hangover_s / FRAME_S)
        self._rest = np.zeros(0, dtype=np.int16)
        self._run = 0  # loud frames in a row while quiet
        self._start: int | None = None  # frame index where the utterance began
        self._last_loud = 0
        self.frames = 0  # every frame measured, gate open or not (tests and logs read them)
        self.loud_frames = 0

    @property
    def in_speech(self) -> bool:
        return self._start is not None

    def feed(self, samples: I16, *, gate_open: bool = True) -> list[Heard]:
        """Measure ``samples``; what began or ended in them.  A closed gate ends speech."""
        pending = np.concatenate((self._rest, samples)) if self._rest.size else samples
        whole = pending.size - pending.size % self._frame
        self._rest = pending[whole:].copy()
        out: list[Heard] = []
        if whole == 0:
            return out
        frames = pending[:whole].astype(np.float64).reshape(-1, self._frame)
        levels = np.sqrt(np.mean(frames * frames, axis=1))
        for level in levels:
            loud = bool(level >= self._threshold)
            self.loud_frames += loud
            if not gate_open:
                out += self.flush()
                self._run = 0
            else:
                out += self._step(loud)
            self.frames += 1
        return out

    def _step(self, loud: bool) -> list[Heard]:
        index = self.frames
        if self._start is None:
            self._run = self._run + 1 if loud else 0
            if self._run < ONSET_FRAMES:
                return []
            self._start, self._last_loud, self._run = index - ONSET_FRAMES + 1, index, 0
            return [Heard("started", self.speaker)]
        if loud:
            self._last_loud = index
            return []
        if index - self._last_loud >= self._hangover:
            return self.flush()
        return []

    def flush(self) -> list[Heard]:
        """End the utterance in progress now (gate closed, track gone, audio stopped)."""
        if self._start is None:
            return []
        seconds = (self._last_loud - self._start + 1) * FRAME_S
        self._start = None
        return [Heard("ended", self.speaker, round(seconds, 3))]


async def listen(track: rtc.Track, vad: EnergyVad, *, gate: Gate, on_heard: OnHeard) -> None:
    """Feed ``track`` (a remote audio track) to ``vad`` until it ends or this is cancelled.

    An utterance in progress is ended when no audio arrives for the hangover (a sender that
    stops sending frames instead of sending silence) and when the track ends.
    """
    stream = rtc.AudioStream.from_track(track=track, sample_rate=SAMPLE_RATE, num_channels=1)
    try:
        while True:
            try:
                async with asyncio.timeout(HANGOVER_S if vad.in_speech else None):
                    event = await anext(stream)
            except TimeoutError:
                _tell(on_heard, vad.flush())
                continue
            except StopAsyncIteration:
                break
            samples = np.frombuffer(event.frame.data, dtype=np.int16)
            _tell(on_heard, vad.feed(samples, gate_open=gate()))
    finally:
        _tell(on_heard, vad.flush())  # a speaker who left was heard to the end
        await stream.aclose()


def _tell(on_heard: OnHeard, events: list[Heard]) -> None:
    for heard in events:
        on_heard(heard)


class Ears:
    """Listens to the audio track of every participant of ``room`` but ``own_identity``: the
    avatar never hears (and so never answers) its own voice."""

    def __init__(self, room: rtc.Room, own_identity: str, on_heard: OnHeard, gate: Gate) -> None:
        self._room = room
        self._own = own_identity
        self._on_heard = on_heard
        self._gate = gate
        self._tasks: dict[str, asyncio.Task[None]] = {}  # by track sid
        self.vads: dict[str, EnergyVad] = {}  # by speaker: what reached the avatar from whom
        self._closed = False

    def attach(self) -> None:
        """Listen from now on (call before the room is joined: tracks already there count)."""
        self._room.on("track_subscribed", self._subscribed)
        self._room.on("track_unsubscribed", self._unsubscribed)

    def _subscribed(
        self, track: rtc.Track, publication: object, participant: rtc.RemoteParticipant
    ) -> None:
        speaker = participant.identity
        if self._closed or track.kind != rtc.TrackKind.KIND_AUDIO or speaker == self._own:
            return
        self._stop(track.sid)
        vad = self.vads[speaker] = EnergyVad(speaker)
        task = asyncio.create_task(
            listen(track, vad, gate=self._gate, on_heard=self._on_heard),
            name=f"sim-avatar-ears-{speaker}",
        )
        task.add_done_callback(self._ended)
        self._tasks[track.sid] = task
        log.info("simulated avatar listens to %s", speaker)

    def _unsubscribed(
        self, track: rtc.Track, publication: object, participant: rtc.RemoteParticipant
    ) -> None:
        self._stop(track.sid)

    def _stop(self, sid: str) -> None:
        task = self._tasks.get(sid)
        if task is not None:
            task.cancel()

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            for sid, known in list(self._tasks.items()):
                if known is task:
                    del self._tasks[sid]
        else:  # kept: aclose raises it again
            log.error("%s crashed", task.get_name(), exc_info=task.exception())

    async def aclose(self) -> None:
        """Stop listening; a listener that had crashed raises here."""
        self._closed = True
        tasks, self._tasks = list(self._tasks.values()), {}
        await cancel_and_wait(*tasks)
