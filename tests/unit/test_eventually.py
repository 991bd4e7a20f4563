"""tests/kit/eventually.py: the one way tests poll for an outcome."""

from __future__ import annotations

import itertools

import pytest

from tests.kit.eventually import eventually, eventually_blocking


async def test_returns_the_first_value_that_passes() -> None:
    reads = itertools.count()
    assert await eventually(lambda: next(reads), until=lambda n: n >= 3) == 3


async def test_polls_a_coroutine_function_too() -> None:
    reads = itertools.count()

    async def status() -> dict[str, int]:
        return {"frames": next(reads)}

    passed = await eventually(status, until=lambda s: s["frames"] == 2)
    assert passed == {"frames": 2}


async def test_fails_after_within_naming_what_and_the_last_value() -> None:
    with pytest.raises(
        AssertionError, match=r"not within 0\.05 s: the mic writing; last seen: 'x'"
    ):
        await eventually(lambda: "x", until=lambda s: s == "y", within=0.05, what="the mic writing")


async def test_an_error_in_the_check_ends_the_wait_at_once() -> None:
    def died() -> bool:
        raise RuntimeError("the daemon exited")

    with pytest.raises(RuntimeError, match="the daemon exited"):
        await eventually(died, within=60)


def test_the_blocking_form_keeps_the_same_contract() -> None:
    reads = itertools.count()
    assert eventually_blocking(lambda: next(reads), until=lambda n: n >= 2) == 2
    with pytest.raises(AssertionError, match=r"not within 0\.05 s: never"):
        eventually_blocking(lambda: False, within=0.05, what="never")
