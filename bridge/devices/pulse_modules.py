"""The virtual microphone's devices on PulseAudio or PipeWire (pipewire-pulse): one job, setup.

Two modules, loaded with ``pactl`` (the same commands on both servers)::

    module-null-sink    sink_name=<sink_name>   rate=48000 channels=1 channel_map=mono
                        sink_properties="device.description='<sink_description>'"
    module-remap-source source_name=<source_name> master=<sink_name>.monitor
                        channels=1 channel_map=mono
                        source_properties="device.description='<source_description>'"

The mic sink plays the avatar into the null sink; apps record the remap source.  The remap
exists because many apps hide monitor sources from their microphone lists (the remapped source
has ``device.class = "filter"``, not ``"monitor"``).

Descriptions are free text inside a twice-parsed argument string (module arguments, then a
property list), and the two servers unescape differently: PulseAudio 16 honours backslashes,
PipeWire's ``module_args_add_props`` keeps them.  So instead of escaping, :func:`clean_text`
turns ``'`` and ``"`` into ’ and ”, drops backslashes and control characters, and the value
is quoted the one way that works on both (``key="device.description='A B'"``, devices.md §0).

Lifecycle (:meth:`PulseDevices.keep`, the daemon's task):

* at start — before any app enumerates devices — modules left by an earlier crash are found
  by name in ``pactl list modules short`` and unloaded, then both modules are loaded and,
  with ``make_default``, the mic becomes the default source;
* while running, one long-lived ``pactl subscribe`` watches the server.  It was chosen over
  polling because it costs nothing while all is well and reports at once: its connection
  closes when the sound server dies or restarts (the process exits), and it prints
  ``Event 'remove' on module #N`` when someone unloads our modules.  The modules are checked
  once the subscription is seen to be live (so a removal in between is not missed), and
  again after every 10 s without events (for events a server might not send).  Then the
  devices are made again; while the server is away, ``pactl info`` is retried with a backoff
  of 0.5 s up to 5 s.  The same subscription reports our playback stream opening
  (``Event 'new' on sink-input``): the null sink is then suspended and resumed once, because
  an idle null sink keeps its 2 s render block and would make recorders wait up to 2 s;
* on exit the previous default source is restored (if the mic is still the default) and the
  modules are unloaded, source first.

``on_change`` hears every change as a :class:`DeviceState`; the mic sink uses it to (re)open
its stream only when the null sink exists.  ``pactl`` runs as an asyncio subprocess with
``LC_ALL=C`` (``pactl info`` labels are translated otherwise) and finds the server as every
libpulse client does (``PULSE_SERVER``, else the user's runtime directory).  No ``pactl`` or
no server raises :class:`DeviceUnavailable` whose ``fix`` is the command to run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from bridge.config import MicrophoneConfig
from bridge.errors import DeviceUnavailable

log = logging.getLogger(__name__)

DEVICE = "microphone"
RATE = 48000
PACTL_FIX = "sudo apt install pulseaudio-utils"
COMMAND_TIMEOUT_S = 5.0
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 5.0
# Devices that vanish sooner than this after being made count as "flapping" (two daemons
# with the same names, a script unloading them): re-creation then backs off.
STABLE_S = 10.0
# With no event for this long, the watcher checks that our modules still exist.
QUIET_CHECK_S = 10.0
SUBSCRIBE_TRIES, SUBSCRIBE_WAIT_S = 20, 0.1
DOWN_TIMEOUT_S = 5.0
# On removal, the time the mic sink gets to close its stream (its writes take 10 ms).
RELEASE_S = 0.05
REMOVED = "removed"  # DeviceState.reason when we removed the devices on purpose
MAX_DESCRIPTION = 120

_EVENT = re.compile(r"Event '(?P<kind>[\w-]+)' on (?P<facility>[\w-]+) #(?P<index>\d+)")


def server_fix() -> str:
    """The command that starts the sound server this machine has."""
    if shutil.which("pipewire-pulse") is not None:
        return "systemctl --user start pipewire-pulse.service"
    if shutil.which("pulseaudio") is not None:
        return "pulseaudio --start"
    return "sudo apt install pulseaudio"


def clean_text(text: str, fallback: str) -> str:
    """A description that cannot break a module argument string (see the module docstring)."""
    out = []
    for ch in text.replace("'", "’").replace('"', "”").replace("\\", ""):
        out.append(" " if unicodedata.category(ch).startswith("C") else ch)
    cleaned = " ".join("".join(out).split())[:MAX_DESCRIPTION].strip()
    return cleaned or fallback


def properties_arg(key: str, description: str) -> str:
    """``key="device.description='...'"`` — the quoting both servers parse (devices.md §0)."""
    return f"{key}=\"device.description='{description}'\""


def null_sink_args(cfg: MicrophoneConfig) -> list[str]:
    return [
        "module-null-sink",
        f"sink_name={cfg.sink_name}",
        f"rate={RATE}",
        "channels=1",
        "channel_map=mono",
        properties_arg("sink_properties", clean_text(cfg.sink_description, cfg.sink_name)),
    ]


def remap_source_args(cfg: MicrophoneConfig) -> list[str]:
    return [
        "module-remap-source",
        f"source_name={cfg.source_name}",
        f"master={cfg.sink_name}.monitor",
        "channels=1",
        "channel_map=mono",
        properties_arg("source_properties", clean_text(cfg.source_description, cfg.source_name)),
    ]


# --- pactl ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _no_server(stderr: str) -> bool:
    return "Connection failure" in stderr or "pa_context_connect() failed" in stderr


class Pactl:
    """Runs ``pactl`` as an asyncio subprocess.

    ``run`` returns what happened, raising :class:`DeviceUnavailable` only when there is no
    ``pactl``, no server, or no answer; ``check`` also raises when the command failed.
    """

    def __init__(self, binary: str = "pactl", *, timeout: float = COMMAND_TIMEOUT_S) -> None:
        self.binary = binary
        self.timeout = timeout

    def env(self) -> dict[str, str]:
        return {**os.environ, "LC_ALL": "C"}

    def path(self) -> str:
        found = shutil.which(self.binary)
        if found is None:
            raise DeviceUnavailable(DEVICE, f"{self.binary} not found", PACTL_FIX)
        return found

    async def _spawn(self, *args: str, stderr: int) -> asyncio.subprocess.Process:
        try:
            return await asyncio.create_subprocess_exec(
                self.path(),
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                env=self.env(),
            )
        except OSError as exc:
            raise DeviceUnavailable(DEVICE, f"cannot run {self.binary}: {exc}", PACTL_FIX) from exc

    async def run(self, *args: str) -> Completed:
        proc = await self._spawn(*args, stderr=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(self.timeout):
                out, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise DeviceUnavailable(
                DEVICE,
                f"the sound server did not answer 'pactl {' '.join(args[:2])}' "
                f"within {self.timeout:g} s",
                server_fix(),
            ) from None
        done = Completed(
            (self.binary, *args),
            proc.returncode if proc.returncode is not None else -1,
            out.decode(errors="replace"),
            err.decode(errors="replace").strip(),
        )
        if not done.ok and _no_server(done.stderr):
            raise DeviceUnavailable(
                DEVICE,
                f"no PulseAudio/PipeWire server answers ({_last_line(done.stderr)})",
                server_fix(),
            )
        return done

    async def check(self, *args: str) -> str:
        done = await self.run(*args)
        if not done.ok:
            raise DeviceUnavailable(
                DEVICE,
                f"'pactl {' '.join(args)}' failed: {_last_line(done.stderr) or 'no reason given'}",
                f"pactl {' '.join(args)}",
            )
        return done.stdout

    async def load_module(self, *args: str) -> int:
        """``pactl load-module ...``: the new module's index."""
        out = (await self.check("load-module", *args)).strip()
        if not out.isdigit():
            raise DeviceUnavailable(
                DEVICE,
                f"'pactl load-module {args[0]}' printed {out[:80]!r}, not a module index",
                f"pactl load-module {' '.join(args)}",
            )
        return int(out)

    async def subscribe(self) -> asyncio.subprocess.Process:
        return await self._spawn("subscribe", stderr=asyncio.subprocess.DEVNULL)


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


