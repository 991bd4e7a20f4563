"""A real LiveKit server (``livekit-server --dev``) on loopback, on free ports.

Used by ``heygen-bridge simulate`` so a user can rehearse the whole media path, and by the
test suite's session fixture.  ``--dev`` accepts the API key ``devkey`` with secret ``secret``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import IO, Self

import aiohttp

DEV_KEY = "devkey"
DEV_SECRET = "secret"  # livekit-server --dev's fixed, public test secret
REPO_TOOLS = Path(__file__).resolve().parents[2] / ".tools" / "bin"


def find_binary() -> Path | None:
    """``$LIVEKIT_SERVER_BIN``, ``livekit-server`` on PATH, the repo's .tools, or Go's bin."""
    candidates = [os.environ.get("LIVEKIT_SERVER_BIN"), shutil.which("livekit-server")]
    candidates.append(str(REPO_TOOLS / "livekit-server"))
    gopath = os.environ.get("GOPATH") or str(Path.home() / "go")
    candidates.append(str(Path(gopath) / "bin" / "server"))
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LiveKitServer:
    """Start with ``await server.start()``; ``url``, ``api_key``, ``api_secret`` for clients."""

    def __init__(self, binary: Path, *, log_path: Path) -> None:
        self.binary = binary
        self.log_path = log_path
        self.port = free_port()
        self.rtc_tcp_port = free_port()
        self.udp_port = free_port(socket.SOCK_DGRAM)
        self.api_key = DEV_KEY
        self.api_secret = DEV_SECRET
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def config_body(self) -> str:
        return (
            f"port: {self.port}\n"
            "rtc:\n"
            f"  tcp_port: {self.rtc_tcp_port}\n"
            f"  udp_port: {self.udp_port}\n"
            "  use_external_ip: false\n"
            "logging:\n  level: info\n"
        )

    async def start(self, ready_within: float = 30.0) -> Self:
        self.spawn()
        try:
            async with asyncio.timeout(ready_within):
                await self._wait_ready()
        except TimeoutError:
            self.stop()
            raise RuntimeError(
                f"livekit-server did not answer on port {self.port} within {ready_within:g} s; "
                f"see {self.log_path}"
            ) from None
        return self

    def spawn(self) -> None:
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [
                str(self.binary),
                "--dev",
                "--bind",
                "127.0.0.1",
                "--node-ip",
                "127.0.0.1",
                "--config-body",
                self.config_body(),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    async def _wait_ready(self) -> None:
        async with aiohttp.ClientSession() as http:
            while True:
                if self._proc is not None and self._proc.poll() is not None:
                    raise RuntimeError(f"livekit-server exited early; see {self.log_path}")
                try:
                    async with http.get(f"http://127.0.0.1:{self.port}/") as resp:
                        if resp.status < 500:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(line[:240] for line in text.splitlines()[-lines:])
