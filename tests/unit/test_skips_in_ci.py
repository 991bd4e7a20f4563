"""tests/kit/skips.py: with ``CI`` set a skipped test fails the run; locally skips are listed."""

from __future__ import annotations

import pytest

A_RUN_WITH_A_SKIP = """
import pytest

def test_that_runs():
    pass

def test_that_needs_a_part():
    pytest.skip("frobnicator not installed: apt-get install frobnicator")
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """The generated tests under the skip rule alone (no asyncio: they need no loop)."""
    return pytester.runpytest("-p", "no:asyncio", "-p", "tests.kit.skips", *args)


def test_with_ci_set_a_skip_fails_the_run_and_is_named_with_its_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    pytester.makepyfile(A_RUN_WITH_A_SKIP)
    result = run(pytester)
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*skipped tests fail the run in CI*",
            "SKIPPED *::test_that_needs_a_part: frobnicator not installed: apt-get install *",
        ]
    )


def test_with_ci_set_a_run_without_skips_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    pytester.makepyfile("def test_that_runs():\n    pass\n")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.OK


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_without_ci_a_skip_passes_and_rs_lists_its_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    pytester.makepyfile(A_RUN_WITH_A_SKIP)
    result = run(pytester, "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] *: frobnicator not installed: apt-get install *"])
    result.stdout.no_fnmatch_line("*fail the run in CI*")