# --- what the server holds -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerInfo:
    server_name: str  # "pulseaudio", or "PulseAudio (on PipeWire 1.0.5)"
    version: str
    default_sink: str | None
    default_source: str | None

    @property
    def kind(self) -> str:
        return "PipeWire" if "pipewire" in self.server_name.lower() else "PulseAudio"


@dataclass(frozen=True, slots=True)
class Module:
    index: int
    name: str
    args: str

    def arg(self, key: str) -> str | None:
        """The value of ``key=`` in the module's arguments (quotes removed), or None."""
        match = re.search(rf"(?:^|\s){re.escape(key)}=(\"[^\"]*\"|'[^']*'|\S+)", self.args)
        return match.group(1).strip("\"'") if match else None


def parse_info(text: str) -> ServerInfo:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()

    def named(key: str) -> str | None:
        value = fields.get(key)
        return value if value and value not in ("n/a", "(null)") else None

    return ServerInfo(
        server_name=fields.get("Server Name", "unknown"),
        version=fields.get("Server Version", "unknown"),
        default_sink=named("Default Sink"),
        default_source=named("Default Source"),
    )


def parse_modules(text: str) -> list[Module]:
    modules = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0].strip().isdigit():
            modules.append(Module(int(parts[0]), parts[1], parts[2] if len(parts) > 2 else ""))
    return modules


