"""Energy voice activity: which blocks of the meeting's sound go to the avatar.

:class:`EnergyGate` is pure and loop-free: ``push(block)`` returns the blocks to send now.  A
block at least ``threshold_dbfs`` loud (RMS) opens the gate and is sent together with the
``pre_roll_ms`` before it (a word's first sound is quieter than its middle); the gate stays
open until ``hangover_ms`` have passed without a loud block, so the pauses between words go
too, and a sentence reaches the provider's speech recognition whole.  Closed, it sends
nothing: the uplink then carries no sound at all (see :mod:`bridge.source.uplink` for what
goes on the wire instead).  Energy is enough here: the virtual speaker carries only what the
meeting app plays, digital silence between voices, not a room's noise.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from bridge.media.frames import I16

SILENCE_DBFS = -120.0  # what digital zero reads as (a finite number for JSON and charts)
FULL_SCALE = 32768.0


def level_dbfs(block: I16) -> float:
    """The block's RMS level in dB below full scale; :data:`SILENCE_DBFS` at most quiet."""
    if block.size == 0:
        return SILENCE_DBFS
    samples = block.astype(np.float32)
    rms = math.sqrt(float(np.dot(samples, samples)) / block.size)
    if rms <= 0.0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 20.0 * math.log10(rms / FULL_SCALE))


class EnergyGate:
    """Opens on a loud block, closes ``hangover_ms`` after the last one (see module doc)."""

    def __init__(
        self,
        *,
        rate: int,
        block: int,
        threshold_dbfs: float,
        hangover_ms: int,
        pre_roll_ms: int,
    ) -> None:
        block_ms = block * 1000 / rate
        self.threshold_dbfs = threshold_dbfs
        self._hangover_blocks = math.ceil(hangover_ms / block_ms)
        self._pre_roll: deque[I16] = deque(maxlen=math.ceil(pre_roll_ms / block_ms))
        self._quiet_blocks = 0
        self.open = False
        self.openings = 0  # utterances so far
        self.level = SILENCE_DBFS  # of the last block pushed

    def push(self, block: I16) -> list[I16]:
        """The blocks to send now, oldest first (nothing while closed)."""
        self.level = level_dbfs(block)
        loud = self.level >= self.threshold_dbfs
        if loud:
            self._quiet_blocks = 0
            if not self.open:
                self.open = True
                self.openings += 1
                out = [*self._pre_roll, block]
                self._pre_roll.clear()
                return out
            return [block]
        if self.open:
            self._quiet_blocks += 1
            if self._quiet_blocks <= self._hangover_blocks:
                return [block]
            self.open = False
        if self._pre_roll.maxlen:
            self._pre_roll.append(block)
        return []

    def reset(self) -> None:
        """Close at once and forget the pre-roll (muted, or the source changed)."""
        self.open = False
        self._quiet_blocks = 0
        self._pre_roll.clear()
