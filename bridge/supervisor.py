"""Runs the daemon's top-level coroutine with the two ways to stop.

Graceful (first SIGINT/SIGTERM): cancel the daemon, which stops the remote session, drains and
releases devices, bounded by ``graceful_timeout``.  Forced (a second signal, or the timeout):
exit at once; the kernel releases what is left.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from bridge import sdnotify

log = logging.getLogger(__name__)

EXIT_FORCED = 3


async def supervise(
    main: Callable[[], Coroutine[Any, Any, None]], *, graceful_timeout: float = 15.0
) -> int:
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(main(), name="bridge")
    stopping = False

    def on_signal(sig: signal.Signals) -> None:
        nonlocal stopping
        if stopping:
            log.warning("second %s: stopping now", sig.name)
            os._exit(EXIT_FORCED)
        stopping = True
        log.info("%s: stopping (send it again to force)", sig.name)
        sdnotify.notify("STOPPING=1")
        task.cancel()
        loop.call_later(graceful_timeout, _force, graceful_timeout)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    watchdog = _start_watchdog()
    try:
        await task
    except asyncio.CancelledError:
        if not stopping:
            raise
    finally:
        if watchdog is not None:
            watchdog.cancel()
            await asyncio.gather(watchdog, return_exceptions=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    log.info("stopped")
    return 0


def _force(timeout: float) -> None:
    log.error("graceful stop took longer than %g s: stopping now", timeout)
    os._exit(EXIT_FORCED)


def _start_watchdog() -> asyncio.Task[None] | None:
    interval = sdnotify.watchdog_interval()
    if interval is None:
        return None

    async def ping() -> None:
        while True:
            sdnotify.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    return asyncio.get_running_loop().create_task(ping(), name="systemd-watchdog")