def parse_names(text: str) -> list[str]:
    """Names from ``pactl list short sinks|sources`` (second column)."""
    return [parts[1] for line in text.splitlines() if len(parts := line.split("\t")) >= 2]


def our_modules(modules: list[Module], cfg: MicrophoneConfig) -> list[Module]:
    """Our modules by name, in unload order: remap sources first, then null sinks; newest first."""
    sources = [
        m
        for m in modules
        if m.name == "module-remap-source" and m.arg("source_name") == cfg.source_name
    ]
    sinks = [
        m for m in modules if m.name == "module-null-sink" and m.arg("sink_name") == cfg.sink_name
    ]
    return sorted(sources, key=lambda m: -m.index) + sorted(sinks, key=lambda m: -m.index)


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
    """The null sink + remap source of one :class:`MicrophoneConfig`."""

    def __init__(
        self,
        cfg: MicrophoneConfig,
        *,
        pactl: Pactl | None = None,
        on_change: Callable[[DeviceState], None] | None = None,
    ) -> None:
        self.cfg = cfg
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
            DeviceState(False, 0, cfg.sink_name, cfg.source_name, reason="not set up yet")
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
            source_name=self.cfg.source_name,
            sink_modules=tuple(sorted(m.index for m in ours if m.name == "module-null-sink")),
            source_modules=tuple(sorted(m.index for m in ours if m.name == "module-remap-source")),
            sink_exists=self.cfg.sink_name in sinks,
            source_exists=self.cfg.source_name in sources,
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
                "removed leftover virtual-mic modules %s (%s)",
                ", ".join(f"#{i}" for i in leftovers),
                "what was left of ours"
                if self.generation
                else "an earlier run did not exit cleanly",
            )
        self.sink_module = self.source_module = None
        self.sink_module = await self.pactl.load_module(*null_sink_args(self.cfg))
        try:
            self.source_module = await self.pactl.load_module(*remap_source_args(self.cfg))
        except DeviceUnavailable:
            await self.pactl.run("unload-module", str(self.sink_module))
            self.sink_module = None
            raise
        if self.cfg.make_default:
            if self.previous_default is None and server.default_source != self.cfg.source_name:
                self.previous_default = server.default_source
            await self.pactl.check("set-default-source", self.cfg.source_name)
            self.made_default = True
        self.generation += 1
        log.info(
            "virtual mic ready on %s %s: sink %s (module #%d), mic %s (module #%d)%s",
            server.kind,
            server.version,
            self.cfg.sink_name,
            self.sink_module,
            self.cfg.source_name,
            self.source_module,
            ", default source" if self.cfg.make_default else "",
        )
        self._publish(
            DeviceState(
                True,
                self.generation,
                self.cfg.sink_name,
                self.cfg.source_name,
                server=server.kind,
                modules=(self.sink_module, self.source_module),
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

    async def keep(self) -> None:
        """Make the devices, keep them there across server restarts, remove them on exit."""
        delay = RETRY_FIRST_S
        try:
            while True:
                try:
                    await self.up()
                except DeviceUnavailable as exc:
                    self._unavailable(exc.reason, exc.fix)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_S)
                    continue
                made = time.monotonic()
                reason = await self._watch()
                self.recreated += 1
                self._unavailable(reason, None)
                if time.monotonic() - made < STABLE_S:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_S)
                else:
                    delay = RETRY_FIRST_S
        finally:
            await self._remove_on_exit()

    async def _remove_on_exit(self) -> None:
        if self.sink_module is None and self.source_module is None:
            return
        try:
            async with asyncio.timeout(DOWN_TIMEOUT_S):
                removed = await self.down()
            log.info("virtual mic removed (modules %s)", ", ".join(f"#{i}" for i in removed))
        except DeviceUnavailable as exc:
            log.info("virtual mic not removed: %s", exc.reason)
        except TimeoutError:
            log.warning("virtual mic not removed: the sound server did not answer in time")

    async def _watch(self) -> str:
        """Until the devices are gone; returns why."""
        try:
            proc = await self.pactl.subscribe()
        except DeviceUnavailable as exc:
            return exc.reason
        assert proc.stdout is not None
        try:
            # The subscription is live once it reports something: each pactl call below is a
            # client connecting, which it reports.  Check the modules only after that, so a
            # removal is either seen here or reported as an event.
            for _ in range(SUBSCRIBE_TRIES):
                if not await self._present():
                    return "the virtual mic modules disappeared"
                try:
                    async with asyncio.timeout(SUBSCRIBE_WAIT_S):
                        first = await proc.stdout.readline()
                except TimeoutError:
                    continue
                if not first:
                    return "the sound server went away (restarting?)"
                break
            if not await self._present():
                return "the virtual mic modules disappeared"
            await self._kick_if_playing(None)  # a stream that came before the subscription
            while True:
                try:
                    async with asyncio.timeout(QUIET_CHECK_S):
                        line = await proc.stdout.readline()
                except TimeoutError:
                    if not await self._present():
                        return "the virtual mic modules disappeared"
                    continue
                if not line:
                    log.warning("the sound server went away; will make the virtual mic again")
                    return "the sound server went away (restarting?)"
                event = _EVENT.search(line.decode(errors="replace"))
                if event is None:
                    continue
                if event["kind"] == "new" and event["facility"] == "sink-input":
                    await self._kick_if_playing(int(event["index"]))
                elif (
                    event["kind"] == "remove"
                    and event["facility"] == "module"
                    and int(event["index"]) in (self.sink_module, self.source_module)
                ):
                    log.warning(
                        "virtual mic module #%s was unloaded by someone else; making it again",
                        event["index"],
                    )
                    return f"module #{event['index']} was unloaded"
        finally:
            if proc.returncode is None:
                proc.terminate()
            await proc.wait()

    async def _kick_if_playing(self, sink_input: int | None) -> None:
        """Suspend and resume our sink when a stream starts playing into it.

        An idle null sink renders in 2 s blocks, and a stream that connects keeps the block
        already under way: for up to 2 s after our playback stream opens, a recorder on the
        mic gets nothing (measured: 1.2–2.0 s).  Suspending and resuming restarts the sink's
        clock at the stream's latency (then 20–35 ms).  ``sink_input`` None: whichever stream
        plays (one that opened before the subscription started).
        """
        try:
            sinks = await self.pactl.check("list", "short", "sinks")
            ours = next(
                (
                    p[0]
                    for line in sinks.splitlines()
                    if len(p := line.split("\t")) > 1 and p[1] == self.cfg.sink_name
                ),
                None,
            )
            inputs = await self.pactl.check("list", "short", "sink-inputs")
            playing = [
                p[0]
                for line in inputs.splitlines()
                if len(p := line.split("\t")) > 1 and p[1] == ours
            ]
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

    async def _present(self) -> bool:
        try:
            indexes = {m.index for m in await self.modules()}
        except DeviceUnavailable:
            return False
        return self.sink_module in indexes and self.source_module in indexes

    def _unavailable(self, reason: str, fix: str | None) -> None:
        self.sink_module = self.source_module = None
        if self.state.ready or self.state.reason != reason:
            log.warning("virtual mic unavailable: %s%s", reason, f" (fix: {fix})" if fix else "")
        self._publish(
            DeviceState(
                False,
                self.generation,
                self.cfg.sink_name,
                self.cfg.source_name,
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
            "source": self.cfg.source_name,
            "modules": list(self.state.modules),
            "generation": self.generation,
            "recreated": self.recreated,
            "leftovers_removed": self.leftovers_removed,
            "reason": self.state.reason,
            "fix": self.state.fix,
        }
