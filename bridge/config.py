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
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bridge import log
from bridge.errors import ConfigError

RENEW_MARGIN_S = 30.0


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
    # Open the next session this long before the duration limit (make-before-break renewal):
    # time for it to start and send its first frame, and for an utterance to finish.
    renew_margin_s: Annotated[float, Field(ge=2, le=600)] = RENEW_MARGIN_S


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


_COLOR = r"^#[0-9A-Fa-f]{6}$"


class BackgroundConfig(_Section):
    """What happens to the avatar's background (bridge/pipeline/background.py): keep it,
    key it to a colour or a picture for the camera, or key it only for the overlay page's
    alpha.  The key has the settings of OBS's Chroma Key filter, on OBS's scales."""

    mode: Literal["keep", "color", "image", "alpha"] = "keep"
    # auto: the colour of the frame's border (no key when the border is grey).
    key_color: Annotated[str, Field(pattern=r"^(auto|green|blue|magenta|#[0-9A-Fa-f]{6})$")] = (
        "auto"
    )
    # OBS says 400 for its pure-green key; the auto key is the screen's own colour, nearer
    # to the subject's, so less is the default here.
    similarity: Annotated[int, Field(ge=1, le=1000)] = 200
    smoothness: Annotated[int, Field(ge=1, le=1000)] = 80
    spill: Annotated[int, Field(ge=1, le=1000)] = 100
    # mode color: the new background; the default is a clean key green for OBS's filter.
    color: Annotated[str, Field(pattern=_COLOR)] = "#00FF00"
    image: Path | None = None  # mode image: the picture, scaled to fill

    @model_validator(mode="after")
    def _image_given(self) -> BackgroundConfig:
        if self.mode == "image" and self.image is None:
            raise ValueError("mode 'image' needs image: the path of a picture")
        return self


class VideoConfig(_Section):
    background: BackgroundConfig = BackgroundConfig()


class DemoConfig(_Section):
    # green: the demo avatar on a solid green screen, as some LiveAvatar avatars are.
    background: Literal["studio", "green"] = "studio"


class MicrophoneConfig(_Section):
    enabled: bool = True
    sink_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] = "heygen_avatar_sink"
    # The null sink the avatar's voice plays into: an internal part that no one should pick
    # as their output (the meeting's sound would then go out on the avatar's microphone).
    sink_description: str = "heygen-bridge internal (do not select)"
    source_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] = "heygen_avatar_mic"
    source_description: str = "HeyGen Avatar Mic"
    make_default: bool = False
    jitter_buffer_ms: Annotated[int, Field(ge=0, le=1000)] = 60
    av_offset_ms: Annotated[int, Field(ge=-1000, le=1000)] = 0
    output_device: str | None = None


class ListenConfig(_Section):
    """The avatar hears the meeting (bridge/source/uplink.py): the meeting app plays into a
    virtual speaker, whose sound goes into the avatar's room as the user's microphone."""

    # off: nothing is heard; conversational: always listening (POST /v1/listen/stop mutes);
    # push-to-talk: heard only between POST /v1/listen/start and /v1/listen/stop.
    mode: Literal["off", "conversational", "push-to-talk"] = "off"
    speaker_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] = "heygen_avatar_ears"
    speaker_description: str = "HeyGen Avatar Ears (meeting sound in)"
    # Energy voice activity: sound at least this loud (dBFS, RMS over 20 ms) opens the uplink;
    # it stays open this long after the last loud block, and the pre-roll before the first
    # one goes too (the start of the first word is quieter than the threshold).
    threshold_dbfs: Annotated[float, Field(ge=-90, le=0)] = -45.0
    hangover_ms: Annotated[int, Field(ge=0, le=5000)] = 600
    pre_roll_ms: Annotated[int, Field(ge=0, le=1000)] = 200


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


TwitchRole = Literal["everyone", "subscriber", "vip", "moderator", "broadcaster"]
_TWITCH_WORD = r"^[A-Za-z0-9_-]{1,32}$"


