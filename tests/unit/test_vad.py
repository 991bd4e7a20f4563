"""The energy gate that keeps silence off the avatar's uplink (bridge/media/vad.py)."""

from __future__ import annotations

import numpy as np

from bridge.media.vad import SILENCE_DBFS, EnergyGate, level_dbfs

RATE, BLOCK = 48000, 960  # 20 ms


def tone(amplitude: float) -> np.ndarray:
    t = np.arange(BLOCK) / RATE
    return np.round(amplitude * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


SILENT = np.zeros(BLOCK, np.int16)
LOUD = tone(0.3)  # about -13 dBFS: speech
HISS = tone(0.001)  # about -63 dBFS: a quiet line


def gate(hangover_ms: int = 100, pre_roll_ms: int = 40) -> EnergyGate:
    return EnergyGate(
        rate=RATE,
        block=BLOCK,
        threshold_dbfs=-45.0,
        hangover_ms=hangover_ms,
        pre_roll_ms=pre_roll_ms,
    )


def test_levels() -> None:
    assert level_dbfs(SILENT) == SILENCE_DBFS
    assert -14.0 < level_dbfs(LOUD) < -13.0  # a sine's RMS is 3 dB under its peak
    assert -70.0 < level_dbfs(HISS) < -60.0


def test_silence_and_quiet_never_pass() -> None:
    g = gate()
    assert all(g.push(block) == [] for block in [SILENT, HISS] * 50)
    assert not g.open and g.openings == 0


def test_speech_opens_with_its_pre_roll_and_holds_through_a_pause() -> None:
    g = gate(hangover_ms=100, pre_roll_ms=40)
    before = [HISS, tone(0.002), tone(0.003)]  # the last two are the pre-roll
    for block in before:
        assert g.push(block) == []
    sent = g.push(LOUD)
    assert all(b is x for b, x in zip(sent, [before[1], before[2], LOUD], strict=True))
    assert len(sent) == 3 and g.open and g.openings == 1
    # A pause of 100 ms (5 blocks) between words goes too; the next word keeps it open.
    assert all(g.push(SILENT) == [SILENT] for _ in range(5))
    assert g.push(LOUD) == [LOUD]
    # After the hangover it closes, and stays closed in silence.
    passed = sum(len(g.push(SILENT)) for _ in range(20))
    assert passed == 5 and not g.open
    assert g.push(LOUD)[-1] is LOUD and g.openings == 2


def test_reset_closes_and_forgets_the_pre_roll() -> None:
    g = gate(pre_roll_ms=100)
    g.push(tone(0.002))
    g.push(LOUD)
    g.reset()
    assert not g.open
    assert g.push(LOUD) == [LOUD]  # no pre-roll left from before the reset
