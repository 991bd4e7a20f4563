"""A skip is a failure in CI.

Tests skip, saying how to get the part, when the machine lacks a real part they need
(livekit-server, PulseAudio, espeak-ng, libyuv).  CI installs every part, so there a skip
means a broken install step: with the ``CI`` environment variable set (as CI services set
it, e.g. ``CI=true``), a run with any skipped test fails and names each skip and its reason.
Locally skips stay skips (``-rs`` in pyproject.toml lists them with their reasons).
"""

from __future__ import annotations

import os

import pytest

OFF = ("", "0", "false", "no")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in OFF


class SkipLedger:
    """Notes every skip (of a test, or of a whole module at collection) with its reason."""

    def __init__(self) -> None:
        self.skips: list[tuple[str, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):  # an expected failure is no skip
            self._note(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.skipped:
            self._note(report)

    def _note(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        self.skips.append((report.nodeid, reason.removeprefix("Skipped: ")))

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if in_ci() and self.skips and exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not (in_ci() and self.skips):
            return
        terminalreporter.section("skipped tests fail the run in CI (CI is set)", red=True)
        for nodeid, reason in self.skips:
            terminalreporter.line(f"SKIPPED {nodeid}: {reason}", red=True)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SkipLedger(), "skip-ledger")
