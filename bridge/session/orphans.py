"""The remote sessions this machine opened, on disk, so a crash leaves none running.

A remote session costs credits and counts against the account's concurrency limit until it is
stopped or expires (HeyGen: 10007 after three on a trial account).  Each session is recorded
the moment the provider has created it and forgotten once it is stopped; a daemon killed in
between leaves its records behind, and the next start stops those sessions first (reference
heygen-api.md §8: "list/stop orphans at startup").

Only records of processes that are gone are swept, so a second daemon on the same account
keeps its session, and sessions that other apps opened on the account are never touched.
Records older than a day are dropped unswept: every provider has ended such a session itself.

File: ``$XDG_STATE_HOME/heygen-bridge/sessions.json`` (``~/.local/state/...``), mode 0600, a
JSON list changed under ``flock`` and replaced atomically.  It holds session ids, never a key.
A file that cannot be read or written costs this protection, not the daemon: it is logged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_AGE_S = 24 * 3600
FILE_NAME = "sessions.json"


def default_path() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "heygen-bridge" / FILE_NAME


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _opened_within(row: dict[str, Any], since: float) -> bool:
    opened = row.get("opened")
    return isinstance(opened, int | float) and opened >= since


class OpenedSessions:
    """The record file; ``account`` names a service and its API base URL."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pid = os.getpid()
        # Tells this run's records from an earlier run's under the same pid (a container's
        # daemon is always pid 1, say): those are orphans too.
        self.run = uuid.uuid4().hex
        self._warned = False

    def created(self, account: str, session_id: str) -> None:
        entry = {"account": account, "session_id": session_id, "pid": self.pid, "run": self.run}
        self._change(lambda rows: [*rows, {**entry, "opened": time.time()}])

    def stopped(self, session_id: str) -> None:
        self._change(lambda rows: [r for r in rows if r.get("session_id") != session_id])

    def orphans(self, account: str) -> list[str]:
        """Sessions on ``account`` whose daemon is gone (oldest first); drops stale records."""
        found: list[str] = []

        def sweep(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            now = time.time()
            kept = [r for r in rows if _opened_within(r, now - MAX_AGE_S)]
            found.extend(
                str(r["session_id"])
                for r in kept
                if r.get("account") == account and self._left_behind(r)
            )
            return kept

        self._change(sweep)
        return found

    def _left_behind(self, row: dict[str, Any]) -> bool:
        pid = row.get("pid")
        if row.get("run") == self.run or not isinstance(pid, int) or pid <= 0:
            return False
        return pid == self.pid or not _alive(pid)

    def recorder(self, account: str) -> AccountRecord:
        return AccountRecord(self, account)

    # --- the file -------------------------------------------------------------------------

    def _change(self, edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
        try:
            with self._locked():
                rows, readable = self._read()
                changed = edit(rows)
                if changed != rows or not readable:
                    self._write(changed)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning(
                    "cannot keep the record of open sessions in %s (%s): sessions left by a "
                    "crash will not be stopped at the next start",
                    self.path,
                    exc.strerror or exc,
                )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> tuple[list[dict[str, Any]], bool]:
        """The rows, and whether the file was sound (a garbled one is replaced at once)."""
        try:
            rows = json.loads(self.path.read_text())
        except FileNotFoundError:
            return [], True
        except (ValueError, UnicodeDecodeError):
            rows = None
        if not isinstance(rows, list):
            log.warning("%s is not a valid record of sessions; starting a new one", self.path)
            return [], False
        return [
            r for r in rows if isinstance(r, dict) and isinstance(r.get("session_id"), str)
        ], True

    def _write(self, rows: list[dict[str, Any]]) -> None:
        temp = self.path.with_suffix(".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(rows, out, indent=1)
        os.replace(temp, self.path)


class AccountRecord:
    """The :class:`~bridge.providers.base.SessionRecorder` a provider is handed (file work runs
    off the event loop)."""

    def __init__(self, sessions: OpenedSessions, account: str) -> None:
        self._sessions = sessions
        self.account = account

    async def created(self, session_id: str) -> None:
        await asyncio.to_thread(self._sessions.created, self.account, session_id)

    async def stopped(self, session_id: str) -> None:
        await asyncio.to_thread(self._sessions.stopped, session_id)
