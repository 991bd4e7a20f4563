"""A small client for a running daemon's control API (``say``, ``status``, ``interrupt``).

Where the daemon is: ``--url``, else ``http://<control.host>:<control.port>`` from the config;
a wildcard bind (``0.0.0.0``, ``::``, ``""``) listens on loopback too, so it is reached there.
The token is HEYGEN_BRIDGE_TOKEN (from the environment or the ``secrets_file``), sent as
``Authorization: Bearer``; it never appears in output (:func:`bridge.log.redact`).

Every failure is a :class:`RemoteError`: one line that names the cause, and the exit code of
the CLI's convention (bridge/cli/main.py): 1 when no daemon answers or it refuses, 2 when it
refuses what the user typed (HTTP 400) or the address given cannot be used.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bridge.cli.main import EXIT_FAIL, EXIT_USAGE
from bridge.config import ControlConfig, Secret, Settings

TIMEOUT_S = 10.0
WILDCARDS = {"", "0.0.0.0", "::"}  # bound to every interface: loopback reaches it
START_HINT = "start it with: heygen-bridge run"


class RemoteError(Exception):
    """The daemon could not be reached or refused: ``str()`` is the line to print."""

    def __init__(self, message: str, *, exit_code: int = EXIT_FAIL) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True, slots=True)
class Daemon:
    """Where a running daemon answers (``url`` without a trailing slash), and its token."""

    url: str
    token: Secret | None = None


def find_daemon(settings: Settings, url: str | None = None) -> Daemon:
    """The daemon ``url`` names, else the one the config describes."""
    base = check_url(url) if url is not None else config_url(settings.config.control)
    return Daemon(url=base, token=settings.secrets.control_token)


def config_url(control: ControlConfig) -> str:
    """``http://host:port`` to reach a daemon bound as ``control`` says."""
    if control.port == 0:
        raise RemoteError(
            "control.port is 0 (the daemon picks a free port when it starts): "
            "give its address with --url http://127.0.0.1:PORT",
            exit_code=EXIT_USAGE,
        )
    host = control.host.strip()
    if host in WILDCARDS:
        host = "::1" if host == "::" else "127.0.0.1"
    if _is_ipv6(host):
        host = f"[{host}]"
    return f"http://{host}:{control.port}"


def check_url(url: str) -> str:
    """``--url`` as typed, if it is an ``http(s)://host[:port]`` address (a path is dropped)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise RemoteError(
            f"--url: {url!r} is not an address like http://127.0.0.1:8765", exit_code=EXIT_USAGE
        )
    netloc = parts.hostname if not _is_ipv6(parts.hostname) else f"[{parts.hostname}]"
    return f"{parts.scheme}://{netloc}" + (f":{port}" if port is not None else "")


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


async def call(
    daemon: Daemon,
    method: str,
    path: str,
    *,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One request to the daemon; its JSON object answer, or :class:`RemoteError`."""
    headers = {"Accept": "application/json"}
    if daemon.token is not None:
        headers["Authorization"] = f"Bearer {daemon.token.reveal()}"
    where = daemon.url
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as http,
            http.request(method, where + path, json=body, headers=headers) as resp,
        ):
            raw = await resp.read()
            status, reason, retry_after = resp.status, resp.reason, resp.headers.get("Retry-After")
    except aiohttp.ClientConnectorError:
        raise RemoteError(f"no daemon answers at {where} ({START_HINT})") from None
    except TimeoutError:
        raise RemoteError(f"the daemon at {where} did not answer within {TIMEOUT_S:g} s") from None
    except aiohttp.ClientError as exc:
        raise RemoteError(f"the connection to {where} failed: {exc.__class__.__name__}") from None
    answer = _json_object(raw)
    if status >= 400:
        raise _refusal(where, status, reason, answer, retry_after)
    if answer is None:
        raise RemoteError(
            f"{where}{path} answered {status} without a JSON object: "
            "is a heygen-bridge daemon listening there?"
        )
    return answer


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        answer = json.loads(raw)
    except ValueError:  # also UnicodeDecodeError: not JSON at all
        return None
    return answer if isinstance(answer, dict) else None


def _refusal(
    where: str,
    status: int,
    reason: str | None,
    answer: dict[str, Any] | None,
    retry_after: str | None,
) -> RemoteError:
    """The daemon's ``{error, detail}`` as one line; 400 (what the user typed) exits 2."""
    detail = answer.get("detail") if answer is not None else None
    if not isinstance(detail, str) or not detail:
        return RemoteError(
            f"{where} answered {status} {reason or ''}".rstrip()
            + ("" if answer is not None else ": is a heygen-bridge daemon listening there?")
        )
    if status == 401:
        detail += " (set HEYGEN_BRIDGE_TOKEN to the daemon's token)"
    if status == 429 and retry_after:
        detail += f" (try again in {retry_after} s)"
    return RemoteError(detail, exit_code=EXIT_USAGE if status == 400 else EXIT_FAIL)
