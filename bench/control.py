"""Control API benchmark: ``POST /v1/speak`` and WebSocket event fan-out, each beside a bare
aiohttp baseline measured in the same run (about 50 s with the defaults).

    python bench/control.py [--seconds 3] [--rounds 2] [--clients 16] [--speak-rate 200]
                            [--events 1200] [--rate 400] [--ws-clients 100]
                            [--log-level INFO] [--no-persist] [--only speak|fanout]

Every server runs in its own process (bench/control_servers.py, started through
tests/kit/process.py); the clients are this process: the same client code for ours and the
baseline.  Ours is the daemon's control surface with the avatar stubbed to say each item at
once; bare is a plain aiohttp handler.  Rounds alternate ours and bare.

(1) speak, closed loop: ``--clients`` connections post ``{"text": ...}`` back to back for
    ``--seconds`` after a 1 s warm-up: throughput, and latency at saturation.
    speak, open loop: requests at ``--speak-rate``/s whatever the answers do (latency counted
    from when each was due): the latency a button or a bot sees under a steady load.
    Printed: answers/s, latency p50/p99, server CPU per request (its /proc stat), non-202
    answers (must be 0), CPU the rest of the machine used meanwhile, steal.
(2) fan-out: ``--ws-clients`` WebSocket clients get ``--events`` events (a speech item each,
    ~0.5 kB) at ``--rate``/s.  Ours: ``bus.emit`` into EventHub, with one of the clients never
    reading (a 4 kB receive buffer); bare: the same clients minus the slow one, each event
    sent with ``await ws.send_str`` to every socket in turn (with the slow one connected, that
    loop would stall for good: the floor, not an alternative).  Printed: delivery latency
    emit → client p50/p99/max (CLOCK_MONOTONIC is system-wide), events lost or out of order
    at the fast clients (must be 0), the slow client's fate, the server's cost per event
    (ours: ``emit()``, beside ``emit()`` of a bus with no subscriber; bare: its send loop), and
    server CPU per event.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for bridge and tests.kit

from control_servers import KINDS, STORE_ENV, serve

from tests.kit.eventually import eventually
from tests.kit.process import Child, launched

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
WARMUP_S = 1.0


# --- measuring -----------------------------------------------------------------------------------


def cpu_s(pid: int) -> float:
    """utime + stime of a process, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


