"""``heygen-bridge devices up|down|status``: the virtual mic's devices by hand.

The daemon makes and removes the devices itself; these commands are for setting them up
before apps start (so the mic exists at login, e.g. from a systemd unit), for cleaning up
after a crash, and for checking what exists.  ``up`` leaves the devices loaded; ``down``
removes every module carrying the configured names (stop the daemon first, or it makes them
again).  Exit codes: 0 done / devices complete, 1 a device problem or devices missing.
"""

from __future__ import annotations

import argparse
import json

from bridge.config import Settings
from bridge.devices.pulse_modules import PulseDevices
from bridge.errors import DeviceUnavailable

EXIT_OK, EXIT_FAIL = 0, 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=["up", "down", "status"],
        help="up: make the virtual mic (removing leftovers); down: remove it; status: show it",
    )
    parser.add_argument("--json", action="store_true", help="status: print JSON")


def _say(text: str) -> None:
    print(text, flush=True)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    devices = PulseDevices(settings.config.microphone)
    try:
        if args.action == "up":
            return await _up(devices)
        if args.action == "down":
            removed = await devices.down()
            _say(
                f"removed modules {', '.join(f'#{i}' for i in removed)}"
                if removed
                else "nothing to remove"
            )
            return EXIT_OK
        return await _status(devices, as_json=bool(args.json))
    except DeviceUnavailable as exc:
        _say(f"{exc.device} unavailable: {exc.reason}")
        _say(f"fix: {exc.fix}")
        return EXIT_FAIL


async def _up(devices: PulseDevices) -> int:
    cfg = devices.cfg
    await devices.up()
    _say(f"sink {cfg.sink_name}: module #{devices.sink_module}")
    _say(f"mic  {cfg.source_name}: module #{devices.source_module}")
    if devices.leftovers_removed:
        _say(f"(removed {devices.leftovers_removed} leftover module(s) first)")
    if cfg.make_default:
        was = devices.previous_default or "none"
        _say(f"default source: {cfg.source_name} (was {was})")
    return EXIT_OK


async def _status(devices: PulseDevices, *, as_json: bool) -> int:
    st = await devices.status()
    if as_json:
        _say(
            json.dumps(
                {
                    "server": st.server.kind,
                    "server_name": st.server.server_name,
                    "server_version": st.server.version,
                    "sink": {
                        "name": st.sink_name,
                        "exists": st.sink_exists,
                        "modules": list(st.sink_modules),
                    },
                    "mic": {
                        "name": st.source_name,
                        "exists": st.source_exists,
                        "modules": list(st.source_modules),
                    },
                    "default_source": st.server.default_source,
                }
            )
        )
        return EXIT_OK if st.complete else EXIT_FAIL

    def line(label: str, name: str, exists: bool, modules: tuple[int, ...]) -> str:
        where = ", ".join(f"#{i}" for i in modules) or "none"
        state = "present" if exists else "missing"
        extra = f"  (duplicates: {len(modules)} modules)" if len(modules) > 1 else ""
        return f"{label:<7}{name:<28}{state:<9}module {where}{extra}"

    _say(f"server: {st.server.kind} {st.server.version} ({st.server.server_name})")
    _say(line("sink:", st.sink_name, st.sink_exists, st.sink_modules))
    _say(line("mic:", st.source_name, st.source_exists, st.source_modules))
    default = st.server.default_source or "none"
    _say(f"default source: {default}{'  (the avatar mic)' if st.mic_is_default else ''}")
    if not st.complete:
        _say("fix: heygen-bridge devices up")
    return EXIT_OK if st.complete else EXIT_FAIL
