"""Configuration: the example documents every key, bad files say exactly what is wrong,
secrets come only from the environment and never show."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from bridge import config, log
from bridge.errors import ConfigError

EXAMPLE = Path(__file__).parents[2] / "config" / "bridge.example.yaml"


def keys_of(model: type[BaseModel], prefix: str = "") -> set[str]:
    found = set()
    for name, info in model.model_fields.items():
        found.add(prefix + name)
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            found |= keys_of(info.annotation, f"{prefix}{name}.")
    return found


def keys_in(data: dict[str, Any], prefix: str = "") -> set[str]:
    found = set()
    for name, value in data.items():
        found.add(prefix + name)
        if isinstance(value, dict):
            found |= keys_in(value, f"{prefix}{name}.")
    return found


def test_example_documents_every_key_with_its_default() -> None:
    raw = yaml.safe_load(EXAMPLE.read_text())
    assert keys_in(raw) == keys_of(config.Config)
    assert config.parse(raw) == config.Config()


def test_defaults_without_a_file(tmp_path: Path) -> None:
    settings = config.load(env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert settings.source is None
    assert settings.config.provider == "demo"  # auto, and no key set
    assert settings.config.camera.pixel_format == "YUYV"


def test_xdg_config_file_is_found(tmp_path: Path) -> None:
    path = tmp_path / "heygen-bridge" / "config.yaml"
    path.parent.mkdir()
    path.write_text("camera:\n  fps: 25\n")
    settings = config.load(env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert settings.source == path
    assert settings.config.camera.fps == 25


@pytest.mark.parametrize(
    ("env", "provider"),
    [
        ({}, "demo"),
        ({"HEYGEN_API_KEY": "hg-key-123"}, "heygen"),
        ({"LIVEAVATAR_API_KEY": "la-key-123"}, "liveavatar"),
        ({"HEYGEN_API_KEY": "hg-key-123", "LIVEAVATAR_API_KEY": "la-key-123"}, "liveavatar"),
    ],
)
def test_auto_provider_follows_the_keys(tmp_path: Path, env: dict[str, str], provider: str) -> None:
    settings = config.load(env={"XDG_CONFIG_HOME": str(tmp_path), **env})
    assert settings.config.provider == provider


def test_base_urls_from_the_environment(tmp_path: Path) -> None:
    settings = config.load(
        env={
            "XDG_CONFIG_HOME": str(tmp_path),
            "HEYGEN_BASE_URL": "http://127.0.0.1:1",
            "LIVEAVATAR_BASE_URL": "http://127.0.0.1:2",
        }
    )
    assert settings.config.heygen.base_url == "http://127.0.0.1:1"
    assert settings.config.liveavatar.base_url == "http://127.0.0.1:2"


def test_secrets_file_and_redaction(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secrets = tmp_path / "env"
    secrets.write_text("# my keys\nexport HEYGEN_API_KEY='hg-super-secret-value'\n")
    path = tmp_path / "c.yaml"
    path.write_text(f"secrets_file: {secrets}\n")
    settings = config.load(path, env={})
    assert settings.secrets.heygen_api_key is not None
    assert settings.secrets.heygen_api_key.reveal() == "hg-super-secret-value"
    assert "hg-super-secret-value" not in repr(settings)
    shown = yaml.safe_dump(config.redacted_dump(settings))
    assert "hg-super-secret-value" not in shown and "heygen_api_key: set" in shown
    assert log.redact("key=hg-super-secret-value!") == "key=***!"


# Each secret's environment variable and the Secrets field it fills.
SECRET_VARIABLES = {
    "HEYGEN_API_KEY": "heygen_api_key",
    "LIVEAVATAR_API_KEY": "liveavatar_api_key",
    "LIVEKIT_API_KEY": "livekit_api_key",
    "LIVEKIT_API_SECRET": "livekit_api_secret",
    "HEYGEN_BRIDGE_TOKEN": "control_token",
}


def test_each_secret_comes_from_its_own_variable(tmp_path: Path) -> None:
    """Every variable set to a different value: none lands in another secret's place."""
    env = {var: f"value-of-{var}" for var in SECRET_VARIABLES}
    secrets = config.load(env={"XDG_CONFIG_HOME": str(tmp_path), **env}).secrets
    read = {var: getattr(secrets, field) for var, field in SECRET_VARIABLES.items()}
    assert {var: s.reveal() if s else None for var, s in read.items()} == env


@pytest.mark.parametrize(("var", "field"), SECRET_VARIABLES.items())
def test_one_variable_sets_one_secret(tmp_path: Path, var: str, field: str) -> None:
    secrets = config.load(env={"XDG_CONFIG_HOME": str(tmp_path), var: "only-this"}).secrets
    assert [name for name, present in secrets.present().items() if present] == [field]


def test_log_lines_never_carry_a_secret(capfd: pytest.CaptureFixture[str]) -> None:
    log.register_secret("la-leaky-value-42")
    log.setup("INFO")
    logging.getLogger("bridge.test").info("calling with key %s", "la-leaky-value-42")
    err = capfd.readouterr().err
    assert "la-leaky-value-42" not in err and "calling with key ***" in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "avatar:\n  quality: ultra\n",
            "avatar.quality: 'ultra' is not one of very_high, high, medium, low",
        ),
        ("camera:\n  fps: -3\n", "camera.fps: -3 is invalid: input should be greater than 0"),
        (
            "camera:\n  width: 641\n",
            "camera.width: 641 is invalid: input should be a multiple of 2",
        ),
        ("microphone:\n  sink_name: 'a b'\n", "microphone.sink_name: 'a b' is invalid"),
        ("cam:\n  fps: 30\n", "cam: unknown key; did you mean 'camera'?"),
        (
            "provider: heygen\navatar:\n  quality: very_high\n",
            "'very_high' exists only on provider liveavatar",
        ),
        ("livekit:\n  url: ws://x\n", "livekit.url and livekit.room must be given together"),
        ("- just\n- a list\n", "the top level must be a mapping"),
        ("camera: [\n", "not valid YAML at line"),
    ],
)
def test_each_problem_is_named(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        config.load(path, env={})
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


def test_all_problems_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("avatar:\n  quality: ultra\ncamera:\n  widht: 640\n  fps: 0\n")
    with pytest.raises(ConfigError) as caught:
        config.load(path, env={})
    assert len(caught.value.problems) == 3


def test_missing_file_and_bad_secrets_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        config.load(tmp_path / "nope.yaml", env={})
    bad = tmp_path / "env"
    bad.write_text("this is not an assignment\n")
    path = tmp_path / "c.yaml"
    path.write_text(f"secrets_file: {bad}\n")
    with pytest.raises(ConfigError, match="line 1 is not NAME=value"):
        config.load(path, env={})
