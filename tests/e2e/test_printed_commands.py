"""Every command the simulator's banner and the README print works as printed.

Each command line runs through bash exactly as shown, as its own process, with the installed
``heygen-bridge`` (tests/kit/usershell.py).  What a user's machine adds around it is set in
the environment only, never on the command line: a config file in ``$XDG_CONFIG_HOME`` that
turns the mic off (and the camera, unless the command's output is the camera's), and picks a
free control port for the banner's daemons; the README's fixed ports (8765, 8080) are kept
by running its commands in a private network (tests/kit/netns.py).
A daemon command (``run``, ``simulate``) is started by the kit's launcher, which hears its
READY, and must then end cleanly on SIGTERM (exit 0).
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest

from bridge.sim.livekit_server import find_binary
from tests.kit.eventually import eventually
from tests.kit.livekit import INSTALL
from tests.kit.netns import inside, isolated, need_private_network, run_inside
from tests.kit.process import ROOT, Child, launched
from tests.kit.simproc import StartSim
from tests.kit.usershell import Ran, run_line, shell_commands, user_env

NO_DEVICES = {"camera": {"enabled": False}, "microphone": {"enabled": False}}
LIVE_WITHIN_S = 30.0
PRINTED = re.compile(r"(?P<command>(?:[A-Z][A-Z0-9_]*=\S+ +)*heygen-bridge +\S.*)$")
PROVIDER = re.compile(r"--provider (\w+)")


def printed_commands(banner: str) -> list[str]:
    """The command lines in a banner: whatever ends a line from ``heygen-bridge`` on (with the
    variables set before it)."""
    return [m["command"].strip() for m in map(PRINTED.search, banner.splitlines()) if m]


def ok(ran: Ran) -> Ran:
    assert ran.code == 0 and "Traceback" not in ran.err, str(ran)
    return ran


def live(status: dict[str, Any]) -> bool:
    return bool(status["session"]["state"] == "live")


# --- the simulator's banner ------------------------------------------------------------------


async def test_every_command_the_simulator_prints_works_as_printed(
    start_sim: StartSim, tmp_path: Path
) -> None:
    sim = await start_sim()
    commands = printed_commands(sim.child.log_path.read_text())
    runs = [c for c in commands if " heygen-bridge run " in f" {c} "]
    listings = [c for c in commands if " heygen-bridge avatars " in f" {c} "]
    assert sorted(PROVIDER.findall(" ".join(runs))) == ["heygen", "liveavatar"], commands
    assert len(listings) == 2 and len(runs) + len(listings) == len(commands), (
        f"a command of a new kind is printed; teach this test to run it: {commands}"
    )
    env = user_env(tmp_path, config={**NO_DEVICES, "control": {"port": 0}})
    named = re.findall(r"--avatar (\S+)", " ".join(runs))
    for command in listings:
        ran = ok(await run_line(command, env=env, cwd=tmp_path))
        assert re.search(r"\d+ avatar\(s\) on ", ran.out), str(ran)
        if "liveavatar" in command:
            assert named and named[0] in ran.out, f"the banner's avatar is not listed:\n{ran}"
    for number, command in enumerate(runs):
        provider = PROVIDER.findall(command)[0]
        async with launched(
            f"the bridge ({provider})",
            ["bash", "-c", command],
            log_path=tmp_path / f"bridge-{number}.log",
            env=env,
        ) as child:
            status = await _wait_live(child, env)
            assert status["provider"].lower() == provider


async def _wait_live(child: Child, env: dict[str, str]) -> dict[str, Any]:
    """The daemon's status (through ``heygen-bridge status --json``) once its avatar is live."""

    async def read() -> dict[str, Any]:
        child.check_running()
        command = f"heygen-bridge status --json --url {child.url}"
        ran = ok(await run_line(command, env=env))
        status: dict[str, Any] = json.loads(ran.out)
        assert not status["session"].get("last_error"), status["session"]
        return status

    found: dict[str, Any] = await eventually(
        read, until=live, within=LIVE_WITHIN_S, what="the avatar live", every=0.2
    )
    return found


# --- the README ------------------------------------------------------------------------------

# What the README prints that cannot run here, and why; every other command runs below.
NOT_HERE = {
    "git clone <this repository> heygen-bridge && cd heygen-bridge": "fetches the project",
    "./scripts/run": "installs into .venv on first use, then execs `heygen-bridge run` (run here)",
    "./scripts/test": "the test suite itself",
    "export LIVEAVATAR_API_KEY=...": "a key of yours",
    "twitch token -u -s 'user:read:chat user:write:chat channel:read:redemptions'": (
        "Twitch's own CLI and a Twitch account"
    ),
    "TWITCH_TOKEN=the-user-access-token": "a line of the env file, with a token of yours",
    "TWITCH_CLIENT_ID=the-application-client-id": "a line of the env file",
}
NOT_HERE_SECTIONS = {
    "Virtual camera (v4l2loopback)": "root and a kernel module",
    "Sessions": "a real key (tests/component/test_cli.py runs these against the fakes)",
    "Run as a service (systemd, per user)": "a systemd user session",
}
CLIENT = re.compile(r"^(curl\s|heygen-bridge\s+(say|status|interrupt)\b)")
LOCAL = re.compile(r"^heygen-bridge\s+(config|doctor)\b")
SIMULATOR = re.compile(r"^heygen-bridge\s+simulate\b")
COMMENT = re.compile(r"\s+#\s.*$", re.MULTILINE)
DAEMON = re.compile(r"^(?:[A-Z][A-Z0-9_]*=\S+\s+)*heygen-bridge\s+run\b")


