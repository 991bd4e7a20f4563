"""What happened inside a simulator: every request (with what the client sent), and every
session's life.

Tests read it to prove that a 4xx was not retried (one request), that no session leaked, and
which fields a client sent: the fakes ignore fields they do not know, as the real services do,
so a misspelt field is caught here (``bodies``), not by a refusal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

SessionEventKind = Literal["created", "started", "connected", "stopped", "expired"]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    at: float
    service: str
    method: str
    path: str
    status: int
    code: int | None
    auth: str  # "api_key", "bearer", "none"
    # The JSON the client sent (the text itself when it was not JSON; None without a body).
    body: Any = None
    query: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SessionRecord:
    at: float
    service: str
    session_id: str
    kind: SessionEventKind
    reason: str = ""


@dataclass
class Ledger:
    requests: list[RequestRecord] = field(default_factory=list)
    session_events: list[SessionRecord] = field(default_factory=list)

    def record_request(self, record: RequestRecord) -> None:
        self.requests.append(record)

    def record_session(
        self, service: str, session_id: str, kind: SessionEventKind, reason: str = ""
    ) -> None:
        self.session_events.append(SessionRecord(time.time(), service, session_id, kind, reason))

    def requests_to(self, path: str) -> list[RequestRecord]:
        return [r for r in self.requests if r.path == path]

    def bodies(self, path: str) -> list[Any]:
        """What the client sent to ``path``, one entry per request, oldest first."""
        return [r.body for r in self.requests_to(path)]

    def sessions(self, kind: SessionEventKind) -> list[str]:
        return [e.session_id for e in self.session_events if e.kind == kind]

    def open_sessions(self, service: str | None = None) -> list[str]:
        """Sessions created and not yet stopped or expired: leaks, if the bridge has exited."""
        ended = {e.session_id for e in self.session_events if e.kind in ("stopped", "expired")}
        return [
            e.session_id
            for e in self.session_events
            if e.kind == "created"
            and e.session_id not in ended
            and (service is None or e.service == service)
        ]

    def clear(self) -> None:
        self.requests.clear()
        self.session_events.clear()

    def as_json(self) -> dict[str, object]:
        return {
            "requests": [_row(r) for r in self.requests],
            "sessions": [_row(e) for e in self.session_events],
        }


def _row(record: RequestRecord | SessionRecord) -> dict[str, object]:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}
