"""The ``heygen-bridge`` command line.

Exit codes: 0 success, 1 a runtime failure (the provider refused, a device is missing),
2 bad configuration or usage.  Every failure is one line that names the cause; secrets never
appear (all output goes through :func:`bridge.log.redact`).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

import yaml

from bridge import __version__, config, log
from bridge.errors import BridgeError, ConfigError, RefusedKey, Unauthorized
from bridge.providers.base import Provider

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

T = TypeVar("T")
Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def say(text: str = "", *, err: bool = False) -> None:
    print(log.redact(text), file=sys.stderr if err else sys.stdout, flush=True)


async def _with_provider(
    args: argparse.Namespace, use: Callable[[Provider], Coroutine[Any, Any, T]]
) -> tuple[Provider, T]:
    """Run ``use`` on the configured provider; a refused key is explained (whose key is it?)."""
    from bridge.app import make_provider
    from bridge.cli import keycheck

    settings = _settings(args)
    provider = make_provider(settings)
    try:
        return provider, await use(provider)
    except Unauthorized as exc:
        raise RefusedKey(await keycheck.explain(settings, exc)) from exc
    finally:
        await provider.aclose()


def _settings(args: argparse.Namespace) -> config.Settings:
    """The config, with what the command line overrides: ``--provider``, ``--avatar``."""
    settings = config.load(args.config)
    provider, avatar_id = getattr(args, "provider", None), getattr(args, "avatar", None)
    if provider or avatar_id:
        raw = settings.config.model_dump()
        if provider:
            raw["provider"] = provider
        if avatar_id:
            raw["avatar"]["avatar_id"] = avatar_id
        settings = config.Settings(
            config=config.parse(raw), secrets=settings.secrets, source=settings.source
        )
    return settings


# --- commands ------------------------------------------------------------------------------


async def cmd_avatars(args: argparse.Namespace) -> int:
    provider, avatars = await _with_provider(args, lambda p: p.list_avatars())
    if args.json:
        say(json.dumps([dataclasses.asdict(a) for a in avatars]))
        return EXIT_OK
    say(f"{'AVATAR ID':<40} {'STATUS':<10} NAME")
    for a in avatars:
        say(f"{a.avatar_id:<40} {a.status:<10} {a.name}")
    say(f"{len(avatars)} avatar(s) on {provider.name}")
    return EXIT_OK


async def cmd_sessions_list(args: argparse.Namespace) -> int:
    provider, sessions = await _with_provider(args, lambda p: p.list_sessions())
    if not sessions:
        say(f"no active sessions on {provider.name}")
        return EXIT_OK
    say(f"{'SESSION ID':<40} {'STATUS':<12} CREATED")
    for s in sessions:
        created = s.created_at.isoformat(timespec="seconds") if s.created_at else "-"
        say(f"{s.session_id:<40} {s.status:<12} {created}")
    return EXIT_OK


async def cmd_sessions_stop(args: argparse.Namespace) -> int:
    if bool(args.session_id) == bool(args.all):
        say("heygen-bridge: error: give one session id, or --all", err=True)
        return EXIT_USAGE

    async def stop(provider: Provider) -> list[str]:
        listed = [s.session_id for s in await provider.list_sessions()] if args.all else []
        ids = listed if args.all else [args.session_id]
        for session_id in ids:
            await provider.stop_session(session_id)
            say(f"stopped {session_id}")
        return ids

    provider, ids = await _with_provider(args, stop)
    if args.all and not ids:
        say(f"no active sessions on {provider.name}")
    return EXIT_OK


async def cmd_config_check(args: argparse.Namespace) -> int:
    settings = config.load(args.config)
    where = settings.source or "built-in defaults (no config file found)"
    say(f"config OK: {where} (provider: {settings.config.provider})")
    return EXIT_OK


async def cmd_config_show(args: argparse.Namespace) -> int:
    settings = config.load(args.config)
    say(f"# from {settings.source or 'built-in defaults'}")
    say(yaml.safe_dump(config.redacted_dump(settings), sort_keys=False).rstrip())
    return EXIT_OK


async def cmd_simulate(args: argparse.Namespace) -> int:
    from bridge.cli.simulate import serve

    return await serve(args)


async def cmd_run(args: argparse.Namespace) -> int:
    from bridge.app import Bridge
    from bridge.supervisor import supervise

    if args.demo:
        args.provider = "demo"
    settings = _settings(args)
    log.setup(args.log_level or settings.config.log.level)
    bridge = Bridge(settings)

    async def reload() -> None:
        """SIGHUP: the config file again (with the same command-line overrides)."""
        try:
            new = await asyncio.to_thread(_settings, args)
        except ConfigError as exc:
            bridge.reload_refused(exc.problems)
            return
        bridge.reload(new)

    return await supervise(bridge.run, reload=reload, health=bridge.health_checks())


async def cmd_service_install(args: argparse.Namespace) -> int:
    from bridge.cli.service import install

    return install(args, say)


async def cmd_say(args: argparse.Namespace) -> int:
    from bridge.cli import daemon

    return await daemon.run(daemon.say, args)


async def cmd_status(args: argparse.Namespace) -> int:
    from bridge.cli import daemon

    return await daemon.run(daemon.status, args)


async def cmd_interrupt(args: argparse.Namespace) -> int:
    from bridge.cli import daemon

    return await daemon.run(daemon.interrupt, args)


async def cmd_listen(args: argparse.Namespace) -> int:
    from bridge.cli import daemon

    return await daemon.run(daemon.listen, args)


async def cmd_devices(args: argparse.Namespace) -> int:
    from bridge.cli.devices import run

    return await run(args, config.load(args.config))


async def cmd_doctor(args: argparse.Namespace) -> int:
    from bridge.cli.doctor import run_checks

    try:
        settings = _settings(args)
    except ConfigError as exc:
        say("FAIL config")
        for problem in exc.problems:
            say(f"     {problem}")
        return EXIT_USAGE
    checks = await run_checks(settings)
    for check in checks:
        say(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
        if not check.ok and check.fix:
            say(f"     fix: {check.fix}")
    failed = [c for c in checks if not c.ok and c.required]
    say("all required checks passed" if not failed else f"{len(failed)} required check(s) failed")
    return EXIT_FAIL if failed else EXIT_OK


# --- parser --------------------------------------------------------------------------------


def common_options(parser: argparse.ArgumentParser, *, default: Any) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        default=default,
        help="YAML config file (default: $XDG_CONFIG_HOME/heygen-bridge/config.yaml)",
    )
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        default=default,
        help="override log.level",
    )


def build_parser() -> argparse.ArgumentParser:
    """Every command and its options; each command's ``func`` is what runs it."""
    parser = argparse.ArgumentParser(
        prog="heygen-bridge",
        description="An interactive AI avatar as a local virtual webcam and microphone.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common_options(parser, default=None)
    # The same options after the command too (`heygen-bridge config check --config x.yaml`);
    # there they only count when given, so one given before the command is kept.
    common = argparse.ArgumentParser(add_help=False)
    common_options(common, default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_provider_commands(sub, common)
    _add_config_commands(sub, common)
    _add_service_commands(sub, common)
    _add_local_commands(sub, common)
    _add_daemon_commands(sub, common)
    return parser


# What ``add_subparsers`` returns: typeshed names the class, argparse does not export it.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _command(
    sub: Subcommands,
    name: str,
    func: Command,
    summary: str,
    *,
    common: argparse.ArgumentParser,
    provider: bool = False,
) -> argparse.ArgumentParser:
    """One command that takes the common options; with ``provider``, ``--provider`` too."""
    p = sub.add_parser(name, parents=[common], help=summary)
    if provider:
        p.add_argument(
            "--provider",
            choices=["heygen", "liveavatar", "demo"],
            help="override the config's provider",
        )
    p.set_defaults(func=func)
    return p


def _add_provider_commands(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    """The commands that talk to the avatar provider: run, avatars, sessions list|stop."""
    run = _command(
        sub,
        "run",
        cmd_run,
        "run the bridge: avatar → virtual camera (and mic)",
        common=common,
        provider=True,
    )
    run.add_argument(
        "--demo", action="store_true", help="use the built-in demo avatar (no key, no network)"
    )
    run.add_argument(
        "--avatar",
        metavar="ID",
        help="override avatar.avatar_id (heygen-bridge avatars lists them)",
    )
    avatars = _command(
        sub, "avatars", cmd_avatars, "list the avatars you can stream", common=common, provider=True
    )
    avatars.add_argument("--json", action="store_true", help="print JSON")

    sessions = sub.add_parser("sessions", help="list or stop the provider's active sessions")
    actions = sessions.add_subparsers(dest="sessions_command", metavar="ACTION", required=True)
    _command(
        actions, "list", cmd_sessions_list, "list active sessions", common=common, provider=True
    )
    stop = _command(
        actions,
        "stop",
        cmd_sessions_stop,
        "stop one session, or all of them",
        common=common,
        provider=True,
    )
    stop.add_argument("session_id", nargs="?", help="the session to stop")
    stop.add_argument("--all", action="store_true", help="stop every active session")


def _add_service_commands(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    from bridge.cli.service import add_arguments as add_service_arguments

    service = sub.add_parser("service", help="run the bridge as a systemd user service")
    actions = service.add_subparsers(dest="service_command", metavar="ACTION", required=True)
    add_service_arguments(
        _command(
            actions,
            "install",
            cmd_service_install,
            "write the systemd user unit for this install and say how to enable it",
            common=common,
        )
    )


def _add_config_commands(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    cfg = sub.add_parser("config", help="check or show the configuration")
    actions = cfg.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    _command(actions, "check", cmd_config_check, "validate the config file", common=common)
    _command(
        actions,
        "show",
        cmd_config_show,
        "print the effective config (secrets hidden)",
        common=common,
    )


def _add_local_commands(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    """The commands for this machine: simulate, devices, doctor (their modules load lazily)."""
    from bridge.cli.devices import add_arguments as add_devices_arguments
    from bridge.cli.simulate import add_arguments as add_simulate_arguments

    add_simulate_arguments(
        _command(
            sub,
            "simulate",
            cmd_simulate,
            "run local fakes of the HeyGen and LiveAvatar APIs (rehearse without credits)",
            common=common,
        )
    )
    add_devices_arguments(
        _command(
            sub,
            "devices",
            cmd_devices,
            "make, remove or show the virtual microphone",
            common=common,
        )
    )
    _command(
        sub,
        "doctor",
        cmd_doctor,
        "check config, API key, camera and sound; say how to fix",
        common=common,
        provider=True,
    )


def _add_daemon_commands(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    """The commands that drive a running daemon over its control API: say, status, interrupt,
    listen."""
    from bridge.cli import daemon

    daemon.add_say_arguments(
        _command(sub, "say", cmd_say, "make the running avatar say something", common=common)
    )
    daemon.add_status_arguments(
        _command(sub, "status", cmd_status, "show what the running daemon is doing", common=common)
    )
    daemon.add_url_option(
        _command(
            sub,
            "interrupt",
            cmd_interrupt,
            "stop what the running avatar is saying",
            common=common,
        )
    )
    daemon.add_listen_arguments(
        _command(
            sub,
            "listen",
            cmd_listen,
            "let the running avatar hear the meeting (start) or not (stop)",
            common=common,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = args.log_level or "WARNING"
    log.setup(level)
    func: Command = args.func
    try:
        return asyncio.run(func(args))
    except ConfigError as exc:
        for problem in exc.problems:
            say(f"config: {problem}", err=True)
        return EXIT_USAGE
    except BridgeError as exc:
        say(f"heygen-bridge: {exc}", err=True)
        return EXIT_FAIL
    except KeyboardInterrupt:
        return 130
