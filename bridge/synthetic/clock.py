"""Runs a :class:`~bridge.synthetic.performer.Performer` in real time.

Lockstep, as the performer expects: every frame interval, pull that frame's audio, then render
that frame, then forward the speech events the pull produced.  Paced against a monotonic
deadline; far behind (a stalled loop), it re-syncs instead of bursting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from bridge.media.frames import I16, U8
from bridge.synthetic.performer import Performer, SpeechEvent

RESYNC_AFTER_S = 0.25

OnVideo = Callable[[U8, int], None]  # (I420 buffer valid until the next frame, frame number)
OnAudio = Callable[[I16], Awaitable[None]]
OnEvent = Callable[[SpeechEvent], Awaitable[None]]


async def drive(
    performer: Performer, *, on_video: OnVideo, on_audio: OnAudio, on_event: OnEvent
) -> None:
    """Run until cancelled."""
    interval = 1.0 / performer.fps
    samples = round(performer.sample_rate / performer.fps)
    start = time.perf_counter()
    frame = 0
    while True:
        delay = start + frame * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -RESYNC_AFTER_S:
            start = time.perf_counter() - frame * interval
        await on_audio(performer.pull_audio(samples))
        sent_ms = int(time.time() * 1000)
        on_video(performer.render(frame, sent_ms), frame)
        for event in performer.drain_events():
            await on_event(event)
        frame += 1
