"""``pactl``, the PulseAudio/PipeWire command-line client: run it, read what it prints, and
write the arguments that load our modules: the virtual mic's two (a null sink and a remap
source on its monitor), or a null sink alone (the virtual speaker the meeting plays into).

:class:`Pactl` runs ``pactl`` as an asyncio subprocess with ``LC_ALL=C`` (``pactl info``
labels are translated otherwise), under a timeout, and finds the server as every libpulse
client does (``PULSE_SERVER``, else the user's runtime directory).  No ``pactl``, no server or
no answer raise :class:`~bridge.errors.DeviceUnavailable` whose ``fix`` is the command to run.
The ``parse_*`` functions read its output (``pactl info``, ``list ... short``, ``subscribe``)
and are pure.  The same commands work on PulseAudio and on PipeWire's pipewire-pulse.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import unicodedata
from dataclasses import dataclass
from typing import Protocol

from bridge.errors import DeviceUnavailable

DEVICE = "microphone"  # DeviceUnavailable.device for everything the sound server does
PACTL_FIX = "sudo apt install pulseaudio-utils"
COMMAND_TIMEOUT_S = 5.0
RATE = 48000  # the null sink's rate: the avatar's voice, unresampled
MONO = ("channels=1", "channel_map=mono")
MAX_DESCRIPTION = 120

_EVENT = re.compile(r"Event '(?P<kind>[\w-]+)' on (?P<facility>[\w-]+) #(?P<index>\d+)")


def server_fix() -> str:
    """The command that starts the sound server this machine has."""
    if shutil.which("pipewire-pulse") is not None:
        return "systemctl --user start pipewire-pulse.service"
    if shutil.which("pulseaudio") is not None:
        return "pulseaudio --start"
    return "sudo apt install pulseaudio"


# --- running it ----------------------------------------------------------------------------


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
        """``pactl subscribe``, running: one event per line on its stdout (:func:`parse_event`)."""
        return await self._spawn("subscribe", stderr=asyncio.subprocess.DEVNULL)


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


# --- reading what it prints --------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class Event:
    """One line of ``pactl subscribe``: ``Event 'remove' on module #7``."""

    kind: str  # new | change | remove
    facility: str  # module, sink, sink-input, client, ...
    index: int


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


def parse_rows(text: str) -> list[list[str]]:
    """The rows of ``pactl list short ...`` that have at least two tab-separated columns."""
    return [parts for line in text.splitlines() if len(parts := line.split("\t")) >= 2]


def parse_names(text: str) -> list[str]:
    """Names from ``pactl list short sinks|sources`` (second column)."""
    return [row[1] for row in parse_rows(text)]


def parse_event(line: str) -> Event | None:
    """One line of ``pactl subscribe``; None for anything that is not an event."""
    found = _EVENT.search(line)
    if found is None:
        return None
    return Event(found["kind"], found["facility"], int(found["index"]))


# --- the arguments of our modules ------------------------------------------------------------


class VirtualDevices(Protocol):
    """The names of what :class:`~bridge.devices.pulse_modules.PulseDevices` makes: a null sink,
    and a remap source on its monitor unless ``source_name`` is None (``MicrophoneConfig`` is
    one; :class:`SinkOnly` the other)."""

    @property
    def sink_name(self) -> str: ...

    @property
    def sink_description(self) -> str: ...

    @property
    def source_name(self) -> str | None: ...

    @property
    def source_description(self) -> str: ...

    @property
    def make_default(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class SinkOnly:
    """A null sink alone: the virtual speaker, whose monitor the bridge itself records."""

    sink_name: str
    sink_description: str
    source_name: None = None
    source_description: str = ""
    make_default: bool = False


def clean_text(text: str, fallback: str) -> str:
    """A description that cannot break a module argument string.

    The two servers unescape differently (docs/microphone.md, "The devices"), so nothing is
    escaped: quotes become ’ and ”, backslashes and control characters go.
    """
    out = []
    for ch in text.replace("'", "’").replace('"', "”").replace("\\", ""):
        out.append(" " if unicodedata.category(ch).startswith("C") else ch)
    cleaned = " ".join("".join(out).split())[:MAX_DESCRIPTION].strip()
    return cleaned or fallback


def properties_arg(key: str, description: str) -> str:
    """``key="device.description='...'"`` — the quoting both servers parse (devices.md §0)."""
    return f"{key}=\"device.description='{description}'\""


def null_sink_args(cfg: VirtualDevices) -> list[str]:
    described = clean_text(cfg.sink_description, cfg.sink_name)
    sink = (f"sink_name={cfg.sink_name}", f"rate={RATE}")
    return ["module-null-sink", *sink, *MONO, properties_arg("sink_properties", described)]


def remap_source_args(cfg: VirtualDevices) -> list[str]:
    if cfg.source_name is None:
        raise ValueError(f"{cfg.sink_name} has no source to make")
    described = clean_text(cfg.source_description, cfg.source_name)
    source = (f"source_name={cfg.source_name}", f"master={cfg.sink_name}.monitor")
    return ["module-remap-source", *source, *MONO, properties_arg("source_properties", described)]


def our_modules(modules: list[Module], cfg: VirtualDevices) -> list[Module]:
    """Our modules by name, in unload order: remap sources first, then null sinks; newest first."""
    sources = [
        m
        for m in modules
        if m.name == "module-remap-source"
        and cfg.source_name is not None
        and m.arg("source_name") == cfg.source_name
    ]
    sinks = [
        m for m in modules if m.name == "module-null-sink" and m.arg("sink_name") == cfg.sink_name
    ]
    return sorted(sources, key=lambda m: -m.index) + sorted(sinks, key=lambda m: -m.index)
