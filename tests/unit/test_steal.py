"""tests/kit/steal.py: how much CPU time the host took from this VM between two moments."""

from __future__ import annotations

import os

import pytest

from tests.kit.steal import StealWatch


def test_steal_is_the_most_one_cpu_lost_over_a_span() -> None:
    watch = StealWatch()
    watch.times = [0.0, 0.01, 0.02, 0.03]
    watch.samples = [(0, 0), (0, 2), (3, 2), (3, 2)]  # ticks per CPU since boot
    tick = 1.0 / os.sysconf("SC_CLK_TCK")
    assert watch.during(0.0, 0.01) == pytest.approx(2 * tick)
    assert watch.during(0.005, 0.02) == pytest.approx(3 * tick)  # from the sample before
    assert watch.during(0.02, 0.03) == 0.0
    assert StealWatch().during(0.0, 1.0) == 0.0  # nothing sampled: nothing excused
