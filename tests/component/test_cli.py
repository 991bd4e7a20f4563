"""The command line, as a user runs it: real processes, against `heygen-bridge simulate`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bridge.sim import DEFAULT_HEYGEN_KEY, DEFAULT_LIVEAVATAR_KEY
from tests.kit.process import launched

CLI = [sys.executable, "-m", "bridge"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def simulator_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """``heygen-bridge simulate`` without media, started by the kit's launcher."""
    log_path = tmp_path_factory.mktemp("simulate") / "simulate.log"
    argv = [*CLI, "simulate", "--port", "0", "--livekit", "off"]
    async with launched("the simulator", argv, log_path=log_path) as simulator:
        yield simulator.url


def user_env(tmp_path: Path, url: str, key: str, *, service: str = "HEYGEN") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(
        HEYGEN_BASE_URL=url,
        LIVEAVATAR_BASE_URL=url,
        XDG_CONFIG_HOME=str(tmp_path / "xdg"),
    )
    env[f"{service}_API_KEY"] = key
    return env


def test_avatars_and_sessions_against_the_simulator(simulator_url: str, tmp_path: Path) -> None:
    env = user_env(tmp_path, simulator_url, DEFAULT_HEYGEN_KEY)
    avatars = run_cli("avatars", "--provider", "heygen", env=env)
    assert avatars.returncode == 0, avatars.stderr
    assert "Wayne_20240711" in avatars.stdout and "3 avatar(s) on HeyGen" in avatars.stdout

    empty = run_cli("sessions", "list", "--provider", "heygen", env=env)
    assert empty.returncode == 0 and "no active sessions on HeyGen" in empty.stdout


