"""What every sink is: the :class:`Sink` protocol, its writer thread, its status counters.

A sink takes media from the event loop and writes it out at the device's deadline:

* ``start()`` launches its writer thread (:class:`ThreadedSink` holds it);
* ``put(item)`` runs on the event loop and never blocks for long or raises for a device
  problem: it hands the item over (latest-wins slot, jitter buffer) and counts it;
* ``await aclose()`` stops the writer and joins it off the event loop, then lets go of the
  device; afterwards ``stats.state`` is ``"stopped"``;
* ``stats`` is a dataclass of counters written by the writer thread (plain attribute writes:
  each is atomic under the GIL), whose ``snapshot()`` is the sink's part of ``/v1/status``,
  derived by :func:`snapshot_of`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

log = logging.getLogger(__name__)

T_contra = TypeVar("T_contra", contravariant=True)

JOIN_TIMEOUT_S = 5.0
# Field metadata for counters that are not part of the snapshot as they are (e.g. a window
# of samples the snapshot summarises).
NOT_IN_SNAPSHOT = {"snapshot": False}


class SinkStats(Protocol):
    """A sink's counters; ``snapshot()`` is its part of ``/v1/status``."""

    def snapshot(self) -> dict[str, Any]: ...


class Sink(Protocol[T_contra]):
    """Media out at a deadline; the contract is the module docstring's."""

    @property
    def stats(self) -> SinkStats: ...

    def start(self) -> None: ...

    def put(self, item: T_contra, /) -> None: ...

    async def aclose(self) -> None: ...


class ThreadedSink:
    """The writer-thread half every sink shares: a named daemon thread running ``_run``.

    ``start()`` launches it; ``_run`` loops until :attr:`_stopping` is set, and ``wake`` (given
    at construction) interrupts whatever it blocks on.  ``close()`` stops and joins it (at
    most ``JOIN_TIMEOUT_S``; it blocks, so the event loop calls ``aclose()``), then calls
    ``_release`` to let go of the device.  The thread's top is the writer's error boundary: an
    exception that ends ``_run`` is logged at ERROR with its traceback and kept in
    :attr:`writer_error`, instead of going unlogged to ``threading.excepthook``.
    """

    def __init__(self, thread_name: str, *, wake: Callable[[], None] | None = None) -> None:
        self.writer_error: Exception | None = None
        self._stopping = threading.Event()
        self._thread_name = thread_name
        self._wake_writer = wake
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name=self._thread_name, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the writer, wait for it, let go of the device; blocks up to a few seconds."""
        self._stopping.set()
        if self._wake_writer is not None:
            self._wake_writer()
        if self._thread is not None:
            self._thread.join(timeout=JOIN_TIMEOUT_S)
            self._thread = None
        self._release()

    async def aclose(self) -> None:
        """:meth:`close`, off the event loop."""
        await asyncio.to_thread(self.close)

    def _run(self) -> None:
        """The writer loop, in the thread; returns once ``_stopping`` is set."""
        raise NotImplementedError

    def _release(self) -> None:
        """After the writer stopped: let go of the device, mark the stats stopped."""

    def _main(self) -> None:
        try:
            self._run()
        # The boundary of a thread: nobody above it can catch, so it is logged here, once.
        except Exception as exc:
            self.writer_error = exc
            log.exception("%s stopped by %s: %s", self._thread_name, type(exc).__name__, exc)


def snapshot_of(stats: DataclassInstance) -> dict[str, Any]:
    """Every field of a stats dataclass by name, in declaration order, for ``/v1/status``.

    Floats are rounded for reading: fields named ``*_ms`` to 0.1 ms, the rest (seconds) to
    0.01 s; None stays None.  Fields whose metadata is :data:`NOT_IN_SNAPSHOT` are left out.
    """
    out: dict[str, Any] = {}
    for spec in dataclasses.fields(stats):
        if not spec.metadata.get("snapshot", True):
            continue
        value = getattr(stats, spec.name)
        if isinstance(value, float):
            value = round(value, 1 if spec.name.endswith("_ms") else 2)
        out[spec.name] = value
    return out
