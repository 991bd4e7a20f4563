"""Shared fixtures: the simulators over real HTTP, and a guard against leaked asyncio tasks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Generator, Iterator

import pytest

from bridge.config import Secret
from bridge.providers.heygen.client import HeyGenClient
from bridge.sim import DEFAULT_HEYGEN_KEY
from bridge.sim.clock import ManualClock
from bridge.sim.server import Simulator

pytest_plugins = [
    "tests.kit.livekit",
    "tests.kit.pulse",
    "tests.kit.camera",
    "tests.kit.simproc",
    "tests.kit.steal",
    "tests.kit.skips",
    "pytester",
]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test's report ends with the log of every real server it used."""
    report = yield
    if report.failed and isinstance(item, pytest.Function):
        for name, value in item.funcargs.items():
            tail = getattr(value, "log_tail", None)
            if callable(tail):
                report.sections.append((f"{name}: log (tail)", str(tail())))
    return report


@pytest.fixture(scope="session", autouse=True)
def private_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The bridge's record of open sessions goes to the test run's own state directory
    (bridge processes the tests start inherit it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
        yield


@pytest.fixture(autouse=True)
def root_logger_restored() -> Iterator[None]:
    """A CLI test runs ``main()``, whose ``log.setup`` hands the root logger pytest's captured
    stderr; that stream is closed when the test ends, and later log lines would hit it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Every task a test starts must be finished when the test ends."""
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
    for task in leaked:
        task.cancel()
    await asyncio.gather(*leaked, return_exceptions=True)  # ended before the next test starts
    assert not leaked, f"tasks left running: {[t.get_name() for t in leaked]}"


@pytest.fixture
def clock() -> ManualClock:
    """The simulator's time: it moves only when the test calls ``await clock.advance(s)``."""
    return ManualClock()


@pytest.fixture
async def sim(clock: ManualClock) -> AsyncIterator[Simulator]:
    """The provider fakes on a free loopback port, on the test's :func:`clock`."""
    async with Simulator(clock=clock) as simulator:
        yield simulator


@pytest.fixture
async def heygen(sim: Simulator) -> AsyncIterator[HeyGenClient]:
    async with HeyGenClient(
        base_url=sim.url, credential=Secret(DEFAULT_HEYGEN_KEY), timeout=5, retry_deadline=5
    ) as client:
        yield client
