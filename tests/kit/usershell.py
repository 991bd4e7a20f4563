"""Commands as a user types them: one line through ``bash -c``, with the installed
``heygen-bridge`` on PATH, in an environment that holds no API key or token and whose config
home is the test's own (so no config of the machine's user is read).

Also reads the commands a Markdown file prints (:func:`shell_commands`), for the test that
runs the README's examples as printed.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.kit.process import ROOT

BIN = Path(sys.executable).parent  # the virtualenv's bin: ``heygen-bridge`` is installed there
RUN_WITHIN_S = 60.0


def user_env(
    folder: Path, *, config: Mapping[str, Any] | None = None, **extra: str
) -> dict[str, str]:
    """This process's environment without ``*_API_KEY`` and HEYGEN_BRIDGE_TOKEN, the
    virtualenv's bin first on PATH, ``XDG_CONFIG_HOME`` under ``folder`` (holding
    ``heygen-bridge/config.yaml`` = ``config`` when given), then ``extra``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.endswith("_API_KEY") and name != "HEYGEN_BRIDGE_TOKEN"
    }
    home = folder / "xdg"
    (home / "heygen-bridge").mkdir(parents=True, exist_ok=True)
    if config is not None:
        (home / "heygen-bridge" / "config.yaml").write_text(yaml.safe_dump(dict(config)))
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env["XDG_CONFIG_HOME"] = str(home)
    return {**env, **extra}


@dataclass
class Ran:
    """One finished command: its exit code and what it printed."""

    command: str
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"$ {self.command}\n(exit {self.code})\n{self.out}{self.err}"


async def run_argv(
    argv: Sequence[str], *, env: Mapping[str, str], command: str = "", cwd: Path = ROOT
) -> Ran:
    """Run ``argv`` to its end (stdin closed, in ``cwd``), with its output."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=dict(env),
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(RUN_WITHIN_S):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{command or argv} did not end within {RUN_WITHIN_S:g} s") from None
    assert proc.returncode is not None
    return Ran(command or " ".join(argv), proc.returncode, out.decode(), err.decode())


async def run_line(command: str, *, env: Mapping[str, str], cwd: Path = ROOT) -> Ran:
    """``command`` exactly as a user types it, through bash, in ``cwd``."""
    return await run_argv(["bash", "-c", command], env=env, command=command, cwd=cwd)


FENCE = re.compile(r"^```(\w*)\s*$")


def shell_commands(markdown: str) -> dict[str, list[str]]:
    """Every command of the ``sh`` code blocks, by the ``## `` section they are in: one
    entry per command as bash reads it (a line ending in a backslash continues on the next;
    blank and comment-only lines are left out)."""
    found: dict[str, list[str]] = {}
    section, fence, pending = "", None, ""
    for line in markdown.splitlines():
        mark = FENCE.match(line)
        if mark is not None:
            fence = mark[1] if fence is None else None
            continue
        if fence is None:
            if line.startswith("## "):
                section = line[3:].strip()
            continue
        if fence != "sh":
            continue
        pending += line if not pending else "\n" + line
        if line.endswith("\\"):
            continue
        if pending.strip() and not pending.lstrip().startswith("#"):
            found.setdefault(section, []).append(pending.strip())
        pending = ""
    return found
