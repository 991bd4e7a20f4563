"""The one way tests and benchmarks start a program of ours as its own process.

The child picks its own port (``--port 0``, ``control.port: 0``) and says where it serves the
way it tells systemd it is ready (bridge/sdnotify.py ``ready``): a ``READY=1`` datagram with
``X_URL=<url>`` to ``$NOTIFY_SOCKET``, which :func:`launch` binds in a fresh temporary folder.
So no port is chosen here and handed over (another process could take it in between) and no
human-readable banner is parsed.  A child that exits before it is ready, or is not ready in
time, fails the launch with the end of its log; :func:`launched` stops it with SIGTERM, as
systemd and Ctrl-C do, and fails unless it then exits cleanly (code 0).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout: ``-m bridge`` and ``-m tests...``
READY_WITHIN_S = 30.0
STOP_WITHIN_S = 30.0
TAIL_LINES = 40


@dataclass
class Child:
    """A running child: where it serves, what it logged, and how to end it."""

    name: str
    proc: asyncio.subprocess.Process
    log_path: Path
    ready: Mapping[str, str] = field(default_factory=dict)  # its READY message's fields
    killed: bool = False

    @property
    def url(self) -> str:
        """``X_URL`` of the READY message: the base URL the child serves at."""
        if "X_URL" not in self.ready:
            raise AssertionError(f"{self.name} said READY without X_URL: {dict(self.ready)}")
        return self.ready["X_URL"]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def check_running(self) -> None:
        """Fail, with the end of its log, if the child has exited."""
        if self.proc.returncode is not None:
            raise AssertionError(
                f"{self.name} exited with code {self.proc.returncode}:\n{self.log_tail()}"
            )

    async def kill(self) -> None:
        """SIGKILL: no clean-up runs, as when the machine or the process dies."""
        self.killed = True
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()

    async def stop(self, within: float = STOP_WITHIN_S) -> int:
        """SIGTERM, then its exit code.  One that has not ended ``within`` s is killed, and
        that fails."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(within):
                return await self.proc.wait()
        except TimeoutError:
            await self.kill()
            raise AssertionError(
                f"{self.name} did not stop within {within:g} s of SIGTERM:\n{self.log_tail()}"
            ) from None


async def launch(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    ready_within: float = READY_WITHIN_S,
) -> Child:
    """Start ``argv`` (stdout and stderr to ``log_path``) and return once it sent READY=1."""
    with (
        tempfile.TemporaryDirectory(prefix="hb-notify-") as folder,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify,
    ):
        address = str(Path(folder) / "notify")
        notify.bind(address)
        notify.setblocking(False)
        with log_path.open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                env={**(os.environ if env is None else env), "NOTIFY_SOCKET": address},
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        child = Child(name, proc, log_path)
        try:
            child.ready = await _ready_message(child, notify, ready_within)
        except BaseException:
            await child.kill()
            raise
    # The socket is gone now: later notifications (STOPPING=1) fail quietly in the child.
    return child


@asynccontextmanager
async def launched(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    ready_within: float = READY_WITHIN_S,
) -> AsyncIterator[Child]:
    """:func:`launch`, then on exit a graceful stop that must end with code 0 (unless the
    test killed the child).  An error inside the block gets the child's log tail as a note."""
    child = await launch(name, argv, log_path=log_path, env=env, ready_within=ready_within)
    try:
        yield child
    except BaseException as exc:
        code = await child.stop()
        exc.add_note(f"{name} (exit code {code}), end of its log:\n{child.log_tail()}")
        raise
    code = await child.stop()
    assert code == 0 or child.killed, f"{name} exited with code {code}:\n{child.log_tail()}"


async def _ready_message(child: Child, notify: socket.socket, within: float) -> dict[str, str]:
    """The first datagram with READY=1, as fields; fails if the child exits or is slow."""
    ready = asyncio.create_task(_read_until_ready(notify), name=f"{child.name}-ready")
    exited = asyncio.create_task(child.proc.wait(), name=f"{child.name}-exit")
    try:
        async with asyncio.timeout(within):
            await asyncio.wait({ready, exited}, return_when=asyncio.FIRST_COMPLETED)
    except TimeoutError:
        raise AssertionError(
            f"{child.name} was not ready within {within:g} s:\n{child.log_tail()}"
        ) from None
    finally:
        for task in (ready, exited):
            task.cancel()
        await asyncio.wait({ready, exited})
    failure = None if ready.cancelled() else ready.exception()
    if not ready.cancelled() and failure is None:
        return ready.result()
    child.check_running()
    raise AssertionError(f"{child.name}: no READY message") from failure


async def _read_until_ready(notify: socket.socket) -> dict[str, str]:
    loop = asyncio.get_running_loop()
    while True:
        datagram = await loop.sock_recv(notify, 4096)
        fields = dict(
            line.partition("=")[::2]
            for line in datagram.decode(errors="replace").splitlines()
            if "=" in line
        )
        if fields.get("READY") == "1":
            return fields
