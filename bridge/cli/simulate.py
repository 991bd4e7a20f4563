"""``heygen-bridge simulate``: the provider fakes as a standalone process for rehearsals.

With a LiveKit server (started here from a ``livekit-server`` binary, or given with
``--livekit-url``) the simulated avatar joins the room and publishes video and audio, so the
whole bridge can be tried without credits.  Without one, the REST APIs still work.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from bridge import sdnotify
from bridge.sim import DEFAULT_HEYGEN_KEY, DEFAULT_LIVEAVATAR_KEY
from bridge.sim.liveavatar.catalog import USER_AVATARS

if TYPE_CHECKING:
    from bridge.sim.media import MediaHost


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    p.add_argument(
        "--heygen-key",
        default=DEFAULT_HEYGEN_KEY,
        help=f"the API key the HeyGen fake accepts (default {DEFAULT_HEYGEN_KEY})",
    )
    p.add_argument(
        "--liveavatar-key",
        default=DEFAULT_LIVEAVATAR_KEY,
        help=f"the API key the LiveAvatar fake accepts (default {DEFAULT_LIVEAVATAR_KEY})",
    )
    p.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        help="concurrent sessions per key before the service refuses one "
        "(default: HeyGen 3, a trial account; LiveAvatar 20)",
    )
    p.add_argument(
        "--session-limit",
        type=int,
        default=600,
        help="HeyGen's session_duration_limit in seconds (default 600)",
    )
    p.add_argument(
        "--max-session-duration",
        type=int,
        default=1200,
        help="LiveAvatar's longest session in seconds, the plan's cap (default 1200)",
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=300.0,
        help="LiveAvatar's idle timeout in seconds without keep-alive or command (default 300)",
    )
    p.add_argument(
        "--livekit",
        choices=["auto", "off"],
        default="auto",
        help="auto: start livekit-server if installed, so the avatar publishes media",
    )
    p.add_argument("--livekit-url", help="use this LiveKit server instead (ws://...)")
    p.add_argument("--livekit-key", default="devkey", help="its API key (default devkey)")
    p.add_argument("--livekit-secret", default="secret", help="its API secret (default secret)")
    p.add_argument(
        "--sync-marks",
        action="store_true",
        help="mark a frame and an audio click each second (for A/V sync measurements)",
    )


def _say(text: str) -> None:
    print(text, flush=True)


async def serve(args: argparse.Namespace) -> int:
    from bridge.sim.heygen import HeyGenLimits
    from bridge.sim.liveavatar import LiveAvatarLimits
    from bridge.sim.server import Simulator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as owned:  # closed in reverse: sim, media, server
        media = await _media_host(args, owned)
        sim = Simulator(
            host=args.host,
            port=args.port,
            media=media,
            heygen_keys={args.heygen_key},
            heygen_limits=HeyGenLimits(
                max_concurrent=args.max_concurrent or HeyGenLimits.max_concurrent,
                session_duration_limit=args.session_limit,
            ),
            liveavatar_keys={args.liveavatar_key},
            liveavatar_limits=LiveAvatarLimits(
                max_concurrent=args.max_concurrent or LiveAvatarLimits.max_concurrent,
                max_session_duration=args.max_session_duration,
                idle_timeout=args.idle_timeout,
            ),
        )
        await owned.enter_async_context(sim)
        _banner(sim.url, args)
        sdnotify.ready(sim.url)
        await stop.wait()
    return 0


async def _media_host(args: argparse.Namespace, owned: contextlib.AsyncExitStack) -> MediaHost:
    """Where the avatar publishes: ``--livekit-url``, a ``livekit-server`` started here (stopped
    when ``owned`` closes), or nowhere (:class:`~bridge.sim.media.NoMedia`)."""
    from bridge.sim.livekit_server import LiveKitServer, find_binary
    from bridge.sim.media import NoMedia

    lk_url, lk_key, lk_secret = args.livekit_url, args.livekit_key, args.livekit_secret
    if lk_url is None and args.livekit == "auto":
        binary = find_binary()
        if binary is None:
            _say(
                "livekit-server not found: the avatar will not publish media "
                "(install: go install github.com/livekit/livekit-server/cmd/server@v1.13.5)"
            )
        else:
            log_path = Path(tempfile.gettempdir()) / "heygen-bridge-sim-livekit.log"
            server = await LiveKitServer(binary, log_path=log_path).start()
            owned.callback(server.stop)
            lk_url, lk_key, lk_secret = server.url, server.api_key, server.api_secret
            _say(f"LiveKit server: {lk_url} (log: {log_path})")
    if lk_url is None:
        return NoMedia()
    from bridge.sim.avatar import LiveKitHost

    host = LiveKitHost(url=lk_url, api_key=lk_key, api_secret=lk_secret, sync_marks=args.sync_marks)
    owned.push_async_callback(host.aclose)
    return host


def _banner(url: str, args: argparse.Namespace) -> None:
    """For people; programs read the READY message (:mod:`bridge.sdnotify`) instead.

    Every command it prints works as printed (a test runs them): LiveAvatar needs an avatar,
    so its ``run`` names one the fake knows ("My presenter"); the HeyGen fake, like the real
    API, uses its default avatar when none is given.
    """
    heygen = f"HEYGEN_BASE_URL={url} HEYGEN_API_KEY={args.heygen_key} heygen-bridge"
    liveavatar = f"LIVEAVATAR_BASE_URL={url} LIVEAVATAR_API_KEY={args.liveavatar_key} heygen-bridge"
    _say(f"HeyGen Streaming API fake: {url}  (API key: {args.heygen_key})")
    _say(f"  point the bridge at it: {heygen} run --provider heygen")
    _say(f"  list its avatars: {heygen} avatars --provider heygen")
    _say(f"LiveAvatar API fake: {url}  (API key: {args.liveavatar_key})")
    _say(
        f"  point the bridge at it: {liveavatar} run --provider liveavatar "
        f"--avatar {USER_AVATARS[0]['id']}"
    )
    _say(f"  list its avatars: {liveavatar} avatars --provider liveavatar")
    _say("Ctrl-C stops the simulator.")
