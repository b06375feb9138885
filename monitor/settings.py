"""Typed, validated settings: one `config.toml`, overridden by `FINMON_*` environment variables.

Why this shape: every setting is declared once here, so a typo in the file is an error at start
(unknown keys are rejected) instead of a silently ignored option, and secrets are `SecretStr`
so they never print in logs or reprs. Nested keys are overridden with a double underscore,
e.g. `FINMON_DATABASE__URL` or `FINMON_KAFKA__SASL_PASSWORD`.
"""

from __future__ import annotations

import json
import os
from contextvars import ContextVar
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from monitor.durations import parse_duration
from monitor.resources import DEFAULT_ARTIFACT_NAME, bundled_artifact, bundled_artifacts

DEFAULT_CONFIG = Path("config.toml")
"""Looked for in the current directory when neither `-c` nor `$FINMON_CONFIG` names one."""

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _server_list(value: object) -> object:
    """Accept `host:port,host:port` or a JSON list (handy in environment variables)."""
    if isinstance(value, str):
        text = value.strip()
        return (
            json.loads(text)
            if text.startswith("[")
            else [s.strip() for s in text.split(",") if s.strip()]
        )
    return value


ServerList = Annotated[list[str], NoDecode, BeforeValidator(_server_list)]

_config_file: ContextVar[Path | None] = ContextVar("finmon_config_file", default=None)


class Section(BaseModel):
    """Base of every config table: immutable, and unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(Section):
    bootstrap_servers: ServerList = ["127.0.0.1:9092"]
    input_topic: str = "news.raw"
    output_topic: str = "news.classified"
    dead_letter_topic: str = "news.dlq"
    consumer_group: str = "finmon"
    input_partitions: int = Field(default=4, ge=1)
    fetch_max_wait_ms: int = Field(default=100, ge=1, le=30_000)
    topic_replication_factor: int = Field(default=3, ge=1)
    """Replicas of each topic finmon creates, capped at the brokers the cluster has."""
    topic_min_insync_replicas: int = Field(default=2, ge=1)
    """`min.insync.replicas` of those topics, capped at the replication factor less one (so
    one broker may fail without stopping writes), and at least 1."""
    session_timeout: Duration = timedelta(seconds=45)
    """How long the group waits for a silent worker before handing its partitions to the
    others: the pause a crashed worker's partitions see."""
    stall_after: Duration = timedelta(minutes=1)
    """A worker owning partitions with lag whose committed offsets have not moved for this
    long reports not ready and logs why (monitor/progress.py)."""

    @field_validator("session_timeout", "stall_after")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 1:
            raise ValueError("must be at least 1 second")
        return value

    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None


class DatabaseSettings(Section):
    url: SecretStr = SecretStr("sqlite:///var/finmon.sqlite3")
    """A SQLAlchemy URL. A relative SQLite path is relative to the config file's folder."""
    pool_size: int = Field(default=5, ge=1)
    lock_timeout_ms: int = Field(default=5000, ge=0)


class BatchingSettings(Section):
    max_batch_size: int = Field(default=128, ge=1, le=4096)
    max_wait_ms: int = Field(default=200, ge=1)


class WindowSettings(Section):
    sizes: list[Duration] = [timedelta(minutes=1), timedelta(minutes=5), timedelta(hours=1)]

    @field_validator("sizes")
    @classmethod
    def _whole_seconds(cls, sizes: list[timedelta]) -> list[timedelta]:
        if not sizes:
            raise ValueError("at least one window size is required")
        for size in sizes:
            if size.total_seconds() < 1 or size.total_seconds() % 1:
                raise ValueError(f"window size {size} must be a whole number of seconds")
        return sorted(set(sizes))