def test_sessions_stop_all(simulator_url: str, tmp_path: Path) -> None:
    import asyncio

    from bridge.config import Secret
    from bridge.providers.heygen.client import HeyGenClient
    from bridge.providers.heygen.models import NewSessionRequest

    async def leave_two_sessions() -> list[str]:
        async with HeyGenClient(
            base_url=simulator_url, credential=Secret(DEFAULT_HEYGEN_KEY)
        ) as client:
            return [(await client.new_session(NewSessionRequest())).session_id for _ in range(2)]

    ids = asyncio.run(leave_two_sessions())
    env = user_env(tmp_path, simulator_url, DEFAULT_HEYGEN_KEY)
    listed = run_cli("sessions", "list", "--provider", "heygen", env=env)
    assert all(i in listed.stdout for i in ids)
    stopped = run_cli("sessions", "stop", "--all", "--provider", "heygen", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert sorted(re.findall(r"stopped (\S+)", stopped.stdout)) == sorted(ids)
    after = run_cli("sessions", "list", "--provider", "heygen", env=env)
    assert "no active sessions" in after.stdout


@pytest.mark.parametrize(
    "command", [["avatars"], ["sessions", "list"], ["sessions", "stop", "--all"]]
)
def test_wrong_key_fails_in_one_line_without_the_key(
    simulator_url: str, tmp_path: Path, command: list[str]
) -> None:
    wrong = "not-the-right-key-0123456789"
    result = run_cli(*command, "--provider", "heygen", env=user_env(tmp_path, simulator_url, wrong))
    assert result.returncode == 1
    assert result.stdout.strip() == "" or "stopped" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "not accepted" in lines[0] and "HEYGEN_API_KEY" in lines[0]
    assert wrong not in result.stdout + result.stderr


def test_missing_key_is_a_config_error(tmp_path: Path) -> None:
    env = user_env(tmp_path, "http://127.0.0.1:9", "")
    result = run_cli("avatars", "--provider", "heygen", env=env)
    assert result.returncode == 2
    assert "HEYGEN_API_KEY is not set" in result.stderr


@pytest.mark.parametrize("where", ["before the command", "after the command"])
def test_config_check_names_bad_value_and_unknown_key(tmp_path: Path, where: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("avatar:\n  quality: ultra\ncamera:\n  widht: 640\n")
    option = ["--config", str(path)]
    command = ["config", "check"]
    result = run_cli(*(option + command if where == "before the command" else command + option))
    assert result.returncode == 2
    assert "avatar.quality: 'ultra' is not one of very_high, high, medium, low" in result.stderr
    assert "camera.widht: unknown key; did you mean 'width'?" in result.stderr


def test_config_check_and_show_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text("provider: heygen\ncamera:\n  width: 640\n  height: 360\n")
    env = user_env(tmp_path, "http://127.0.0.1:9", "secret-value-to-hide")
    check = run_cli("--config", str(path), "config", "check", env=env)
    assert check.returncode == 0 and "config OK" in check.stdout
    show = run_cli("--config", str(path), "config", "show", env=env)
    assert show.returncode == 0
    assert "width: 640" in show.stdout and "heygen_api_key: set" in show.stdout
    assert "secret-value-to-hide" not in show.stdout


def test_every_command_has_help() -> None:
    for command in (
        [],
        ["avatars"],
        ["sessions"],
        ["sessions", "list"],
        ["sessions", "stop"],
        ["config"],
        ["config", "check"],
        ["config", "show"],
        ["simulate"],
        ["doctor"],
        ["run"],
        ["devices"],
        ["say"],
        ["status"],
        ["interrupt"],
    ):
        result = run_cli(*command, "--help")
        assert result.returncode == 0 and "usage: heygen-bridge" in result.stdout, command


def test_avatars_and_doctor_with_a_liveavatar_key(simulator_url: str, tmp_path: Path) -> None:
    env = user_env(tmp_path, simulator_url, DEFAULT_LIVEAVATAR_KEY, service="LIVEAVATAR")
    avatars = run_cli("avatars", env=env)  # provider auto: the LiveAvatar key decides
    assert avatars.returncode == 0, avatars.stderr
    assert "Wayne" in avatars.stdout and "on LiveAvatar" in avatars.stdout
    doctor = run_cli("doctor", env=env)
    assert "ok   provider: LiveAvatar accepted the API key" in doctor.stdout, doctor.stdout


@pytest.mark.parametrize(("provider", "name"), [("heygen", "HeyGen"), ("liveavatar", "LiveAvatar")])
def test_doctor_checks_the_provider_asked_for(
    simulator_url: str, tmp_path: Path, provider: str, name: str
) -> None:
    env = user_env(tmp_path, simulator_url, DEFAULT_LIVEAVATAR_KEY, service="LIVEAVATAR")
    env["HEYGEN_API_KEY"] = DEFAULT_HEYGEN_KEY  # both keys: auto would pick LiveAvatar
    doctor = run_cli("doctor", "--provider", provider, env=env)
    assert f"ok   provider: {name} accepted the API key" in doctor.stdout, doctor.stdout


@pytest.mark.parametrize(
    ("key", "service", "says"),
    [
        (
            DEFAULT_HEYGEN_KEY,
            "LIVEAVATAR",
            "LiveAvatar refused the API key in LIVEAVATAR_API_KEY: "
            "it is a HeyGen Streaming API key",
        ),
        (
            DEFAULT_LIVEAVATAR_KEY,
            "HEYGEN",
            "HeyGen Streaming API refused the API key in HEYGEN_API_KEY: it is a LiveAvatar key",
        ),
    ],
)
def test_a_key_used_on_the_wrong_service_is_named(
    simulator_url: str, tmp_path: Path, key: str, service: str, says: str
) -> None:
    env = user_env(tmp_path, simulator_url, key, service=service)
    avatars = run_cli("avatars", env=env)
    assert avatars.returncode == 1
    assert says in avatars.stderr, avatars.stderr
    assert key not in avatars.stderr
    doctor = run_cli("doctor", env=env)
    assert doctor.returncode == 1
    assert says in doctor.stdout
