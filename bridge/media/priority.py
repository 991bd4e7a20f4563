"""Best-effort scheduling priority for the media writer threads.

The camera and microphone writers must run on time even while a video call keeps the CPU
busy.  Where the system allows it (root, CAP_SYS_NICE, or an RLIMIT_RTPRIO/RLIMIT_NICE grant
such as the audio group's), a writer asks for a low real-time priority, else a better nice
value; otherwise it runs as is.  The result is reported in status.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

RT_PRIORITY = 10  # low among real-time threads (audio servers use 20+)
NICE = -10


def raise_current_thread() -> str:
    """Ask for real-time, then for a better nice value; returns what was granted."""
    tid = threading.get_native_id()
    if hasattr(os, "sched_setscheduler"):
        try:
            os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))
            return f"SCHED_FIFO {RT_PRIORITY}"
        except OSError:
            pass
    if hasattr(os, "setpriority"):
        try:
            os.setpriority(os.PRIO_PROCESS, tid, NICE)
            return f"nice {NICE}"
        except OSError:
            pass
    log.debug("thread %s keeps the default priority (no permission to raise it)", tid)
    return "default"
