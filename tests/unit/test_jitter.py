"""The audio jitter buffer on its own: a pure FIFO driven with explicit times (no server)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bridge.devices.pulse_stream import BLOCK, RATE
from bridge.media.jitter import JitterBuffer


def block_of(value: int, n: int = BLOCK) -> np.ndarray[Any, np.dtype[np.int16]]:
    return np.full(n, value, np.int16)


def test_jitter_buffer_waits_for_the_target_then_plays_in_order() -> None:
    jb = JitterBuffer(rate=RATE, target_ms=30, max_ms=230, block=BLOCK)
    t = 100.0
    for i in range(2):
        jb.push(block_of(i + 1), t)
        out, audio = jb.pop(t)
        assert not audio and not out.any()  # still filling
    jb.push(block_of(3), t)
    got = [int(jb.pop(t)[0][0]) for _ in range(3)]
    assert got == [1, 2, 3]
    out, audio = jb.pop(t)  # ran dry: silence, not yet an underrun
    assert audio and not out.any() and jb.underruns == 0
    jb.push(block_of(4), t + 0.1)  # audio came back soon: that was a gap
    assert jb.underruns == 1


def test_jitter_buffer_plays_a_short_tail_and_the_end_is_no_underrun() -> None:
    jb = JitterBuffer(rate=RATE, target_ms=60, max_ms=260, block=BLOCK)
    jb.push(block_of(5), 0.0)
    assert not jb.pop(0.01)[1]
    out, audio = jb.pop(0.07)  # nothing more came for 60 ms: play what there is
    assert audio and out[0] == 5
    jb.pop(0.08)
    jb.push(block_of(6), 5.0)  # the next utterance, much later
    assert jb.underruns == 0


def test_jitter_buffer_overrun_drops_the_oldest() -> None:
    jb = JitterBuffer(rate=RATE, target_ms=60, max_ms=260, block=BLOCK)
    for i in range(27):
        jb.push(block_of(i), 0.0)
    assert jb.overruns == 1
    assert jb.buffered_ms() == 60
    assert int(jb.pop(0.0)[0][0]) == 21  # 27 blocks in, the newest 6 kept


def test_jitter_buffer_trims_drift() -> None:
    jb = JitterBuffer(rate=RATE, target_ms=60, max_ms=1000, block=BLOCK)
    t = 0.0
    for _ in range(12):  # 120 ms: 60 ms more than needed, all the time
        jb.push(block_of(1), t)
    for _ in range(300):
        t += 0.01
        jb.push(block_of(1), t)
        jb.pop(t)
    assert jb.trims == 1 and 55 <= jb.buffered_ms() <= 65


def test_jitter_buffer_target_grows_after_a_stall_and_shrinks_back() -> None:
    jb = JitterBuffer(rate=RATE, target_ms=60, max_ms=260, block=BLOCK)
    t = 0.0
    for _ in range(6):
        jb.push(block_of(1), t)
    jb.pop(t)  # playing

    def steady(seconds: float) -> None:
        nonlocal t
        for _ in range(round(seconds * 100)):
            t += 0.01
            jb.push(block_of(1), t)
            jb.pop(t)

    steady(1.0)
    assert jb.target == RATE * 60 // 1000
    t += 0.150  # the machine stalled: nothing arrived for 150 ms, then a burst
    for _ in range(15):
        jb.push(block_of(1), t)
    assert 150 <= jb.target * 1000 / RATE <= 170  # now held back that long
    steady(5.0)
    assert jb.overruns == 0 and jb.underruns == 0
    assert jb.buffered_ms() >= 140  # the cushion for the next stall was kept
    steady(15.0)
    assert jb.target == RATE * 60 // 1000  # calm again: back to the configured target


def test_jitter_buffer_latency_is_what_the_voice_waits_also_for_gathered_chunks() -> None:
    """A source gathers 10 ms network frames into 40 ms chunks (as the LiveKit source does) and
    dates each chunk to its first frame.  Every frame's real wait, from its arrival to the
    writer taking it, must be what ``latency_ms`` says at any moment: measured while the
    avatar speaks, predicted between utterances.  The camera is delayed by it."""
    jb = JitterBuffer(rate=RATE, target_ms=60, max_ms=260, block=BLOCK)
    waits: dict[int, list[float]] = {1: [], 2: []}
    said: list[float] = []
    predicted = 0.0
    for step in range(700):  # one writer block per 10 ms; network frame k arrives at k/100
        now = step / 100
        utterance = 1 if step < 300 else 2 if step >= 400 else 0
        if step == 399:
            predicted = jb.latency_ms(now) / 1000
        if utterance and step % 4 == 3:  # frames step-3 .. step, dated to frame step-3
            frames = np.repeat(np.arange(step - 3, step + 1, dtype=np.int16), BLOCK)
            jb.push(frames, now, arrived=(step - 3) / 100)
        block, audio = jb.pop(now)
        if audio and block.any():
            waits[1 if block[0] < 300 else 2].append(now - int(block[0]) / 100)
            if 20 < step < 300 or step > 420:
                said.append(jb.latency_ms(now + 0.005) / 1000)
    assert jb.underruns == 0
    wait = waits[1][0]
    assert all(w == pytest.approx(wait, abs=1e-9) for w in waits[1] + waits[2])
    assert predicted == pytest.approx(wait, abs=1e-6)
    assert all(s == pytest.approx(wait, abs=1e-6) for s in said)
