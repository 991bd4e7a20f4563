"""The speech queue on disk, so the items not yet spoken survive a restart of the daemon.

File: ``$XDG_STATE_HOME/heygen-bridge/queue.json`` (``~/.local/state/...``), mode 0600,
``{"version": 1, "items": [<item as_json()>, ...]}``: the queued items in speaking order.

Written atomically (a temporary file beside it, flushed to disk, then ``os.replace``: a reader
or a crash finds the old content or the new, never half of one), in a thread, never on the
event loop, by one writer (:meth:`QueueStore.keep_written`, a task the queue's ``run`` owns).
The queue marks each change with :meth:`QueueStore.changed`; the writer takes the queue's
state when it is free, so a burst of changes (a hundred requests in one tick) costs one
write.  A write is never cut in half by a cancel, and on shutdown the queue's ``run`` writes
what changed since the last write (:meth:`QueueStore.flush`) before it ends.

Read once, by the queue's constructor (:meth:`QueueStore.load`).  No file: an empty queue.
A file that cannot be read, is not this JSON, or holds anything that is not a queued item:
one warning naming the file and the cause, and an empty queue (the file is replaced at the
next change) — never a crash: a lost queue costs less than a daemon that will not start.
A file that cannot be written costs the persistence, not the daemon: the first failure is a
warning, later ones are logged at DEBUG, all are counted (:attr:`QueueStore.write_failures`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bridge.cleanup import finish_despite_cancel

__all__ = ["FILE_NAME", "VERSION", "QueueStore", "default_path"]

log = logging.getLogger(__name__)

FILE_NAME = "queue.json"
VERSION = 1
# How long the writer lets changes gather before it writes (a crash in this window loses them).
SETTLE_S = 0.1

T = TypeVar("T")
Rows = Callable[[], list[dict[str, Any]]]


def default_path() -> Path:
    """``$XDG_STATE_HOME/heygen-bridge/queue.json``, ``~/.local/state`` when it is unset."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "heygen-bridge" / FILE_NAME


class QueueStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._changed = asyncio.Event()
        self.writes = 0
        self.write_failures = 0

    def load(self, parse: Callable[[object], T]) -> list[T]:
        """The items on file, each made by ``parse`` (which raises ``ValueError`` for a row
        that is not one); [] when there is no file, or (with one warning) a bad one."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            return self._unusable(f"cannot be read: {exc.strerror or exc}")
        try:
            document = json.loads(raw)
            if not isinstance(document, dict) or document.get("version") != VERSION:
                raise ValueError(f"not a speech queue file of version {VERSION}")
            rows = document.get("items")
            if not isinstance(rows, list):
                raise ValueError('"items" is not a list')
            return [parse(row) for row in rows]
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return self._unusable(str(exc))

    def _unusable(self, why: str) -> list[T]:
        log.warning("%s: %s; the speech queue starts empty", self.path, why)
        return []

    def changed(self) -> None:
        """The queue changed: the writer writes it when it is free."""
        self._changed.set()

    async def keep_written(self, rows: Rows) -> None:
        """Write ``rows()`` after every change, until cancelled (the owner then calls
        :meth:`flush`, so what changed meanwhile is written too)."""
        while True:
            await self._changed.wait()
            # Let a burst settle (a request queued, then sent at once): one write, not two.
            await asyncio.sleep(SETTLE_S)
            await self.flush(rows)

    async def flush(self, rows: Rows) -> None:
        """Write ``rows()`` now if it changed since the last write; a cancel waits for it."""
        if self._changed.is_set():
            await finish_despite_cancel(self._write(rows), name="speech-queue-write")

    async def _write(self, rows: Rows) -> None:
        self._changed.clear()
        document = {"version": VERSION, "items": rows()}  # the state now, taken on the loop
        try:
            await asyncio.to_thread(_replace, self.path, document)
        except OSError as exc:
            self.write_failures += 1
            log.log(
                logging.WARNING if self.write_failures == 1 else logging.DEBUG,
                "%s: cannot save the speech queue (%s); it will not survive a restart",
                self.path,
                exc.strerror or exc,
            )
        else:
            self.writes += 1


def _replace(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` to ``path`` atomically (blocking: call it in a thread)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(document, file, ensure_ascii=False)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