class TwitchModeratorCommands(_Section):
    # The command words (after the prefix) moderators and the broadcaster use.
    skip: Annotated[str, Field(pattern=_TWITCH_WORD)] = "skip"
    clear: Annotated[str, Field(pattern=_TWITCH_WORD)] = "clear"
    pause: Annotated[str, Field(pattern=_TWITCH_WORD)] = "pause"
    resume: Annotated[str, Field(pattern=_TWITCH_WORD)] = "resume"


class TwitchConfig(_Section):
    """Twitch chat drives the avatar (bridge/control/twitch); the token comes from TWITCH_TOKEN."""

    enabled: bool = False
    channels: list[Annotated[str, Field(pattern=r"^#?[A-Za-z0-9_]{1,25}$")]] = []
    prefix: Annotated[str, Field(min_length=1, max_length=8, pattern=r"^\S+$")] = "!"
    commands: list[Annotated[str, Field(pattern=_TWITCH_WORD)]] = ["say"]
    chat_commands: list[Annotated[str, Field(pattern=_TWITCH_WORD)]] = []
    allow: list[TwitchRole] = ["everyone"]
    min_bits: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    rewards: list[Annotated[str, Field(min_length=1, max_length=64)]] = []
    chat_rewards: list[Annotated[str, Field(min_length=1, max_length=64)]] = []
    user_cooldown_s: Annotated[float, Field(ge=0, le=86_400)] = 30.0
    global_cooldown_s: Annotated[float, Field(ge=0, le=86_400)] = 0.0
    user_queued: Annotated[int, Field(ge=0, le=10_000)] = 2
    max_queued: Annotated[int, Field(ge=0, le=10_000)] = 10
    max_length: Annotated[int, Field(ge=1, le=500)] = 500
    banned_words: list[Annotated[str, Field(min_length=1)]] = []
    banned_patterns: list[Annotated[str, Field(min_length=1)]] = []
    links: Literal["strip", "reject", "allow"] = "strip"
    first_time: Literal["allow", "hold"] = "allow"
    moderator_commands: TwitchModeratorCommands = TwitchModeratorCommands()
    replies: bool = False
    keepalive_s: Annotated[int, Field(ge=10, le=600)] = 30
    irc_url: str = "wss://irc-ws.chat.twitch.tv:443"
    eventsub_url: str = "wss://eventsub.wss.twitch.tv/ws"
    helix_url: str = "https://api.twitch.tv/helix"
    validate_url: str = "https://id.twitch.tv/oauth2/validate"

    @model_validator(mode="after")
    def _consistent(self) -> TwitchConfig:
        if self.enabled and not self.channels:
            raise ValueError("channels: name at least one channel when twitch is enabled")
        for pattern in self.banned_patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"banned_patterns: {pattern!r} is not a regex: {exc}") from None
        return self


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
    video: VideoConfig = VideoConfig()
    demo: DemoConfig = DemoConfig()
    microphone: MicrophoneConfig = MicrophoneConfig()
    listen: ListenConfig = ListenConfig()
    control: ControlConfig = ControlConfig()
    # Named texts for one-press buttons: POST or GET /v1/presets/{name}.
    presets: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")], PresetConfig] = {}
    twitch: TwitchConfig = TwitchConfig()
    log: LogConfig = LogConfig()

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        if (self.livekit.url is None) != (self.livekit.room is None):
            raise ValueError("livekit.url and livekit.room must be given together")
        mic = self.microphone
        if self.listen.speaker_name in (mic.sink_name, mic.source_name):
            raise ValueError(
                "listen.speaker_name: must differ from microphone.sink_name and "
                "microphone.source_name (the avatar would hear its own voice)"
            )
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
    twitch_token: Secret | None = None  # TWITCH_TOKEN
    twitch_client_id: Secret | None = None  # TWITCH_CLIENT_ID

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
        twitch_token=secret("TWITCH_TOKEN"),
        twitch_client_id=secret("TWITCH_CLIENT_ID"),
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