class ModelSettings(Section):
    artifact: str = DEFAULT_ARTIFACT_NAME
    """A model artifact shipped with finmon (a directory of `models/`), by name."""
    path: Path | None = None
    """An artifact directory instead (relative paths are relative to the config file's
    folder); takes precedence over `artifact`."""
    base_path: Path | None = None
    """A local Hugging Face encoder directory; default: the one the artifact names."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(default=None, ge=1)
    """CPU cores inference uses; default: all CPUs."""
    own_process: bool = True
    """The worker runs the model in a process of its own, so inference never waits for the
    GIL behind Kafka and SQL work (replay, which does one thing at a time, does not)."""
    cpu_parallelism: Literal["split-batch", "intra-op"] = "split-batch"
    """How those cores share a batch: `threads + 2` slices of it, each run single-threaded
    (robust when the worker's other work shares the cores), or torch splits every op."""

    @model_validator(mode="after")
    def _artifact_is_bundled(self) -> ModelSettings:
        # checked at start, with the other settings, rather than when the model loads
        if self.path is None and self.artifact not in bundled_artifacts():
            shipped = ", ".join(bundled_artifacts()) or "none"
            raise ValueError(f"no bundled model artifact {self.artifact!r} (shipped: {shipped})")
        return self


class FeedSettings(Section):
    """One feed `finmon ingest` polls (`[[ingest.feeds]]`)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    """Stable: it is part of every item id from this feed, and its metrics label."""
    url: str = Field(pattern=r"^https?://")
    every: Duration = timedelta(minutes=5)
    tickers: list[str] = []
    """Added to every item of the feed (a company's own newsroom feed, say)."""
    lang: str | None = None
    """The feed's language, when its entries do not say."""
    max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    """A response body larger than this (after gzip) is refused, unread beyond it."""
    max_entries: int = Field(default=200, ge=1)
    """Entries taken per poll (the newest first, in feed order)."""
    timeout: Duration = timedelta(seconds=20)
    article_text: bool = False
    """Fetch each new entry's link and use the page's main text (trafilatura) as the body."""
    article_max_per_poll: int = Field(default=20, ge=1)
    """Articles fetched per poll at most; later entries keep the feed's summary."""
    article_max_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    article_timeout: Duration = timedelta(seconds=10)

    @field_validator("article_text")
    @classmethod
    def _extractor_installed(cls, wanted: bool) -> bool:
        if wanted:
            try:
                import trafilatura  # noqa: F401
            except ImportError:
                raise ValueError(
                    "article_text needs trafilatura: pip install 'finmon[articles]'"
                ) from None
        return wanted


class IngestSettings(Section):
    feeds: list[FeedSettings] = []
    """The feeds `finmon ingest` polls; names must be unique."""
    user_agent: str = "finmon-ingest/1.0 (+https://github.com/finmon/finmon; news sentiment)"
    max_redirects: int = Field(default=5, ge=0, le=20)
    max_backoff: Duration = timedelta(hours=1)
    """Errors back a feed off exponentially (with jitter) up to this; Retry-After is honoured."""
    seen_horizon: Duration = timedelta(days=30)
    """How long published ids are remembered per feed, so a restart never republishes."""
    web_port: int = Field(default=6067, ge=0, le=65535)
    """`finmon ingest`'s /health and /metrics (on `web.host`)."""
    max_headline_chars: int = Field(default=1000, ge=16)
    max_body_chars: int = Field(default=20_000, ge=0)
    """Longer bodies are stored truncated to this many characters (never rejected)."""
    max_message_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    """Messages larger than this are dead-lettered unread, which bounds memory."""
    max_future_skew: Duration = timedelta(minutes=10)
    """`published_at` further than this in the future is rejected: a clock or feed bug."""
    max_age: Duration = timedelta(days=365)
    """`published_at` older than this is rejected: it would only rewrite history."""
    max_tickers: int = Field(default=100, ge=1, le=100_000)
    """Distinct tickers (given plus cashtags) one item may name; more is dead-lettered."""

    @field_validator("feeds")
    @classmethod
    def _unique_names(cls, feeds: list[FeedSettings]) -> list[FeedSettings]:
        names = [f.name for f in feeds]
        if len(names) != len(set(names)):
            raise ValueError(f"feed names must be unique: {names}")
        return feeds


class NoveltySettings(Section):
    """Story linking (`monitor.novelty`): which stored items retell a story already seen."""

    enabled: bool = True
    horizon: Duration = timedelta(hours=24)
    jaccard: float = Field(default=0.6, gt=0, le=1)
    containment: float = Field(default=0.75, gt=0, le=1)


class WebSettings(Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=6066, ge=0, le=65535)


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = Field(default=False, alias="json")


class RetentionSettings(Section):
    news_items_max_age: Duration = timedelta(days=90)
    windows_max_age: Duration = timedelta(days=730)
    run_every: Duration = timedelta(hours=1)


class Settings(BaseSettings):
    """All of finmon's settings."""

    model_config = SettingsConfigDict(
        env_prefix="FINMON_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        populate_by_name=True,
    )

    kafka: KafkaSettings = KafkaSettings()
    database: DatabaseSettings = DatabaseSettings()
    batching: BatchingSettings = BatchingSettings()
    windows: WindowSettings = WindowSettings()
    model: ModelSettings = ModelSettings()
    ingest: IngestSettings = IngestSettings()
    novelty: NoveltySettings = NoveltySettings()
    web: WebSettings = WebSettings()
    logging: LoggingSettings = LoggingSettings()
    retention: RetentionSettings = RetentionSettings()
    alerts: dict[str, Any] = {}
    """Validated by `alerts.rules.AlertSettings`; kept loose here so alerts own their schema."""

    config_dir: Path = Field(default_factory=Path.cwd)
    """Where relative paths of the config point from: the config file's folder (the
    current directory when there is no file)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _config_file.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    def resolve(self, path: Path) -> Path:
        """A path from the config, made absolute against the config file's folder."""
        return path if path.is_absolute() else (self.config_dir / path)

    @property
    def database_url(self) -> str:
        """The database URL, with a relative SQLite path anchored at the config folder."""
        url = self.database.url.get_secret_value()
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str(self.resolve(Path(url[len(prefix) :])))
        return url

    def secret_values(self) -> list[str]:
        """Every secret value in these settings (for log redaction), found by type."""
        found: list[str] = []

        def walk(value: Any, key: str = "") -> None:
            if isinstance(value, SecretStr):
                found.append(value.get_secret_value())
            elif key.endswith("_env") and isinstance(value, str) and os.environ.get(value):
                found.append(os.environ[value])  # alerts name the env var holding a secret
            elif isinstance(value, BaseModel):
                for name in type(value).model_fields:
                    walk(getattr(value, name))
            elif isinstance(value, dict | list | tuple):
                pairs = value.items() if isinstance(value, dict) else (("", v) for v in value)
                for inner_key, inner in pairs:
                    walk(inner, str(inner_key))

        walk(self)
        return found

    @property
    def model_path(self) -> Path:
        """The artifact directory: `model.path`, else the bundled `model.artifact`."""
        if self.model.path is not None:
            return self.resolve(self.model.path)
        return bundled_artifact(self.model.artifact)


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Load settings from `path`, else `$FINMON_CONFIG`, else `./config.toml`.

    A missing explicit file is an error; a missing `./config.toml` means built-in defaults,
    with relative paths (the SQLite file) under the current directory.
    """
    explicit = path or os.environ.get("FINMON_CONFIG")
    config = Path(explicit) if explicit else DEFAULT_CONFIG
    if explicit and not config.is_file():
        raise FileNotFoundError(f"config file not found: {config}")
    token = _config_file.set(config if config.is_file() else None)
    try:
        return Settings(config_dir=config.resolve().parent, **overrides)
    finally:
        _config_file.reset(token)
