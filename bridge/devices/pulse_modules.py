"""The virtual microphone's devices on PulseAudio or PipeWire (pipewire-pulse): make them,
keep them there, remove them.  The virtual speaker (listen mode) is the same with the null
sink alone (:class:`~bridge.devices.pactl.SinkOnly`): same sweep, watch and removal.

Two modules, loaded with ``pactl`` (:mod:`bridge.devices.pactl`)::

    module-null-sink    sink_name=<sink_name>   rate=48000 channels=1 channel_map=mono
                        sink_properties="device.description='<sink_description>'"
    module-remap-source source_name=<source_name> master=<sink_name>.monitor
                        channels=1 channel_map=mono
                        source_properties="device.description='<source_description>'"

The mic sink plays the avatar into the null sink; apps record the remap source (many apps
hide monitor sources from their microphone lists).  Descriptions pass
:func:`~bridge.devices.pactl.clean_text`
(quotes become ’ ”, no backslashes or control characters), the one form both servers parse.

:meth:`PulseDevices.maintain` is the daemon's task: it removes a crash's leftovers (found by
name), loads both modules (and, with ``make_default``, makes the mic the default source),
watches the server with one ``pactl subscribe`` and makes the devices again when the server
restarts or someone unloads them (backing off while they flap), and on exit restores the
previous default source and unloads the modules, source first.  ``on_change`` hears every
change as a :class:`DeviceState`; the mic sink (re)opens its stream only while ``ready``.
No ``pactl`` or no server: :class:`~bridge.errors.DeviceUnavailable` with the fix to run.

Why a subscription and not polling, why the quoting, why the null sink is suspended once when
our stream opens: docs/microphone.md, "The devices".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from bridge.backoff import Backoff, Retrying
from bridge.devices.pactl import (
    Event,
    Module,
    Pactl,
    ServerInfo,
    VirtualDevices,
    null_sink_args,
    our_modules,
    parse_event,
    parse_info,
    parse_modules,
    parse_names,
    parse_rows,
    remap_source_args,
)
from bridge.errors import DeviceUnavailable

log = logging.getLogger(__name__)

# Re-making the devices after a failure, or after they vanished sooner than STABLE_S after
# being made ("flapping": two daemons with the same names, a script unloading them).
RETRY = Backoff(first=0.5, cap=5.0)
STABLE_S = 10.0
# With no event for this long, the watcher checks that our modules still exist.
QUIET_CHECK_S = 10.0
SUBSCRIBE_TRIES, SUBSCRIBE_WAIT_S = 20, 0.1
DOWN_TIMEOUT_S = 5.0
# On removal, the time the mic sink gets to close its stream (its writes take 10 ms).
RELEASE_S = 0.05
REMOVED = "removed"  # DeviceState.reason when we removed the devices on purpose
SERVER_GONE = "the sound server went away (restarting?)"


# --- what callers see ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """What ``devices status`` reports."""

    server: ServerInfo
    sink_name: str
    source_name: str
    sink_modules: tuple[int, ...]
    source_modules: tuple[int, ...]
    sink_exists: bool
    source_exists: bool

    @property
    def complete(self) -> bool:
        return self.sink_exists and self.source_exists

    @property
    def mic_is_default(self) -> bool:
        return self.server.default_source == self.source_name


@dataclass(frozen=True, slots=True)
class DeviceState:
    """What ``on_change`` hears: the devices are usable (``ready``) or not, and why."""

    ready: bool
    generation: int  # grows each time the devices are made anew
    sink: str
    source: str
    reason: str | None = None
    fix: str | None = None
    server: str | None = None  # "PulseAudio" | "PipeWire"
    modules: tuple[int, ...] = field(default=())


# --- the devices ---------------------------------------------------------------------------------


class PulseDevices:
    """The null sink + remap source of one ``MicrophoneConfig`` (or the null sink alone of a
    :class:`~bridge.devices.pactl.SinkOnly`); ``label`` names them in logs."""

    def __init__(
        self,
        cfg: VirtualDevices,
        *,
        pactl: Pactl | None = None,
        on_change: Callable[[DeviceState], None] | None = None,
        label: str = "virtual mic",
    ) -> None:
        self.cfg = cfg
        self.label = label
        # What apps record: the remap source, or (a sink alone) the sink's own monitor.
        self.source_name = cfg.source_name or f"{cfg.sink_name}.monitor"
        self.pactl = pactl or Pactl()
        self.on_change = on_change
        self.generation = 0
        self.sink_module: int | None = None
        self.source_module: int | None = None
        self.previous_default: str | None = None
        self.made_default = False
        self.recreated = 0
        self.leftovers_removed = 0
        self.kicks = 0
        # Published at once, so a mic sink attached here waits for the devices to exist
        # instead of opening a stream into a sink that may be a crash's leftover.
        self._publish(
            DeviceState(False, 0, cfg.sink_name, self.source_name, reason="not set up yet")
        )

    # --- one-shot operations (also used by ``heygen-bridge devices``) -------------------------

    async def info(self) -> ServerInfo:
        return parse_info(await self.pactl.check("info"))

    async def modules(self) -> list[Module]:
        return parse_modules(await self.pactl.check("list", "modules", "short"))

    async def status(self) -> DeviceStatus:
        server = await self.info()
        modules = await self.modules()
        sinks = parse_names(await self.pactl.check("list", "short", "sinks"))
        sources = parse_names(await self.pactl.check("list", "short", "sources"))
        ours = our_modules(modules, self.cfg)
        return DeviceStatus(
            server=server,
            sink_name=self.cfg.sink_name,
            source_name=self.source_name,
            sink_modules=tuple(sorted(m.index for m in ours if m.name == "module-null-sink")),
            source_modules=tuple(sorted(m.index for m in ours if m.name == "module-remap-source")),
            sink_exists=self.cfg.sink_name in sinks,
            source_exists=self.source_name in sources,
        )

    async def sweep(self) -> list[int]:
        """Unload every module carrying our names (a crash's leftovers); returns their indexes."""
        removed = []
        for module in our_modules(await self.modules(), self.cfg):
            done = await self.pactl.run("unload-module", str(module.index))
            if done.ok:
                removed.append(module.index)
            else:  # already gone with its master (a remap source goes with its sink)
                log.debug("module #%d: %s", module.index, done.stderr)
        return removed

    async def up(self) -> DeviceState:
        """Sweep leftovers, load the sink and the mic, make the mic the default if configured."""
        server = await self.info()
        leftovers = await self.sweep()
        if leftovers:
            self.leftovers_removed += len(leftovers)
            log.warning(
                "removed leftover %s modules %s (%s)",
                self.label,
                ", ".join(f"#{i}" for i in leftovers),
                "what was left of ours"
                if self.generation
                else "an earlier run did not exit cleanly",
            )
        self.sink_module = self.source_module = None
        self.sink_module = await self.pactl.load_module(*null_sink_args(self.cfg))
        if self.cfg.source_name is not None:
            try:
                self.source_module = await self.pactl.load_module(*remap_source_args(self.cfg))
            except DeviceUnavailable:
                await self.pactl.run("unload-module", str(self.sink_module))
                self.sink_module = None
                raise
        if self.cfg.make_default and self.cfg.source_name is not None:
            if self.previous_default is None and server.default_source != self.cfg.source_name:
                self.previous_default = server.default_source
            await self.pactl.check("set-default-source", self.cfg.source_name)
            self.made_default = True
        self.generation += 1
        log.info(
            "%s ready on %s %s: sink %s (module #%d), source %s%s%s",
            self.label,
            server.kind,
            server.version,
            self.cfg.sink_name,
            self.sink_module,
            self.source_name,
            f" (module #{self.source_module})" if self.source_module is not None else "",
            ", default source" if self.made_default else "",
        )
        self._publish(
            DeviceState(
                True,
                self.generation,
                self.cfg.sink_name,
                self.source_name,
                server=server.kind,
                modules=self._loaded(),
            )
        )
        return self.state

    async def down(self) -> list[int]:
        """Restore the previous default source, then unload our modules (source first)."""
        if self.made_default and self.previous_default is not None:
            current = await self.info()
            if current.default_source == self.cfg.source_name:
                done = await self.pactl.run("set-default-source", self.previous_default)
                if not done.ok:
                    log.info(
                        "could not restore default source %s: %s",
                        self.previous_default,
                        done.stderr,
                    )
        self.made_default = False
        if self.on_change is not None and self.state.ready:
            # Let the mic sink drop its stream first: once the sink is gone, the server would
            # move that stream to the default sink — the user's speakers.
            self._publish(replace(self.state, ready=False, reason=REMOVED))
            await asyncio.sleep(RELEASE_S)
        removed = await self.sweep()
        self.sink_module = self.source_module = None
        self._publish(replace(self.state, ready=False, reason=REMOVED, modules=()))
        return removed

    # --- the daemon's task ---------------------------------------------------------------------

    async def maintain(self) -> None:
        """Make the devices, keep them there across server restarts, remove them on exit."""
        retrying = Retrying(RETRY)
        try:
            while True:
                try:
                    await self.up()
                except DeviceUnavailable as exc:
                    self._unavailable(exc.reason, exc.fix)
                    await asyncio.sleep(retrying.failed())
                    continue
                made = time.monotonic()
                reason = await self._watch()
                self.recreated += 1
                self._unavailable(reason, None)
                if time.monotonic() - made < STABLE_S:
                    await asyncio.sleep(retrying.failed())
                else:
                    retrying.succeeded()
        finally:
            await self._remove_on_exit()

    async def _remove_on_exit(self) -> None:
        if self.sink_module is None and self.source_module is None:
            return
        try:
            async with asyncio.timeout(DOWN_TIMEOUT_S):
                removed = await self.down()
            log.info("%s removed (modules %s)", self.label, ", ".join(f"#{i}" for i in removed))
        except DeviceUnavailable as exc:
            log.info("%s not removed: %s", self.label, exc.reason)
        except TimeoutError:
            log.warning("%s not removed: the sound server did not answer in time", self.label)

    async def _watch(self) -> str:
        """Until the devices are gone; returns why."""
        try:
            proc = await self.pactl.subscribe()
        except DeviceUnavailable as exc:
            return exc.reason
        assert proc.stdout is not None
        try:
            gone = await self._until_subscribed(proc.stdout)
            return gone if gone is not None else await self._follow(proc.stdout)
        finally:
            if proc.returncode is None:
                proc.terminate()
            await proc.wait()

    async def _until_subscribed(self, events: asyncio.StreamReader) -> str | None:
        """Wait for the subscription to be live, checking our modules; None if all is well.

        The subscription is live once it reports something: each pactl call here is a client
        connecting, which it reports.  The modules are checked only after that, so a removal
        is either seen here or reported as an event.
        """
        for _ in range(SUBSCRIBE_TRIES):
            if not await self._present():
                return self._modules_gone
            try:
                async with asyncio.timeout(SUBSCRIBE_WAIT_S):
                    first = await events.readline()
            except TimeoutError:
                continue
            if not first:
                return SERVER_GONE
            break
        if not await self._present():
            return self._modules_gone
        await self._kick_if_playing(None)  # a stream that came before the subscription
        return None

    async def _follow(self, events: asyncio.StreamReader) -> str:
        """Read the live subscription until our devices are gone; returns why."""
        while True:
            try:
                async with asyncio.timeout(QUIET_CHECK_S):
                    line = await events.readline()
            except TimeoutError:
                if not await self._present():
                    return self._modules_gone
                continue
            if not line:
                log.warning("the sound server went away; will make the %s again", self.label)
                return SERVER_GONE
            event = parse_event(line.decode(errors="replace"))
            if event is None:
                continue
            if event.kind == "new" and event.facility == "sink-input":
                await self._kick_if_playing(event.index)
            elif self._is_ours_removed(event):
                log.warning(
                    "%s module #%s was unloaded by someone else; making it again",
                    self.label,
                    event.index,
                )
                return f"module #{event.index} was unloaded"

    def _is_ours_removed(self, event: Event) -> bool:
        return (
            event.kind == "remove"
            and event.facility == "module"
            and event.index in (self.sink_module, self.source_module)
        )

    async def _kick_if_playing(self, sink_input: int | None) -> None:
        """Suspend and resume our sink when a stream starts playing into it.

        An idle null sink renders in 2 s blocks, and a stream that connects keeps the block
        already under way, so a recorder on the mic would wait up to 2 s; suspending and
        resuming restarts the sink's clock at the stream's latency (docs/microphone.md).
        ``sink_input`` None: whichever stream plays (one that opened before the subscription
        started).
        """
        try:
            sinks = parse_rows(await self.pactl.check("list", "short", "sinks"))
            ours = next((row[0] for row in sinks if row[1] == self.cfg.sink_name), None)
            inputs = parse_rows(await self.pactl.check("list", "short", "sink-inputs"))
            playing = [row[0] for row in inputs if row[1] == ours]
            # Only a stream into an otherwise idle sink needs it: with another stream already
            # playing, the sink runs at low latency and a suspend would cut that stream.
            if ours is None or len(playing) != 1:
                return
            if sink_input is not None and playing[0] != str(sink_input):
                return
            await self.pactl.check("suspend-sink", self.cfg.sink_name, "1")
            await self.pactl.check("suspend-sink", self.cfg.sink_name, "0")
        except DeviceUnavailable as exc:
            log.debug("could not restart the null sink's clock: %s", exc.reason)
            return
        self.kicks += 1
        log.debug("restarted %s's clock for stream #%s", self.cfg.sink_name, ", #".join(playing))

    @property
    def _modules_gone(self) -> str:
        return f"the {self.label} modules disappeared"

    def _loaded(self) -> tuple[int, ...]:
        return tuple(m for m in (self.sink_module, self.source_module) if m is not None)

    async def _present(self) -> bool:
        try:
            indexes = {m.index for m in await self.modules()}
        except DeviceUnavailable:
            return False
        loaded = self._loaded()
        return bool(loaded) and all(module in indexes for module in loaded)

    def _unavailable(self, reason: str, fix: str | None) -> None:
        self.sink_module = self.source_module = None
        if self.state.ready or self.state.reason != reason:
            log.warning("%s unavailable: %s%s", self.label, reason, f" (fix: {fix})" if fix else "")
        self._publish(
            DeviceState(
                False,
                self.generation,
                self.cfg.sink_name,
                self.source_name,
                reason=reason,
                fix=fix,
            )
        )

    def _publish(self, state: DeviceState) -> None:
        self.state = state
        if self.on_change is not None:
            self.on_change(state)

    def snapshot(self) -> dict[str, object]:
        return {
            "ready": self.state.ready,
            "server": self.state.server,
            "sink": self.cfg.sink_name,
            "source": self.source_name,
            "modules": list(self.state.modules),
            "generation": self.generation,
            "recreated": self.recreated,
            "leftovers_removed": self.leftovers_removed,
            "reason": self.state.reason,
            "fix": self.state.fix,
        }
