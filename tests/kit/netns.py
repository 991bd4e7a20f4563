"""A private network for a test's processes, so commands that name fixed ports (8765, 8080,
as the README prints them) run as printed, whatever else listens on this machine.

``unshare --user --map-root-user --net`` makes a user namespace (no privilege needed where the
kernel allows unprivileged user namespaces, as Debian and Ubuntu do) that owns a new network
namespace: its own loopback, plus a veth pair with a private address, because WebRTC
(LiveKit's client) ignores loopback interfaces when it gathers ICE candidates and would never
connect.  Files, processes and everything else stay shared.  :func:`isolated` starts the
first process in a fresh network; :func:`inside` runs more in the same one (``nsenter``).
Both run the command line through bash, which replaces itself with a lone simple command, so
the process the launcher signals is the program itself.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.kit.process import ROOT
from tests.kit.usershell import Ran, run_argv

SEARCH = "/usr/sbin:/sbin:/usr/bin:/bin"
HOW = (
    "needs unshare, nsenter (util-linux) and ip (iproute2), and unprivileged user namespaces "
    "(sysctl kernel.unprivileged_userns_clone=1; in a container: --security-opt seccomp=unconfined)"
)


def _tool(name: str) -> str:
    found = shutil.which(name, path=SEARCH)
    if found is None:
        pytest.skip(f"private network: no {name}: {HOW}")
    return found


def _setup() -> str:
    """Shell lines that bring up the namespace's loopback and one private address."""
    ip = _tool("ip")
    return (
        f"{ip} link set lo up && {ip} link add hb0 type veth peer name hb1 && "
        f"{ip} addr add 10.213.0.1/24 dev hb0 && {ip} link set hb0 up && {ip} link set hb1 up"
    )


def isolated(command: str) -> list[str]:
    """argv that runs ``command`` (as typed, through bash) in a fresh private network."""
    return [
        _tool("unshare"),
        "--user",
        "--map-root-user",
        "--net",
        "bash",
        "-c",
        f'{_setup()} && exec bash -c "$1"',
        "bash",
        command,
    ]


def inside(pid: int, command: str) -> list[str]:
    """argv that runs ``command`` (through bash) in the private network of process ``pid``."""
    return [
        _tool("nsenter"),
        f"--target={pid}",
        "--user",
        "--net",
        "--preserve-credentials",
        "bash",
        "-c",
        command,
    ]


async def run_inside(pid: int, command: str, *, env: Mapping[str, str], cwd: Path = ROOT) -> Ran:
    """:func:`inside`, run to its end in ``cwd``."""
    return await run_argv(inside(pid, command), env=env, command=command, cwd=cwd)


@functools.cache
def _probe() -> str | None:
    probe = subprocess.run(
        isolated("true"), capture_output=True, text=True, timeout=30, check=False
    )
    return None if probe.returncode == 0 else probe.stderr.strip()[:200]


def need_private_network() -> None:
    """Skip the test (saying how to get it) where private networks cannot be made."""
    failure = _probe()
    if failure is not None:
        pytest.skip(f"private network: {failure}: {HOW}")
