"""Runs the daemon's top-level coroutine with its signals and its systemd notifications.

Stopping, two ways (:class:`StopSignals` decides which a signal means):

* graceful, the first SIGINT/SIGTERM: ``STOPPING=1``, then cancel the daemon, which stops the
  remote session, drains and releases devices, bounded by ``graceful_timeout``;
* forced, a later SIGINT/SIGTERM or the timeout: exit at once (code 3); the kernel releases
  what is left.

The same signal again within :data:`REPEAT_WINDOW_S` of the first is the same request, not a
second one: ``timeout(1)`` forwards one ``kill -TERM`` to the process *and* to its group, and
a terminal's Ctrl-C reaches every process of the foreground group, so one request often
arrives twice.

Reloading: SIGHUP runs ``reload`` between ``RELOADING=1`` (with ``MONOTONIC_USEC=``) and
``READY=1``, one reload at a time (SIGHUPs during a reload make one more after it); none once
stopping.  ``reload`` reports a bad config itself and keeps running; an exception out of it
is a bug and ends the daemon like one out of ``main``.

Watchdog: with ``$WATCHDOG_USEC`` set, :class:`~bridge.watchdog.Watchdog` pings at half of it
while the loop answers and every ``health`` check passes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Literal

from bridge import sdnotify
from bridge.watchdog import HealthCheck, Watchdog

log = logging.getLogger(__name__)

EXIT_FORCED = 3
# A repeat of the same stop signal this soon after the first is the same request.
REPEAT_WINDOW_S = 1.0

Meaning = Literal["stop", "repeat", "force"]


class StopSignals:
    """What each stop signal means: the first ``"stop"``; the same signal again within
    ``window`` seconds of the first ``"repeat"`` (ignore it); any other later one ``"force"``."""

    def __init__(
        self, *, window: float = REPEAT_WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window = window
        self._clock = clock
        self._first: tuple[int, float] | None = None

    @property
    def stopping(self) -> bool:
        return self._first is not None

    def meaning(self, sig: int) -> Meaning:
        now = self._clock()
        if self._first is None:
            self._first = (sig, now)
            return "stop"
        first_sig, first_at = self._first
        if sig == first_sig and now - first_at < self._window:
            return "repeat"
        return "force"


async def supervise(
    main: Callable[[], Coroutine[Any, Any, None]],
    *,
    graceful_timeout: float = 15.0,
    reload: Callable[[], Awaitable[None]] | None = None,
    health: Sequence[HealthCheck] = (),
) -> int:
    """Run ``main`` until it ends or a stop signal; 0 after a graceful stop."""
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(main(), name="bridge")
    signals = StopSignals()
    hup = asyncio.Event()

    def on_stop_signal(sig: signal.Signals) -> None:
        meaning = signals.meaning(sig)
        if meaning == "repeat":
            log.info(
                "%s again within %g s: the same request, still stopping",
                sig.name,
                REPEAT_WINDOW_S,
            )
            return
        if meaning == "force":
            log.warning("second %s: stopping now", sig.name)
            os._exit(EXIT_FORCED)
        log.info("%s: stopping (send it again to force)", sig.name)
        sdnotify.notify("STOPPING=1")
        task.cancel()
        loop.call_later(graceful_timeout, _force, graceful_timeout)

    def on_hup() -> None:
        if signals.stopping:
            log.info("SIGHUP while stopping: not reloading")
            return
        hup.set()

    stop_signals = (signal.SIGINT, signal.SIGTERM)
    for sig in stop_signals:
        loop.add_signal_handler(sig, on_stop_signal, sig)
    if reload is not None:
        loop.add_signal_handler(signal.SIGHUP, on_hup)
    helpers = _start_watchdog(health)
    if reload is not None:
        helpers.append(asyncio.create_task(_reloads(hup, reload), name="config-reload"))
    try:
        await _until_done(task, helpers)
    except asyncio.CancelledError:
        if not signals.stopping:
            raise
    finally:
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        for sig in (*stop_signals, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    log.info("stopped")
    return 0


async def _until_done(task: asyncio.Task[None], helpers: list[asyncio.Task[None]]) -> None:
    """Await ``task``; a helper that fails (a bug) cancels it and its error is raised."""
    if helpers:
        await asyncio.wait([task, *helpers], return_when=asyncio.FIRST_COMPLETED)
        for helper in helpers:
            if not helper.done() or helper.cancelled() or task.done():
                continue
            error = helper.exception()
            if error is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise error
    await task


async def _reloads(hup: asyncio.Event, reload: Callable[[], Awaitable[None]]) -> None:
    while True:
        await hup.wait()
        hup.clear()
        log.info("SIGHUP: reloading the config")
        sdnotify.reloading()
        # No READY=1 after a failure (a bug: the daemon ends) or a cancellation (it stops).
        await reload()
        sdnotify.notify("READY=1")


def _force(timeout: float) -> None:
    log.error("graceful stop took longer than %g s: stopping now", timeout)
    os._exit(EXIT_FORCED)


def _start_watchdog(health: Sequence[HealthCheck]) -> list[asyncio.Task[None]]:
    interval = sdnotify.watchdog_interval()
    if interval is None:
        return []
    watchdog = Watchdog(interval=interval, checks=health)
    return [asyncio.get_running_loop().create_task(watchdog.run(), name="systemd-watchdog")]