def readme() -> dict[str, list[str]]:
    """The README's commands by section, less the sections that cannot run here."""
    found = shell_commands((ROOT / "README.md").read_text())
    return {s: cs for s, cs in found.items() if s not in NOT_HERE_SECTIONS}


def kind(command: str) -> str:
    """Which test below runs ``command``."""
    # As bash reads it: continued lines joined, a trailing comment dropped.
    line = " ".join(COMMENT.sub("", command).replace("\\\n", " ").split())
    for name, shape in (
        ("client", CLIENT),
        ("local", LOCAL),
        ("simulator", SIMULATOR),
        ("daemon", DAEMON),
    ):
        if shape.match(line):
            return name
    return "not here" if line in NOT_HERE else "unknown"


def of_kind(wanted: str) -> list[str]:
    return [c for commands in readme().values() for c in commands if kind(c) == wanted]


def test_every_readme_command_runs_here_or_says_why_not() -> None:
    unknown = of_kind("unknown")
    assert not unknown, (
        f"README commands no test runs: run them below or list them in NOT_HERE: {unknown}"
    )
    assert of_kind("client") and of_kind("local") and of_kind("simulator"), readme()


async def test_readme_config_and_doctor_commands(tmp_path: Path) -> None:
    """They report on this machine: ``doctor`` may find a part missing (exit 1), never crash."""
    env = user_env(tmp_path, config={"microphone": {"enabled": False}})
    for command in of_kind("local"):
        ran = await run_line(command, env=env, cwd=tmp_path)
        if " doctor" in command:
            assert ran.code in (0, 1) and "Traceback" not in ran.err, str(ran)
            assert re.search(r"all required checks passed|required check\(s\) failed", ran.out)
        else:
            ok(ran)


async def test_readme_client_commands_against_the_daemon_scripts_run_starts(
    tmp_path: Path,
) -> None:
    """The demo avatar (no key), its control API on 8765 as printed, in a private network;
    the camera as on a machine without a virtual camera, the mic off."""
    need_private_network()
    env = user_env(tmp_path, config={"microphone": {"enabled": False}})
    argv = isolated("heygen-bridge run")
    async with launched("the daemon", argv, log_path=tmp_path / "daemon.log", env=env) as child:
        await _wait_live_inside(child, env)
        for command in of_kind("client"):
            ran = ok(await run_inside(child.pid, command, env=env, cwd=tmp_path))
            if command.startswith("curl "):
                await _check_curl_answer(child, env, ran)


async def _check_curl_answer(child: Child, env: dict[str, str], ran: Ran) -> None:
    """A JSON answer is no refusal, and text it queued gets spoken (other answers, e.g. an
    image saved with ``-o``, only had to exit 0)."""
    if not ran.out.lstrip().startswith("{"):
        return
    answer = json.loads(ran.out)
    assert "error" not in answer, str(ran)
    for item in answer.get("items", []):
        await eventually(
            functools.partial(_item_state, child, env, item["id"]),
            until=lambda state: state == "done",
            within=30,
            what=f"{item['id']} spoken",
            every=0.2,
        )


async def _item_state(child: Child, env: dict[str, str], item_id: str) -> str | None:
    speech = (await _status_inside(child, env))["speech"]
    every = [speech.get("current"), *speech.get("queue", []), *speech.get("recent", [])]
    return next((i["state"] for i in every if i and i["id"] == item_id), None)


async def test_readme_daemon_commands_get_their_avatar_live(tmp_path: Path) -> None:
    """Each ``run`` the README prints, in a private network; where its section starts the
    simulator (on its printed port, with its own LiveKit server), beside that simulator."""
    need_private_network()
    if find_binary() is None:
        pytest.skip(f"livekit-server not installed: {INSTALL}")
    env = user_env(tmp_path, config=NO_DEVICES)
    sections = {s: cs for s, cs in readme().items() if any(kind(c) == "daemon" for c in cs)}
    assert sections, "the README prints no `heygen-bridge run` to try"
    for number, (section, commands) in enumerate(sections.items()):
        simulators = [c for c in commands if kind(c) == "simulator"]
        assert len(simulators) <= 1, f"{section}: which simulator does each run use? {commands}"
        async with contextlib.AsyncExitStack() as stack:
            host = None
            if simulators:
                argv = isolated(simulators[0])
                log_path = tmp_path / f"simulate-{number}.log"
                sim = await stack.enter_async_context(
                    launched("the simulator", argv, log_path=log_path, env=env)
                )
                host = sim.pid
            for index, command in enumerate(c for c in commands if kind(c) == "daemon"):
                argv = inside(host, command) if host is not None else isolated(command)
                log_path = tmp_path / f"bridge-{number}-{index}.log"
                async with launched("the bridge", argv, log_path=log_path, env=env) as child:
                    await _wait_live_inside(child, env)


async def _status_inside(child: Child, env: dict[str, str]) -> dict[str, Any]:
    child.check_running()
    command = f"curl -sS {child.url}/v1/status"
    ran = ok(await run_inside(child.pid, command, env=env))
    status: dict[str, Any] = json.loads(ran.out)
    return status


async def _wait_live_inside(child: Child, env: dict[str, str]) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        status = await _status_inside(child, env)
        assert not status["session"].get("last_error"), status["session"]
        return status

    found: dict[str, Any] = await eventually(
        read, until=live, within=LIVE_WITHIN_S, what="the avatar live", every=0.2
    )
    return found
