"""The session manager's states and the transitions between them.

The diagram and what each state means are in :mod:`bridge.session.manager`; every transition
goes through the manager's ``_enter``, which checks it against :data:`ALLOWED` (a transition
outside the table is a bug, and raises :class:`IllegalTransition`).
"""

from __future__ import annotations

from enum import StrEnum


class SessionState(StrEnum):
    STARTING = "starting"
    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    FAILED = "failed"
    STOPPING = "stopping"
    STOPPED = "stopped"


STARTING, CONNECTING, LIVE, RECONNECTING = (
    SessionState.STARTING,
    SessionState.CONNECTING,
    SessionState.LIVE,
    SessionState.RECONNECTING,
)
ENDED, FAILED, STOPPING, STOPPED = (
    SessionState.ENDED,
    SessionState.FAILED,
    SessionState.STOPPING,
    SessionState.STOPPED,
)
ALLOWED: dict[SessionState, set[SessionState]] = {
    STARTING: {CONNECTING, FAILED, STOPPING},
    CONNECTING: {LIVE, ENDED, FAILED, STOPPING},
    LIVE: {RECONNECTING, ENDED, FAILED, STOPPING},
    RECONNECTING: {LIVE, ENDED, FAILED, STOPPING},
    # ended or failed -> connecting: the session the renewal opened ahead takes over
    ENDED: {STARTING, CONNECTING, STOPPING},
    FAILED: {STARTING, CONNECTING, STOPPING},
    STOPPING: {STOPPED},
    STOPPED: set(),
}


class IllegalTransition(RuntimeError):
    """A bug: the manager tried a state change its table (:data:`ALLOWED`) forbids."""
