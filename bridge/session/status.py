"""What status tells of the session manager (:meth:`SessionManager.snapshot`)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bridge.session.manager import SessionManager


def snapshot(m: SessionManager) -> dict[str, Any]:
    """The manager's status; the fields are described by :meth:`SessionManager.snapshot`."""
    left = m._until_limit()
    renewal = None if left is None else max(0.0, left - m._renewal.margin)
    next_try = m._retrying.next_try_at
    return {
        "provider": m.provider.name,
        "state": str(m.state),
        "session_id": m.session.session_id if m.session else None,
        "seconds_left": None if left is None else max(0, round(left)),
        "renewal_in_s": None if renewal is None else round(renewal),
        "next_renewal_at": None if renewal is None else _utc(time.time() + renewal),
        "renew_margin_s": m._renewal.margin,
        "renewal": m.renewal,
        "sessions_opened": m.sessions_opened,
        "reconnects": m.reconnects,
        "last_reason": m.last_reason,
        "next_try_in_s": (None if next_try is None else round(max(0.0, next_try - m._clock()), 1)),
        "orphans_stopped": m.orphans_stopped,
        "last_error": m.last_error,
        "fix": m.fix,
    }


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
