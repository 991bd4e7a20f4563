"""``heygen-bridge service install``: the systemd user unit for this install.

The unit runs this very install: the ``heygen-bridge`` script beside the running Python when
there is one (a venv or pipx install), else ``<python> -m bridge`` from the folder that holds
the package (a checkout).  A ``--config`` given to this command is passed on to the service.
It is ``Type=notify`` (ready when the control API listens), with a watchdog that is pinged
only while the daemon is healthy, ``ExecReload`` sending SIGHUP (the daemon reloads its
config, between ``RELOADING=1`` and ``READY=1``), and a restart on failure.  systemd 253 and
later also take ``Type=notify-reload``; ``notify`` works on the older ones too.

``--dry-run`` prints the unit and where it would go, and writes nothing.  Either way the
commands that enable it follow, and the ``loginctl enable-linger`` one that keeps it running
without a login session.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import bridge

UNIT_NAME = "heygen-bridge.service"

UNIT_TEMPLATE = """\
# systemd user service for heygen-bridge; `heygen-bridge service install` writes it to
# ~/.config/systemd/user/ with the ExecStart of your install.
#   systemctl --user daemon-reload && systemctl --user enable --now heygen-bridge
#   loginctl enable-linger "$USER"    # keep running without a login session
#   systemctl --user reload heygen-bridge   # reload the config (SIGHUP)
# Secrets go in ~/.config/heygen-bridge/env (mode 0600), e.g. LIVEAVATAR_API_KEY=...
# Logs: journalctl --user -u heygen-bridge -f
[Unit]
Description=heygen-bridge: interactive avatar as a virtual camera and microphone
# The virtual microphone needs the sound server first.
Wants=pipewire-pulse.service pulseaudio.service
After=pipewire-pulse.service pulseaudio.service network-online.target

[Service]
Type=notify
NotifyAccess=main
{working_directory}ExecStart={exec_start}
ExecReload=/bin/kill -HUP $MAINPID
EnvironmentFile=-%h/.config/heygen-bridge/env
# Pinged only while the event loop answers and the camera writer writes.
WatchdogSec=30
Restart=on-failure
RestartSec=5s
# Graceful stop (stop the remote session, release devices) is bounded inside the daemon.
TimeoutStopSec=20

[Install]
WantedBy=default.target
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run", action="store_true", help="print the unit and where it goes; write nothing"
    )


def unit_text(exec_start: Sequence[str], *, working_directory: Path | None = None) -> str:
    """The unit, running ``exec_start`` (quoted for systemd) in ``working_directory``."""
    where = f"WorkingDirectory={_quote(str(working_directory))}\n" if working_directory else ""
    return UNIT_TEMPLATE.format(
        working_directory=where, exec_start=" ".join(_quote(arg) for arg in exec_start)
    )


def exec_start(
    config: Path | None, *, python: str = sys.executable
) -> tuple[list[str], Path | None]:
    """The command that runs this install (and the folder ``-m bridge`` needs, if any)."""
    options = ["--config", str(config.expanduser().resolve())] if config is not None else []
    script = Path(python).parent / "heygen-bridge"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), *options, "run"], None
    package_root = Path(bridge.__file__).resolve().parents[1]
    return [python, "-m", "bridge", *options, "run"], package_root


def unit_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(base) / "systemd" / "user" / UNIT_NAME


def install(args: argparse.Namespace, say: Callable[..., None]) -> int:
    command, folder = exec_start(getattr(args, "config", None))
    text = unit_text(command, working_directory=folder)
    path = unit_path()
    if args.dry_run:
        say(f"# would write {path}")
        say(text.rstrip())
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.is_file()
        path.write_text(text, encoding="utf-8")
        say(f"{'replaced' if existed else 'wrote'} {path}")
    say("enable and start it:")
    say("  systemctl --user daemon-reload && systemctl --user enable --now heygen-bridge")
    say("keep it running when you are not logged in (and start it at boot):")
    say(f"  loginctl enable-linger {os.environ.get('USER', '$USER')}")
    say("follow its log: journalctl --user -u heygen-bridge -f")
    return 0


def _quote(arg: str) -> str:
    """One command-line word as systemd reads it: ``%`` and ``$`` doubled (no specifier or
    variable expansion), in double quotes when it has a space, quote or backslash."""
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if any(c in escaped for c in " \t\"'\\"):
        escaped = '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return escaped
