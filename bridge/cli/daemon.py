"""``heygen-bridge say|status|interrupt|listen``: drive a daemon that is already running.

Each command is one request to the control API (bridge/cli/remote.py) and prints its answer
for a person: ``say`` the queued item id(s) and position, ``status`` a summary
(bridge/cli/summary.py; ``--json`` for the whole status), ``interrupt`` what it stopped,
``listen start|stop`` whether the avatar now hears the meeting.
When no daemon answers, or it refuses, the cause is one line on stderr and the exit code
follows main.py's convention (0 ok, 1 failure, 2 bad input).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from bridge import config
from bridge.cli.main import EXIT_OK
from bridge.cli.main import say as print_line
from bridge.cli.remote import Daemon, RemoteError, call, find_daemon
from bridge.cli.summary import summary

Action = Callable[[Daemon, argparse.Namespace], Coroutine[Any, Any, None]]


def add_url_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        metavar="URL",
        help="the daemon's address (default: from the config's control.host and control.port)",
    )


def add_say_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", help="what the avatar should say")
    parser.add_argument(
        "--mode",
        choices=["repeat", "chat"],
        default="repeat",
        help="repeat: say the text as it is (default); chat: answer it with the provider's LLM",
    )
    parser.add_argument(
        "--now", action="store_true", help="interrupt what is being said and say this first"
    )
    add_url_option(parser)


def add_listen_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=["start", "stop"],
        help="start: the avatar hears the meeting (push-to-talk: press); stop: it does not",
    )
    add_url_option(parser)


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the whole status as JSON")
    add_url_option(parser)


async def run(action: Action, args: argparse.Namespace) -> int:
    """Find the daemon (``--url`` or the config) and run ``action`` against it."""
    try:
        await action(find_daemon(config.load(args.config), args.url), args)
    except RemoteError as exc:
        print_line(f"heygen-bridge: {exc}", err=True)
        return exc.exit_code
    return EXIT_OK


async def say(daemon: Daemon, args: argparse.Namespace) -> None:
    """``POST /v1/speak``; prints ``s12 queued, position 1`` (all ids of a split text)."""
    body = {"text": args.text, "mode": args.mode}
    if args.now:  # only when asked: a daemon from before priorities then still takes the rest
        body["priority"] = "now"
    answer = await call(daemon, "POST", "/v1/speak", body=body)
    print_line(_said(answer))


def _said(answer: Mapping[str, Any]) -> str:
    """``s12 queued, position 1``; ``s12 s13 queued (2 parts of request r7), position 1``;
    position 0 (nothing ahead of it) reads ``up now``."""
    items = _items(answer)
    ids = " ".join(str(item.get("id") or "?") for item in items) or "?"
    line = f"{ids} {(items[0].get('state') if items else None) or 'accepted'}"
    if len(items) > 1:
        line += f" ({len(items)} parts of request {items[0].get('request_id') or '?'})"
    position = answer.get("position")
    if isinstance(position, int):
        line += f", position {position}" if position > 0 else ", up now"
    return line


async def status(daemon: Daemon, args: argparse.Namespace) -> None:
    """``GET /v1/status``: a summary, or the JSON as the daemon sent it."""
    answer = await call(daemon, "GET", "/v1/status")
    if args.json:
        print_line(json.dumps(answer, indent=2, ensure_ascii=False))
        return
    for line in summary(answer, daemon.url):
        print_line(line)


async def interrupt(daemon: Daemon, args: argparse.Namespace) -> None:
    """``POST /v1/interrupt``; prints the item it stopped, if one was being spoken."""
    answer = await call(daemon, "POST", "/v1/interrupt")
    stopped = _stopped_item(answer)
    if stopped is None:
        print_line("nothing was being said")
    else:
        print_line(f"interrupted {stopped.get('id') or '?'}")


async def listen(daemon: Daemon, args: argparse.Namespace) -> None:
    """``POST /v1/listen/start|stop``; prints ``listening (push-to-talk)`` or ``not listening
    (conversational)``, and when the avatar could not be told, why."""
    answer = await call(daemon, "POST", f"/v1/listen/{args.action}")
    line = f"{'listening' if answer.get('listening') else 'not listening'} ({answer.get('mode')})"
    told = answer.get("avatar_told")
    if told not in (None, "yes"):
        line += f"; the avatar was not told: {told}"
    print_line(line)


def _items(answer: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The items a speak answer lists (``items``), or the answer itself when it is one."""
    items = answer.get("items")
    if isinstance(items, list):
        return [item for item in items if isinstance(item, Mapping)]
    return [answer] if "id" in answer else []


def _stopped_item(answer: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The item an interrupt answer names (as ``interrupted``/``item``, or itself)."""
    for key in ("interrupted", "item"):
        if key in answer:
            value = answer[key]
            return value if isinstance(value, Mapping) else None
    return answer if "id" in answer else None
