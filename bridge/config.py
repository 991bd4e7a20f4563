"""Configuration: one YAML file, validated once, frozen.

Where it comes from: ``--config PATH``, else ``$XDG_CONFIG_HOME/heygen-bridge/config.yaml``,
else the defaults below.  Every key is documented in ``config/bridge.example.yaml``.

Secrets never live in the YAML: they come from the environment, or from an env file named by
``secrets_file`` (``NAME=value`` lines), and are held as :class:`Secrets` whose ``repr`` hides
them.  Every secret value is registered with :mod:`bridge.log` so that it is redacted from
any log line or message that might carry it.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bridge import log
from bridge.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AvatarConfig(_Section):
    avatar_id: str | None = None
    quality: Literal["very_high", "high", "medium", "low"] = "high"
    voice_id: str | None = None
    voice_rate: Annotated[float, Field(ge=0.5, le=1.5)] = 1.0
    voice_emotion: Literal["excited", "serious", "friendly", "soothing", "broadcaster"] | None = (
        None
    )
    language: str = "en"
    # H264: what HeyGen's own SDK sends and LiveAvatar's default; its decoder costs about half
    # of VP8's here (docs/benchmarks.md).
    video_encoding: Literal["H264", "VP8"] = "H264"
    knowledge_base: str | None = None
    knowledge_base_id: str | None = None
    context_id: str | None = None
    activity_idle_timeout: Annotated[int, Field(ge=30, le=3600)] = 120
    max_session_duration: Annotated[int, Field(gt=0)] | None = None
    sandbox: bool = False


class ApiConfig(_Section):
    base_url: str
    timeout: Annotated[float, Field(gt=0, le=300)] = 15.0
    retry_deadline: Annotated[float, Field(ge=0, le=600)] = 20.0


class LiveKitConfig(_Section):
    """Your own LiveKit server (HeyGen ``livekit_settings``); key/secret from the environment."""

    url: str | None = None
    room: str | None = None


class CameraConfig(_Section):
    enabled: bool = True
    device: str | None = None
    card_label: str = "HeyGen Avatar"
    width: Annotated[int, Field(ge=16, le=3840, multiple_of=2)] = 1280
    height: Annotated[int, Field(ge=16, le=2160, multiple_of=2)] = 720
    fps: Annotated[float, Field(gt=0, le=60)] = 30.0
    pixel_format: Literal["YUYV", "I420"] = "YUYV"
    fit: Literal["letterbox", "crop", "stretch"] = "letterbox"
    slate_after: Annotated[float, Field(ge=0, le=60)] = 2.0
    slate_image: Path | None = None
    backend: str | None = None


class MicrophoneConfig(_Section):
    enabled: bool = True
    sink_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] = "heygen_avatar_sink"
    sink_description: str = "HeyGen Avatar Speaker"
    source_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] = "heygen_avatar_mic"
    source_description: str = "HeyGen Avatar Mic"
    make_default: bool = False
    jitter_buffer_ms: Annotated[int, Field(ge=0, le=1000)] = 60
    av_offset_ms: Annotated[int, Field(ge=-1000, le=1000)] = 0
    output_device: str | None = None


class RateLimitConfig(_Section):
    # Speak requests one source (an HTTP client's address, a WebSocket connection, a chat
    # user) may make: ``burst`` at once, refilled at ``per_minute``.  0 turns the limit off.
    per_minute: Annotated[int, Field(ge=0, le=100_000)] = 60
    burst: Annotated[int, Field(ge=1, le=10_000)] = 10


class ControlConfig(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8765
    # Browser pages from these origins (e.g. "http://localhost:3000") may drive the API;
    # every other page is refused (403) on anything that changes state.
    allowed_origins: list[Annotated[str, Field(pattern=r"^https?://[^/\s]+$")]] = []
    # The most characters one speak request may carry (it is split into items the
    # provider accepts).
    max_text: Annotated[int, Field(ge=1, le=100_000)] = 2000
    # The most items waiting to be spoken; past it a speak request gets 429.
    queue_limit: Annotated[int, Field(ge=1, le=10_000)] = 100
    # Keep the items not yet spoken across a restart ($XDG_STATE_HOME/heygen-bridge).
    persist_queue: bool = True
    rate_limit: RateLimitConfig = RateLimitConfig()


class PresetConfig(_Section):
    text: Annotated[str, Field(min_length=1)]
    mode: Literal["repeat", "chat"] = "repeat"
    priority: Literal["normal", "now"] = "normal"


class LogConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


ProviderName = Literal["demo", "heygen", "liveavatar"]


class Config(_Section):
    # auto: liveavatar when LIVEAVATAR_API_KEY is set, else heygen when HEYGEN_API_KEY is
    # set, else the demo avatar.
    provider: Literal["auto", "demo", "heygen", "liveavatar"] = "auto"
    secrets_file: Path | None = None
    avatar: AvatarConfig = AvatarConfig()
    heygen: ApiConfig = ApiConfig(base_url="https://api.heygen.com")
    liveavatar: ApiConfig = ApiConfig(base_url="https://api.liveavatar.com")
    livekit: LiveKitConfig = LiveKitConfig()
    camera: CameraConfig = CameraConfig()
    microphone: MicrophoneConfig = MicrophoneConfig()
    control: ControlConfig = ControlConfig()
    # Named texts for one-press buttons: POST or GET /v1/presets/{name}.
    presets: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")], PresetConfig] = {}
    log: LogConfig = LogConfig()

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        if (self.livekit.url is None) != (self.livekit.room is None):
            raise ValueError("livekit.url and livekit.room must be given together")
        if self.provider == "heygen" and self.avatar.quality == "very_high":
            raise ValueError(
                "avatar.quality 'very_high' exists only on provider liveavatar; "
                "use high, medium or low with heygen"
            )
        return self


class Secret:
    """A secret string whose repr and str never show the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class Secrets:
    """The secrets, each read from the environment variable named beside it (None: not set)."""

    heygen_api_key: Secret | None = None  # HEYGEN_API_KEY
    liveavatar_api_key: Secret | None = None  # LIVEAVATAR_API_KEY
    livekit_api_key: Secret | None = None  # LIVEKIT_API_KEY
    livekit_api_secret: Secret | None = None  # LIVEKIT_API_SECRET
    control_token: Secret | None = None  # HEYGEN_BRIDGE_TOKEN

    def present(self) -> dict[str, bool]:
        return {name: getattr(self, name) is not None for name in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the daemon reads at start: the validated file plus the secrets."""

    config: Config
    secrets: Secrets
    source: Path | None = None


def default_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(base) / "heygen-bridge" / "config.yaml"


def load(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load, validate and freeze the configuration.  Raises :class:`ConfigError`."""
    env = dict(os.environ if env is None else env)
    source = path
    if source is None and default_path(env).is_file():
        source = default_path(env)
    raw: dict[str, Any] = {}
    if source is not None:
        raw = _read_yaml(source)
    for section, var in (("heygen", "HEYGEN_BASE_URL"), ("liveavatar", "LIVEAVATAR_BASE_URL")):
        if env.get(var):
            sub = raw.setdefault(section, {})
            if isinstance(sub, dict):
                sub["base_url"] = env[var]
    config = parse(raw)
    if config.secrets_file is not None:
        env = {**_read_env_file(config.secrets_file.expanduser()), **env}
    secrets = _secrets_from(env)
    if config.provider == "auto":
        config = config.model_copy(update={"provider": _auto_provider(secrets)})
    return Settings(config=config, secrets=secrets, source=source)


def _auto_provider(secrets: Secrets) -> ProviderName:
    if secrets.liveavatar_api_key is not None:
        return "liveavatar"
    if secrets.heygen_api_key is not None:
        return "heygen"
    return "demo"


def parse(raw: Mapping[str, Any]) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError([_describe(err) for err in exc.errors()]) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read config file: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError([f"{path}: not valid YAML{where}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of keys, not a list or value"])
    return data


def _read_env_file(path: Path) -> dict[str, str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError([f"secrets_file: cannot read {path}: {exc.strerror}"]) from None
    values: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not name.strip().isidentifier():
            raise ConfigError([f"secrets_file: {path} line {number} is not NAME=value"])
        values[name.strip()] = value.strip().strip("'\"")
    return values


def _secrets_from(env: Mapping[str, str]) -> Secrets:
    """Each secret from its own variable, by name (the fields' order does not matter)."""

    def secret(var: str) -> Secret | None:
        value = env.get(var, "").strip()
        if not value:
            return None
        log.register_secret(value)
        return Secret(value)

    return Secrets(
        heygen_api_key=secret("HEYGEN_API_KEY"),
        liveavatar_api_key=secret("LIVEAVATAR_API_KEY"),
        livekit_api_key=secret("LIVEKIT_API_KEY"),
        livekit_api_secret=secret("LIVEKIT_API_SECRET"),
        control_token=secret("HEYGEN_BRIDGE_TOKEN"),
    )


def _describe(err: Mapping[str, Any]) -> str:
    """One line per problem: the key, the bad value, and what is allowed."""
    loc = ".".join(str(part) for part in err["loc"]) or "(top level)"
    value = err.get("input")
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = _allowed_keys(err["loc"][:-1])
        guess = difflib.get_close_matches(str(err["loc"][-1]), allowed, n=1)
        tip = f"; did you mean '{guess[0]}'?" if guess else ""
        return f"{loc}: unknown key{tip} (allowed here: {', '.join(allowed)})"
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        options = expected.replace("'", "").replace(" or ", ", ")
        return f"{loc}: {value!r} is not one of {options}"
    if kind == "value_error":
        return f"{loc}: {ctx.get('error', err['msg'])}"
    return f"{loc}: {value!r} is invalid: {err['msg'][0].lower()}{err['msg'][1:]}"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = Config
    for part in loc:
        annotation = model.model_fields[str(part)].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def changed_keys(old: Config, new: Config) -> list[str]:
    """The dotted keys whose values differ between two configs (``camera.fit``,
    ``presets.hello.text``, ``presets.bye`` for a preset added or removed), in a stable order:
    what a reload reports as applied or needing a restart."""
    return _diff(old.model_dump(mode="json"), new.model_dump(mode="json"), "")


def _diff(old: Any, new: Any, prefix: str) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = [*old, *(k for k in new if k not in old)]
        return [
            changed
            for key in keys
            for changed in _diff(old.get(key), new.get(key), f"{prefix}{key}.")
        ]
    return [] if old == new else [prefix.rstrip(".")]


def redacted_dump(settings: Settings) -> dict[str, Any]:
    """The configuration as shown by ``config show``: secrets as present/absent only."""
    data = settings.config.model_dump(mode="json")
    data["secrets"] = {
        name: ("set" if present else "not set")
        for name, present in settings.secrets.present().items()
    }
    return data
