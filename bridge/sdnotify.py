"""systemd readiness and watchdog notifications (sd_notify(3)), without a dependency.

A no-op when the daemon does not run under systemd (no ``$NOTIFY_SOCKET``).
"""

from __future__ import annotations

import os
import socket
import time


def notify(state: str) -> bool:
    """Send e.g. ``READY=1``, ``STOPPING=1``, ``STATUS=...``, ``WATCHDOG=1``."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(state.encode(), address)
        except OSError:
            return False
    return True


def ready(url: str) -> bool:
    """Tell the supervisor we serve at ``url``: ``READY=1`` plus ``X_URL=`` (sd_notify(3) lets
    services add their own ``X_`` fields; systemd ignores them, and test launchers read the
    URL here instead of parsing a human banner)."""
    return notify(f"READY=1\nSTATUS=serving at {url}\nX_URL={url}")


def reloading() -> bool:
    """Say a reload has begun: ``RELOADING=1`` with ``MONOTONIC_USEC=`` (CLOCK_MONOTONIC, as
    sd_notify(3) asks of ``Type=notify-reload`` services, so systemd can tell this reload from
    an older one).  ``READY=1`` (:func:`ready`) ends it."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")


def watchdog_interval() -> float | None:
    """Half the watchdog timeout systemd asked for, in seconds, or None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None
