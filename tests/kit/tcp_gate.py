"""A TCP forwarder in front of a server, which a test can shut as a network fault would.

The bridge is pointed at the gate (its ``heygen.base_url``/``liveavatar.base_url``) instead
of the simulator; the test's own admin calls go to the simulator directly.
:meth:`TcpGate.refuse` closes the listening socket, so new connects get ECONNREFUSED, and
aborts the connections open through it (the client's pooled keep-alive connections die as
they would); :meth:`TcpGate.accept` listens again on the same port.  The port is chosen
below the kernel's ephemeral range, so no outgoing connection's local port takes it while
the gate is shut.

What the simulator puts in its answers needs nothing from the gate: the LiveKit URLs it hands
out are the LiveKit server's; the URLs it builds from the request (LiveAvatar's paging) carry
the ``Host`` the client sent, i.e. the gate's; HeyGen's ``realtime_endpoint``, built from the
simulator's own URL, bypasses the gate, but the bridge does not use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

HOST = "127.0.0.1"
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PORT = 20000
CHUNK = 65536


def _port_below_ephemeral(rng: random.Random) -> int:
    """A loopback port free now and below the ephemeral range (where connects take theirs)."""
    try:
        ephemeral_low = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768  # Linux's default
    for _ in range(200):
        port = rng.randrange(LOWEST_PORT, ephemeral_low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port in {LOWEST_PORT}-{ephemeral_low}")


class TcpGate:
    """Forwards every connection to ``target`` (host, port) while open."""

    def __init__(self, target_host: str, target_port: int, port: int) -> None:
        self.target = (target_host, target_port)
        self.port = port
        self.connections = 0  # accepted through the gate, in all
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def is_open(self) -> bool:
        return self._server is not None

    async def accept(self) -> None:
        """Listen (again) on the gate's port."""
        if self._server is None:
            self._server = await asyncio.start_server(
                self._forward, HOST, self.port, reuse_address=True
            )

    async def refuse(self) -> None:
        """Stop listening (connects are refused) and cut the connections open through it."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._settle()
        if server is not None:
            await server.wait_closed()

    async def aclose(self) -> None:
        await self.refuse()

    async def _settle(self) -> None:
        """Until every connection's handler has ended (they end once their sockets are cut)."""
        handlers = [task for task in self._handlers if not task.done()]
        if handlers:
            await asyncio.wait(handlers)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One client connection: piped both ways to a new connection to the target."""
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            if self._server is None:  # accepted just before refuse(): cut like the rest
                return
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
            except OSError:
                return  # the target is down: the client sees its connection closed
            self._writers.add(upstream_writer)
            try:
                async with asyncio.TaskGroup() as pipes:
                    pipes.create_task(_pipe(reader, upstream_writer), name="tcp-gate-up")
                    pipes.create_task(_pipe(upstream_reader, writer), name="tcp-gate-down")
            finally:
                self._writers.discard(upstream_writer)
                upstream_writer.transport.abort()
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
            self._handlers.discard(task)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until either side ends, then end both (HTTP needs no half-closed connections)."""
    with contextlib.suppress(OSError):  # a reset or an abort is an end like any other
        while chunk := await source.read(CHUNK):
            sink.write(chunk)
            await sink.drain()
    sink.transport.abort()
    # The other direction ends when its own reader sees the abort.


@asynccontextmanager
async def tcp_gate(target_url: str, *, rng: random.Random | None = None) -> AsyncIterator[TcpGate]:
    """A gate in front of ``target_url`` (``http://host:port``), open; shut on exit."""
    parts = urlsplit(target_url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"a URL with a host and a port, not {target_url!r}")
    gate = TcpGate(parts.hostname, parts.port, _port_below_ephemeral(rng or random.Random()))
    await gate.accept()
    try:
        yield gate
    finally:
        await gate.aclose()
