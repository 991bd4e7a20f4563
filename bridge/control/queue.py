"""The speech queue: every accepted request is spoken, or reported dropped or failed with why.

What a request becomes (:meth:`SpeechQueue.submit`): its text is normalised and checked
(:mod:`bridge.control.text`: 400 for what cannot be spoken), then cut into items of at most
the provider's per-request characters, at sentence ends, then spaces, then hard at the
limit.  The items of one request share its ``request_id`` and stay together, in order.  A
request is refused whole or taken whole: :class:`Busy` (429) when its items do not fit under
the queue's bound (``retry_after``: about when enough items will have been spoken) or its
source is over its rate (:mod:`bridge.control.ratelimit`).

Order: first in, first out, one item at a time: the next is sent when the avatar has said the
previous one (its ``speak_ended``), so the bridge, not the provider, decides what comes next.
``priority: "now"`` puts the request's items before everything queued and interrupts the item
being spoken, or an answer the avatar gives on its own (listen mode: it answers what it heard;
its start and end, of no item's task, are followed as ``answering``).  An interrupted item is
dropped (detail ``"interrupted"``) and so are the queued parts of its request: the rest of a
sentence cut off is not said later out of context.
Items are sent only while the avatar is live; an item that waited over :data:`MAX_WAIT_S`
is dropped (``"expired"``) instead of being said long after it was asked for.

Each item's life (:mod:`bridge.control.item`) is on the event bus, one event per change:
``speech.<state>`` with ``id``, ``request_id`` and ``item`` (its JSON); ``speech.speaking``
also has ``latency_s``, accepted to speaking.  Final states are counted in :attr:`finished`.

The item being sent is registered before the provider is called: events that overtake the
provider's answer (HeyGen's ``avatar_start_talking`` comes over the room while the REST call
that returns the task id is still on its way) are held for it, and count as soon as the
answer names their task.

Persistence (``store_path``, :mod:`bridge.control.persist`): the queued items are kept on
disk and restored by the constructor (ids continue after the highest restored).  The item
being sent or spoken when the daemon stopped is *not* kept: the avatar may have said all or
part of it, and no provider tells which, so replaying it could say it twice; it is reported
dropped instead.  Without persistence the queued items are dropped ("the daemon stopped")
when :meth:`SpeechQueue.run` ends.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from bridge.config import RateLimitConfig
from bridge.control.item import (
    MODES,
    PRIORITIES,
    ItemState,
    Priority,
    SpeechItem,
    announce,
    number_of,
)
from bridge.control.persist import QueueStore
from bridge.control.ratelimit import RateLimiter
from bridge.control.text import choice, normalise, split
from bridge.errors import BadInput, Busy, NotFound, NotLive, RemoteError
from bridge.eventbus import EventBus
from bridge.providers.base import SpeakMode
from bridge.providers.events import AvatarEvent
from bridge.synthetic.voice import estimate_duration

__all__ = ["ItemState", "Priority", "Speaker", "SpeechItem", "SpeechQueue"]

log = logging.getLogger(__name__)

# How long a spoken item may take beyond its estimate before we stop waiting for its end.
END_GRACE_S = 15.0
# Events held for the item being sent, until the provider names its task.
MAX_EARLY_EVENTS = 64
# An item that waited longer than this is dropped ("expired") rather than said out of time.
MAX_WAIT_S = 3600.0
# Items accepted lately, whatever their state, for status and get().
MAX_RECENT = 20


class Speaker(Protocol):
    """What the queue needs of the session manager."""

    live: asyncio.Event

    async def speak(self, text: str, mode: SpeakMode) -> str: ...

    async def interrupt(self) -> None: ...


class SpeechQueue:
    def __init__(
        self,
        *,
        bus: EventBus,
        max_item: int,
        max_text: int = 2000,
        limit: int = 100,
        rate: RateLimitConfig | None = None,
        store_path: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``max_item``: the most characters per item (the provider's ``max_text``);
        ``max_text``: per request (``control.max_text``); ``limit``: the most items queued;
        ``rate``: per-source limits (None: none); ``store_path``: where the queue is kept
        across restarts (None: nowhere); ``clock``: monotonic seconds (tests move it)."""
        self._bus = bus
        self.max_item, self.max_text, self.limit = max_item, max_text, limit
        self._rate = RateLimiter.from_config(rate, clock=clock)
        self._clock = clock
        self._queued: deque[SpeechItem] = deque()
        self._current: SpeechItem | None = None
        self._recent: deque[SpeechItem] = deque(maxlen=MAX_RECENT)
        self._wakeup = asyncio.Event()  # something was queued
        self._attention = asyncio.Event()  # an item ended, or the current one is to stop
        self._preempt: SpeechItem | None = None  # the current item, to be interrupted
        self._by_task: dict[str, SpeechItem] = {}
        self.answering = False  # the avatar speaks on its own (an answer to what it heard)
        self._sending: SpeechItem | None = None  # sent, its task id not known yet
        self._early: deque[AvatarEvent] = deque(maxlen=MAX_EARLY_EVENTS)
        self._manager: Speaker | None = None
        self.finished: Counter[str] = Counter()
        self._item_ids = itertools.count(1)
        self._request_ids = itertools.count(1)
        # Where the queue is kept across restarts (its writes and failures are counted).
        self.store = QueueStore(store_path) if store_path is not None else None
        if self.store is not None:
            self._restore(self.store.load(SpeechItem.restore), store_path)

    def set_limits(self, *, max_text: int, limit: int, rate: RateLimitConfig | None) -> None:
        """New limits (a config reload), for requests from now on; what is queued stays, even
        past a lower ``limit`` (new requests wait until it fits).  The rate buckets start
        afresh; the count of refusals carries over."""
        self.max_text, self.limit = max_text, limit
        refused = self._rate.refused
        self._rate = RateLimiter.from_config(rate, clock=self._clock)
        self._rate.refused = refused

    # --- taking requests ---------------------------------------------------------------------

    def submit(
        self, text: object, mode: object = "repeat", priority: object = "normal", *, source: str
    ) -> list[SpeechItem]:
        """Queue a request from ``source``; its items, in order.  :class:`BadInput` for a
        text, mode or priority that cannot be taken, :class:`Busy` when it does not fit or
        its source is over its rate; either way nothing changes."""
        clean = normalise(text, max_text=self.max_text)
        speak_mode = choice(mode, "mode", MODES)
        urgency = choice(priority, "priority", PRIORITIES)
        pieces = split(clean, self.max_item)
        if len(pieces) > self.limit:
            raise BadInput(
                "text",
                f"makes {len(pieces)} items of at most {self.max_item} characters; "
                f"the queue holds {self.limit}",
            )
        short = len(pieces) - (self.limit - len(self._queued))
        if short > 0:
            wait = self._wait_for_room(short)
            raise Busy(
                f"queue: is full ({len(self._queued)} items waiting, at most {self.limit}); "
                f"try again in {wait} s",
                retry_after=wait,
            )
        self._rate.take(source)
        request_id = f"r{next(self._request_ids)}"
        items = [
            SpeechItem(
                id=f"s{next(self._item_ids)}",
                request_id=request_id,
                part=part,
                parts=len(pieces),
                text=piece,
                mode=speak_mode,
                priority=urgency,
                source=source,
            )
            for part, piece in enumerate(pieces, 1)
        ]
        if urgency == "now":
            self._queued.extendleft(reversed(items))
            self._stop_current_soon()
        else:
            self._queued.extend(items)
        for item in items:
            self._recent.append(item)
            announce(self._bus, item)
        self._changed()
        return items

    def _wait_for_room(self, short: int) -> int:
        """Whole seconds (at least 1) until ``short`` more items fit, by the speaking-rate
        estimate: a place frees whenever an item leaves the queue to be sent, so the rest of
        the item being spoken and the ``short - 1`` next ones."""
        ahead = sum(
            estimate_duration(item.text) for item in itertools.islice(self._queued, short - 1)
        )
        current = self._current
        if current is not None:
            spent = 0.0 if current.sent_at is None else self._clock() - current.sent_at
            ahead += max(0.0, estimate_duration(current.text) - spent)
        return max(1, math.ceil(ahead))

    def _stop_current_soon(self) -> None:
        """Have the runner interrupt the item being sent or spoken (a "now" request)."""
        if self._current is not None and not self._current.final:
            self._preempt = self._current
            self._attention.set()

    # --- what a client may do with what is queued ----------------------------------------------

    async def interrupt(self) -> SpeechItem | None:
        """Stop the avatar's current speech; the item it was saying (dropped,
        ``"interrupted"``, with the queued parts of its request), or None.  :class:`NotLive`
        when there is no session (or the queue does not run)."""
        manager = self._manager
        if manager is None:
            raise NotLive("the speech queue is not running")
        item = self._current
        await manager.interrupt()
        if item is not None:
            self._interrupted(item)
        return item

    def clear(self, reason: str = "cleared") -> list[SpeechItem]:
        """Drop every queued item (not the one being spoken); the items dropped."""
        dropped = list(self._queued)
        self._queued.clear()
        for item in dropped:
            self._finish(item, "dropped", reason)
        if dropped:
            self._changed()
        return dropped

    def remove(self, item_id: str) -> SpeechItem:
        """Drop one queued item (``"removed"``); :class:`NotFound` if none by that id waits."""
        item = next((i for i in self._queued if i.id == item_id), None)
        if item is None:
            raise NotFound("queue item", item_id)
        self._queued.remove(item)
        self._finish(item, "dropped", "removed")
        self._changed()
        return item

    def get(self, item_id: str) -> SpeechItem | None:
        """The item by that id: being spoken, queued, or among the recent ones."""
        every = itertools.chain(self.items(), reversed(self._recent))
        return next((i for i in every if i.id == item_id), None)

    def items(self) -> list[SpeechItem]:
        """The item being sent or spoken (if any), then the queued ones: speaking order."""
        return [*([self._current] if self._current is not None else []), *self._queued]

    @property
    def depth(self) -> int:
        """Items queued (not counting the one being sent or spoken)."""
        return len(self._queued)

    @property
    def speaking(self) -> bool:
        """Whether an item is being sent or spoken."""
        return self._current is not None

    def snapshot(self) -> dict[str, Any]:
        """For status: ``pending`` (queued), ``current``, ``queue`` (the queued items, in
        order) and ``recent`` (the last items accepted, whatever their state, oldest first)."""
        return {
            "pending": len(self._queued),
            "current": self._current.as_json() if self._current is not None else None,
            "queue": [item.as_json() for item in self._queued],
            "recent": [item.as_json() for item in self._recent],
        }

    # --- sending -------------------------------------------------------------------------------

    async def run(self, manager: Speaker) -> None:
        """Send the items one by one while the avatar is live, and keep the queue on disk
        (when it has a store); until cancelled."""
        self._manager = manager
        try:
            async with asyncio.TaskGroup() as group:
                if self.store is not None:
                    group.create_task(
                        self.store.keep_written(self._rows), name="speech-queue-store"
                    )
                await self._send_forever(manager)
        finally:
            self._manager = None
            if self.store is None:
                self.clear("the daemon stopped")
            else:
                await self.store.flush(self._rows)

    async def _send_forever(self, manager: Speaker) -> None:
        while True:
            item = await self._next(manager)
            self._current = item
            try:
                await self._speak(manager, item)
            except asyncio.CancelledError:
                self._finish(item, "dropped", "the daemon stopped")
                raise
            finally:
                self._current = None
                if self._preempt is item:
                    self._preempt = None

    async def _next(self, manager: Speaker) -> SpeechItem:
        """The next item to send, once the avatar is live (expired ones dropped on the way)."""
        while True:
            if not self._queued:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await manager.live.wait()
            if not self._queued:
                continue
            item = self._queued.popleft()
            self._changed()
            if time.time() - item.created > MAX_WAIT_S:
                self._finish(item, "dropped", "expired")
                continue
            return item

    async def _speak(self, manager: Speaker, item: SpeechItem) -> None:
        item.sent_at = self._clock()
        self._set(item, "sending")
        self._sending = item
        self._early.clear()
        if item.priority == "now" and self.answering:
            await self._hush(manager)  # its end (speak_ended) clears answering
        try:
            task_id = await manager.speak(item.text, item.mode)
        except NotLive as exc:
            self._not_sent(manager, item, exc)
            return
        except RemoteError as exc:
            self._finish(item, "failed", str(exc))
            return
        finally:
            self._sending = None
        item.task_id = task_id
        if item.final:  # ended while it was being sent
            if item.detail == "interrupted":  # before the provider had it: stop it now
                await self._hush(manager)
            return
        self._by_task[task_id] = item
        for event in [e for e in self._early if e.task_id == task_id]:
            self._apply(event, item)
        self._early.clear()
        await self._await_end(manager, item)

    def _not_sent(self, manager: Speaker, item: SpeechItem, exc: NotLive) -> None:
        """The avatar went away before ``item`` was sent: it goes back to the head of the
        queue and waits for the next session (failed, should the manager still say live:
        waiting again would only spin)."""
        if item.final:
            return
        if manager.live.is_set():
            self._finish(item, "failed", str(exc))
            return
        item.sent_at = None
        self._queued.appendleft(item)
        self._set(item, "queued")
        self._changed()

    async def _await_end(self, manager: Speaker, item: SpeechItem) -> None:
        """Until the avatar has said ``item`` (or it is interrupted, or ends otherwise)."""
        try:
            async with asyncio.timeout(estimate_duration(item.text) + END_GRACE_S):
                while not item.final:
                    if self._preempt is item:
                        await self._hush(manager)
                        self._interrupted(item)
                        return
                    self._attention.clear()
                    await self._attention.wait()
        except TimeoutError:
            self._finish(item, "done", "the avatar never confirmed the end of speech")

    async def _hush(self, manager: Speaker) -> None:
        try:
            await manager.interrupt()
        except (NotLive, RemoteError) as exc:
            log.warning("could not interrupt the avatar: %s", exc)

    # --- the avatar's events ---------------------------------------------------------------------

    def on_event(self, event: AvatarEvent) -> None:
        """An avatar event: the start or end of the item it names, or of an answer."""
        item = self._by_task.get(event.task_id) if event.task_id is not None else None
        if item is not None:
            self._apply(event, item)
        elif event.task_id is not None and self._sending is not None:
            self._early.append(event)  # perhaps its task, before the provider said so
        elif event.kind in ("speak_started", "speak_ended"):
            self.answering = event.kind == "speak_started"

    def _apply(self, event: AvatarEvent, item: SpeechItem) -> None:
        if event.kind == "speak_started" and item.state == "sending":
            self._set(item, "speaking")
        elif event.kind == "speak_ended":
            if event.interrupted:
                self._interrupted(item)
            else:
                self._finish(item, "done")

    def drop_unfinished(self, reason: str) -> None:
        """The session ended: what was being spoken is lost (queued items wait for the next)."""
        self.answering = False
        if self._current is not None:
            self._finish(self._current, "dropped", reason)

    # --- state changes -------------------------------------------------------------------------

    def _interrupted(self, item: SpeechItem) -> None:
        """``item`` was cut off: it is dropped, and so are the queued parts of its request."""
        if item.final:
            return
        self._finish(item, "dropped", "interrupted")
        rest = [i for i in self._queued if i.request_id == item.request_id]
        for part in rest:
            self._queued.remove(part)
            self._finish(part, "dropped", "interrupted")
        if rest:
            self._changed()

    def _finish(self, item: SpeechItem, state: ItemState, detail: str | None = None) -> None:
        if item.final:
            return
        if item.task_id is not None:
            self._by_task.pop(item.task_id, None)
        self._set(item, state, detail)
        self.finished[state] += 1
        item.ended.set()
        self._attention.set()

    def _set(self, item: SpeechItem, state: ItemState, detail: str | None = None) -> None:
        """Change ``item``'s state: one event on the bus, one line in the log."""
        item.state, item.detail = state, detail
        announce(self._bus, item)

    # --- on disk -------------------------------------------------------------------------------

    def _changed(self) -> None:
        """The queued items changed: wake the runner, and have the store write them."""
        self._wakeup.set()
        if self.store is not None:
            self.store.changed()

    def _rows(self) -> list[dict[str, Any]]:
        return [item.as_json() for item in self._queued]

    def _restore(self, items: list[SpeechItem], path: Path | None) -> None:
        """Queue the items an earlier run left (dropping those that expired meanwhile or no
        longer fit the provider's limit); ids continue after the highest one."""
        for item in items:
            self._recent.append(item)
            if len(item.text) > self.max_item:
                self._finish(item, "dropped", f"longer than {self.max_item} characters")
            elif time.time() - item.created > MAX_WAIT_S:
                self._finish(item, "dropped", "expired")
            else:
                self._queued.append(item)
        if items:
            self._item_ids = itertools.count(1 + max(number_of(i.id) for i in items))
            self._request_ids = itertools.count(1 + max(number_of(i.request_id) for i in items))
            log.info("restored %d queued speech items from %s", len(self._queued), path)
        if len(self._queued) != len(items):
            self._changed()