def machine_busy_s() -> tuple[float, float]:
    """(seconds every core spent not idle, seconds stolen by the host), since boot."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) * TICK_S, ticks[7] * TICK_S


@dataclass
class Window:
    """CPU of the server, this process and the machine over a measured window."""

    server: Child
    seconds: float = 0.0
    server_cpu: float = 0.0
    others_cpu: float = 0.0
    steal: float = 0.0
    _start: tuple[float, float, float, float, float] = (0, 0, 0, 0, 0)

    def open(self) -> None:
        self._start = (
            time.perf_counter(),
            cpu_s(self.server.pid),
            cpu_s(os.getpid()),
            *machine_busy_s(),
        )

    def close(self) -> None:
        t0, server0, me0, busy0, steal0 = self._start
        busy1, steal1 = machine_busy_s()
        self.seconds = time.perf_counter() - t0
        self.server_cpu = cpu_s(self.server.pid) - server0
        me = cpu_s(os.getpid()) - me0
        self.others_cpu = max(0.0, (busy1 - busy0) - self.server_cpu - me)
        self.steal = steal1 - steal0


@dataclass
class SpeakRound:
    latencies_s: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    windows: list[Window] = field(default_factory=list)


@asynccontextmanager
async def measured(server: Child, result: SpeakRound) -> AsyncIterator[float]:
    """A session of requests: yields when the measured window starts (loop time, after the
    warm-up); the window ends when the block does."""
    loop = asyncio.get_running_loop()
    window = Window(server)
    start = loop.time() + WARMUP_S
    opener = loop.call_at(start, window.open)
    try:
        yield start
    finally:
        opener.cancel()
    window.close()
    result.windows.append(window)


async def post(session: aiohttp.ClientSession, url: str, text: str) -> int:
    async with session.post(url, data=json.dumps({"text": text})) as answer:
        await answer.read()
        return answer.status


async def closed_loop(server: Child, result: SpeakRound, clients: int, seconds: float) -> None:
    """``clients`` connections, each posting its next request when the last is answered."""
    url, loop = f"{server.url}/v1/speak", asyncio.get_running_loop()

    async def client(session: aiohttp.ClientSession, who: int, start: float) -> None:
        for n in itertools.count():
            sent = loop.time()
            if sent >= start + seconds:
                return
            status = await post(session, url, f"Hello from button {who}, press {n}.")
            if sent >= start:
                result.latencies_s.append(loop.time() - sent)
                result.statuses[status] += 1

    connector = aiohttp.TCPConnector(limit=clients)
    async with (
        measured(server, result) as start,
        aiohttp.ClientSession(connector=connector) as session,
        asyncio.TaskGroup() as tasks,
    ):
        for who in range(clients):
            tasks.create_task(client(session, who, start))


async def open_loop(server: Child, result: SpeakRound, rate: float, seconds: float) -> None:
    """Requests at ``rate`` a second, each sent when due whatever the others do; latency from
    when it was due (so a server that falls behind is not flattered by sending later)."""
    url, loop = f"{server.url}/v1/speak", asyncio.get_running_loop()

    async def request(session: aiohttp.ClientSession, due: float, start: float) -> None:
        await asyncio.sleep(max(0.0, due - loop.time()))
        status = await post(session, url, f"Chat message number {due:.3f}.")
        if due >= start:
            result.latencies_s.append(loop.time() - due)
            result.statuses[status] += 1

    connector = aiohttp.TCPConnector(limit=256)
    async with (
        measured(server, result) as start,
        aiohttp.ClientSession(connector=connector) as session,
        asyncio.TaskGroup() as tasks,
    ):
        first = start - WARMUP_S
        for n in range(int(rate * (WARMUP_S + seconds))):
            tasks.create_task(request(session, first + n / rate, start))


@dataclass
class FanOut:
    latencies_s: list[float] = field(default_factory=list)
    lost: int = 0
    disorder: int = 0
    cost_ns: list[int] = field(default_factory=list)  # the server's, per event
    alone_ns: list[int] = field(default_factory=list)  # ours: emit() of a bus alone
    dropped_at: list[int | None] = field(default_factory=list)  # ours: per round
    hub: dict[str, Any] = field(default_factory=dict)  # ours: EventHub's counters at the end
    windows: list[Window] = field(default_factory=list)


async def never_reading(url: str) -> socket.socket:
    """A WebSocket client that, once the handshake is done, never reads again, with a 4 kB
    receive buffer: what the server holds for it is all in its own buffers."""
    loop = asyncio.get_running_loop()
    address = urlsplit(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, (address.hostname, address.port))
    key = base64.b64encode(os.urandom(16)).decode()
    handshake = (
        f"GET /v1/ws HTTP/1.1\r\nHost: {address.netloc}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, handshake.encode())
    answer = b""
    while not answer.endswith(b"\r\n\r\n"):  # byte by byte: not one byte of a frame
        answer += await loop.sock_recv(sock, 1)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return sock


async def fan_out(
    server: Child, result: FanOut, *, clients: int, slow: bool, events: int, rate: float
) -> None:
    """One round: connect, have the server send ``events`` at ``rate``, read, disconnect."""

    async def read_all(ws: aiohttp.ClientWebSocketResponse) -> None:
        expected = 0
        async for message in ws:
            event = json.loads(message.data)
            result.latencies_s.append(time.monotonic() - event["sent"])
            result.disorder += event["seq"] != expected
            expected = event["seq"] + 1
            if expected == events:
                break
        result.lost += events - expected

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        fast = [await session.ws_connect(f"{server.url}/v1/ws") for _ in range(clients - slow)]
        stuck = await never_reading(server.url) if slow else None

        async def connected() -> bool:
            async with session.get(f"{server.url}/bench/clients") as answer:
                return bool(await answer.json() == clients)

        await eventually(connected, within=30, what=f"{clients} clients connected")
        window = Window(server)
        window.open()
        async with asyncio.TaskGroup() as tasks:
            for ws in fast:
                tasks.create_task(read_all(ws))
            async with session.post(
                f"{server.url}/bench/emit", json={"events": events, "rate": rate}
            ) as answer:
                stats = await answer.json()
        window.close()
        result.windows.append(window)
        result.cost_ns += stats["cost_ns"]
        result.alone_ns += stats.get("alone_ns", [])
        result.dropped_at.append(stats.get("dropped_at"))
        result.hub = stats.get("hub", {})
        for ws in fast:
            await ws.close()
        if stuck is not None:
            stuck.close()


# --- reporting -----------------------------------------------------------------------------------


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def machine() -> str:
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return f"{os.cpu_count()} cores, load avg {load} (1/5/15 min)"


def print_speak(title: str, ours: SpeakRound, bare: SpeakRound) -> None:
    print(f"\n{title}")
    print(
        f"{'':6}{'answers/s':>10}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'CPU µs/req':>11}"
        f"{'non-202':>8}{'others %':>9}{'steal s':>8}"
    )
    for name, run in (("ours", ours), ("bare", bare)):
        seconds = sum(w.seconds for w in run.windows)
        count = len(run.latencies_s)
        cpu = sum(w.server_cpu for w in run.windows) / max(1, count) * 1e6
        others = sum(w.others_cpu for w in run.windows) / seconds * 100
        ms = [v * 1e3 for v in run.latencies_s]
        print(
            f"{name:6}{count / seconds:10.0f}{quantile(ms, 0.5):8.2f}{quantile(ms, 0.99):8.2f}"
            f"{max(ms):8.2f}{cpu:11.0f}{count - run.statuses[202]:8d}{others:9.0f}"
            f"{sum(w.steal for w in run.windows):8.2f}"
        )
    p99 = [quantile(r.latencies_s, 0.99) for r in (ours, bare)]
    print(f"p99 ours / bare: {p99[0] / p99[1]:.2f} (target ≤ 1.5)")


def print_fan_out(ours: FanOut, bare: FanOut, args: argparse.Namespace) -> None:
    print(
        f"\n(2) fan-out: {args.events} events at {args.rate:g}/s, ~0.5 kB each, to "
        f"{args.ws_clients} WebSocket clients (ours: 1 never reads; bare: without it), "
        f"{args.rounds} rounds"
    )
    print(
        f"{'':6}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'lost':>6}{'disorder':>9}"
        f"{'cost p50 µs':>12}{'p99 µs':>8}{'CPU µs/event':>13}{'others %':>9}{'steal s':>8}"
    )
    for name, run in (("ours", ours), ("bare", bare)):
        ms = [v * 1e3 for v in run.latencies_s]
        cost = [v / 1e3 for v in run.cost_ns]
        seconds = sum(w.seconds for w in run.windows)
        cpu = sum(w.server_cpu for w in run.windows) / (args.events * args.rounds) * 1e6
        others = sum(w.others_cpu for w in run.windows) / seconds * 100
        print(
            f"{name:6}{quantile(ms, 0.5):8.2f}{quantile(ms, 0.99):8.2f}{max(ms):8.2f}"
            f"{run.lost:6d}{run.disorder:9d}{quantile(cost, 0.5):12.1f}"
            f"{quantile(cost, 0.99):8.1f}{cpu:13.0f}{others:9.0f}"
            f"{sum(w.steal for w in run.windows):8.2f}"
        )
    alone = [v / 1e3 for v in ours.alone_ns]
    print(
        f"baseline emit() of a bus with no subscriber: p50 {quantile(alone, 0.5):.1f} µs, "
        f"p99 {quantile(alone, 0.99):.1f} µs"
    )
    print(
        f"slow client: dropped after event {ours.dropped_at} (per round); at the end the hub "
        f"had dropped {ours.hub.get('dropped_slow')}, bugs {ours.hub.get('errors')}"
    )
    p99 = [quantile(r.latencies_s, 0.99) for r in (ours, bare)]
    print(f"delivery p99 ours / bare: {p99[0] / p99[1]:.2f}")


# --- the run -------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> None:
    print(f"control bench, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {machine()}")
    persist = "on" if args.persist else "off"
    print(f"ours: log level {args.log_level}, queue persistence {persist}")
    with tempfile.TemporaryDirectory(prefix="hb-bench-control-") as folder:
        env = {**os.environ, **({STORE_ENV: folder} if args.persist else {})}

        def child(kind: str) -> Any:
            argv = [sys.executable, __file__, "--serve", kind, "--log-level", args.log_level]
            return launched(kind, argv, log_path=Path(folder) / f"{kind}.log", env=env)

        if args.only in (None, "speak"):
            await speak(args, child)
        if args.only in (None, "fanout"):
            shape = {"clients": args.ws_clients, "events": args.events, "rate": args.rate}
            fan = {"ours": FanOut(), "bare": FanOut()}
            async with child("fanout-ours") as ours, child("fanout-bare") as bare:
                for _ in range(args.rounds):
                    await fan_out(ours, fan["ours"], slow=True, **shape)
                    await fan_out(bare, fan["bare"], slow=False, **shape)
            print_fan_out(fan["ours"], fan["bare"], args)
    print(f"\nat the end: {machine()}")


async def speak(args: argparse.Namespace, child: Any) -> None:
    closed = {"ours": SpeakRound(), "bare": SpeakRound()}
    steady = {"ours": SpeakRound(), "bare": SpeakRound()}
    async with child("speak-ours") as ours, child("speak-bare") as bare:
        for _ in range(args.rounds):
            for name, server in (("ours", ours), ("bare", bare)):
                await closed_loop(server, closed[name], args.clients, args.seconds)
            for name, server in (("ours", ours), ("bare", bare)):
                await open_loop(server, steady[name], args.speak_rate, args.seconds)
    print_speak(
        f"(1) POST /v1/speak, closed loop: {args.clients} clients back to back, "
        f"{args.rounds} x {args.seconds:g} s each",
        closed["ours"],
        closed["bare"],
    )
    print_speak(
        f"    POST /v1/speak, open loop: {args.speak_rate:g} requests/s, "
        f"{args.rounds} x {args.seconds:g} s each",
        steady["ours"],
        steady["bare"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="speak: measured, per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16, help="closed loop connections")
    parser.add_argument("--speak-rate", type=float, default=200.0, help="open loop requests/s")
    parser.add_argument("--events", type=int, default=1200, help="fan-out events per round")
    parser.add_argument("--rate", type=float, default=400.0, help="fan-out events per second")
    parser.add_argument("--ws-clients", type=int, default=100)
    parser.add_argument("--log-level", default="INFO", help="the daemon's (default: INFO)")
    parser.add_argument("--only", choices=("speak", "fanout"))
    parser.add_argument(
        "--no-persist",
        dest="persist",
        action="store_false",
        help="ours without control.persist_queue (default: on, as the daemon)",
    )
    parser.add_argument("--serve", choices=KINDS, help=argparse.SUPPRESS)  # run as a server
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.log_level))
    else:
        asyncio.run(bench(args))


if __name__ == "__main__":
    main()
