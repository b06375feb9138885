"""The `[alerts]` config table: rules, channels, routes and the retry policy, validated once.

`monitor.settings.Settings.alerts` keeps the raw TOML table; `AlertSettings.model_validate`
turns it into this typed, frozen schema, so a typo is an error at start, not a silently
ignored option. The defaults need no network: every rule goes to a `log` channel that
appends JSON lines to `var/alerts.log`.

Secrets are never in the config: a channel names the environment variable that holds its
secret (`password_env`, `secret_env`), and `alerts.channels` reads it into a `SecretStr`
when the channel is built.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from monitor.settings import Duration, Section

Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ENV_VAR = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def _env_var_name(name: str | None) -> str | None:
    if name is not None and not _ENV_VAR.match(name):
        raise ValueError(f"{name!r} is not an environment variable name, e.g. FINMON_SMTP_PASSWORD")
    return name


DEFAULT_THRESHOLDS: dict[Severity, float] = {"warning": 3.0, "critical": 5.0}


class RuleSettings(Section):
    """When a window of one dimension counts as a negative spike against its own baseline."""

    name: str = Field(pattern=_NAME)
    dimension: Literal["all", "topic", "ticker"]
    window: Duration
    """One of `[windows] sizes`; checked when the service is built."""
    baseline_windows: int = Field(default=12, ge=2, le=2000)
    """How many preceding windows of the same key form the baseline (missing ones count 0)."""
    metric: Literal["share", "count", "share_and_count", "share_or_count"] = "share"
    """`share`: z of the bearish share against the baseline share (a two-proportion test);
    `count`: robust z of the bearish count against the baseline's median and MAD;
    the other two combine both z-scores with min (and) or max (or)."""
    count: Literal["items", "stories"] = "items"
    """What the rule counts: every stored item, or stories (`news_items.is_novel`: a story
    carried by five outlets counts once, so syndication alone cannot make a spike).
    Windows stored before migration 0006 have no story counts."""
    min_volume: int = Field(default=10, ge=1)
    """Items the window needs before it can fire: one bearish item on a quiet key never does."""
    min_bearish: int = Field(default=3, ge=1)
    min_share_increase: float = Field(default=0.15, ge=0, le=1)
    """The share must also exceed the baseline share by this much (ignored by `count`), so a
    huge window cannot fire on a statistically significant but tiny change."""
    prior_share: float = Field(default=0.15, gt=0, lt=1)
    prior_weight: float = Field(default=20, gt=0)
    """The baseline share starts from `prior_share` worth `prior_weight` items, so a key with
    little or no history still has a sensible, uncertain baseline."""
    thresholds: dict[Severity, float] = Field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    """The score (a z-score) from which each severity fires."""
    resolve_z: float = 1.5
    """Hysteresis: a firing alert stays firing while its windows score at least this."""
    resolve_after: Duration | None = None
    """Resolve once no window scored `resolve_z` for this long after the last anomalous one
    (or `alerts.reopen_within`, if longer); default: one window."""
    repeat_interval: Duration = timedelta(hours=4)

    @field_validator("window")
    @classmethod
    def _whole_seconds(cls, window: timedelta) -> timedelta:
        if window.total_seconds() < 1 or window.total_seconds() % 1:
            raise ValueError(f"window {window} must be a whole number of seconds")
        return window

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> Self:
        if not self.thresholds:
            raise ValueError("at least one severity threshold is required")
        ordered = sorted(self.thresholds.items(), key=lambda kv: SEVERITY_RANK[kv[0]])
        values = [v for _, v in ordered]
        if values != sorted(set(values)):
            raise ValueError("thresholds must rise strictly with severity: info, warning, critical")
        if self.resolve_z >= values[0]:
            raise ValueError(f"resolve_z ({self.resolve_z}) must be below the lowest threshold")
        return self

    @property
    def window_seconds(self) -> int:
        return int(self.window.total_seconds())

    @property
    def quiet_period(self) -> timedelta:
        return self.resolve_after if self.resolve_after is not None else self.window

    def severity_for(self, score: float) -> Severity | None:
        """The highest severity whose threshold `score` reaches, if any."""
        reached = [s for s, v in self.thresholds.items() if score >= v]
        return max(reached, key=SEVERITY_RANK.__getitem__, default=None)


class LogChannelSettings(Section):
    """JSON lines to a file and/or stdout: works offline, the default channel."""

    type: Literal["log"]
    path: Path | None = Path("var/alerts.log")
    """Relative paths are relative to the config file's folder."""
    stdout: bool = False

    @model_validator(mode="after")
    def _somewhere(self) -> Self:
        if self.path is None and not self.stdout:
            raise ValueError("a log channel needs a path, stdout = true, or both")
        return self


class EmailChannelSettings(Section):
    type: Literal["email"]
    host: str
    port: int | None = Field(default=None, ge=1, le=65535)
    """Default: 465 for ssl, 587 for starttls, 25 for none."""
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = None
    """The environment variable holding the SMTP password (required with `username`)."""
    from_addr: str
    to_addrs: list[str] = Field(min_length=1)
    subject_prefix: str = "[finmon]"
    timeout: Duration = timedelta(seconds=10)
    ca_file: Path | None = None
    """A CA bundle to verify the server with, instead of the system's."""

    _env = field_validator("password_env")(_env_var_name)

    @model_validator(mode="after")
    def _login_consistent(self) -> Self:
        if (self.username is None) != (self.password_env is None):
            raise ValueError("username and password_env go together")
        if self.username is not None and self.security == "none":
            raise ValueError("refusing to send a password over an unencrypted connection")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or {"ssl": 465, "starttls": 587, "none": 25}[self.security]


class WebhookChannelSettings(Section):
    type: Literal["webhook"]
    url: str
    secret_env: str = "FINMON_WEBHOOK_SECRET"
    """The environment variable holding the HMAC-SHA256 signing secret (required)."""
    timeout: Duration = timedelta(seconds=10)
    ca_file: Path | None = None

    _env = field_validator("secret_env")(_env_var_name)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"webhook url must be http(s)://host/..., got {url!r}")
        return url


ChannelSettings = Annotated[
    LogChannelSettings | EmailChannelSettings | WebhookChannelSettings,
    Field(discriminator="type"),
]


GroupLabel = Literal["rule", "dimension", "key"]


class RouteSettings(Section):
    """Which rules (by name, `*` for all) notify which channels, from which severity up, and
    how their notifications are grouped into messages (as Alertmanager's routes do)."""

    rules: list[str] = Field(default=["*"], min_length=1)
    channels: list[str] = Field(min_length=1)
    min_severity: Severity = "info"
    group_by: list[GroupLabel] = Field(default_factory=list)
    """Alerts that agree on these labels share a group (one message per flush); empty: every
    alert of the route in one group, so a ticker, its topic and the market arrive together."""
    group_wait: Duration = timedelta(seconds=30)
    """How long a new group waits for more alerts before its first message."""
    group_interval: Duration = timedelta(minutes=5)
    """The least time between two messages of one group; changes meanwhile wait for it."""

    @field_validator("group_by")
    @classmethod
    def _unique_labels(cls, labels: list[str]) -> list[str]:
        if len(labels) != len(set(labels)):
            raise ValueError(f"group_by labels must be unique: {labels}")
        return labels


class DeliverySettings(Section):
    """The one retry policy shared by every channel, and the dispatcher's batch limits."""

    max_attempts: int = Field(default=8, ge=1)
    initial_backoff: Duration = timedelta(seconds=5)
    multiplier: float = Field(default=2.0, ge=1)
    max_backoff: Duration = timedelta(minutes=10)
    batch_size: int = Field(default=100, ge=1)
    claim_timeout: Duration = timedelta(minutes=5)
    """A delivery claimed by a worker that died mid-send is retried after this; keep it well
    above the channel timeouts."""

    @model_validator(mode="after")
    def _backoff_ordered(self) -> Self:
        if self.max_backoff < self.initial_backoff:
            raise ValueError("max_backoff must be at least initial_backoff")
        return self


DEFAULT_RULES = [
    RuleSettings(
        name="ticker-negative-spike",
        dimension="ticker",
        window=timedelta(minutes=5),
        count="stories",
        min_volume=5,
        min_bearish=3,
        min_share_increase=0.3,
    ),
    RuleSettings(
        name="topic-negative-spike",
        dimension="topic",
        window=timedelta(hours=1),
        baseline_windows=24,
        min_volume=10,
        min_bearish=5,
        min_share_increase=0.2,
    ),
    RuleSettings(
        name="market-negative-spike",
        dimension="all",
        window=timedelta(minutes=5),
        min_volume=20,
        min_bearish=8,
        min_share_increase=0.15,
    ),
]


class AlertSettings(Section):
    """The validated `[alerts]` table."""

    enabled: bool = True
    evaluate_every: Duration = timedelta(seconds=1)
    """How often the worker judges the windows stored since its last evaluation; alerts
    fire up to this much (plus the evaluation's own time) after the news is stored."""
    sample_headlines: int = Field(default=3, ge=0, le=20)
    """How many of the window's most bearish headlines a notification carries."""
    allowed_lateness: Duration = timedelta(minutes=2)
    """Event time: how far behind the newest item of its partition an item may arrive and
    still count before its window is judged. The watermark is the newest `published_at`
    per input partition minus this, the minimum over the partitions; a window is judged
    (and can open or resolve an incident) once the watermark passes its end."""
    idle_timeout: Duration = timedelta(minutes=1)
    """Processing time: a partition with no item for this long stops holding the watermark
    back; when all are idle, the watermark moves up to the wall clock minus
    `allowed_lateness` (a quiet stream still resolves its incidents). Also the longest that
    judging waits while late items keep arriving (a backlog out of order)."""
    reopen_within: Duration = timedelta(minutes=30)
    """Event time: an anomalous window less than this after (or before) an incident's
    episode belongs to that incident: a key that calms down and fires again within it
    re-opens the same incident silently, and an incident resolves (and says so) only once
    its key stayed calm this long."""
    notify_max_age: Duration = timedelta(hours=1)
    """Processing time: an incident found in a window that ended longer ago than this (a
    replay, a long backlog) is history: stored, with the reason, but never delivered."""
    rules: list[RuleSettings] = Field(default_factory=lambda: list(DEFAULT_RULES))
    channels: dict[str, ChannelSettings] = Field(
        default_factory=lambda: dict[str, ChannelSettings](log=LogChannelSettings(type="log"))
    )
    routes: list[RouteSettings] = Field(default_factory=lambda: [RouteSettings(channels=["log"])])
    delivery: DeliverySettings = DeliverySettings()

    @field_validator("evaluate_every", "idle_timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be more than 0s")
        return value

    @model_validator(mode="after")
    def _references_exist(self) -> Self:
        names = [r.name for r in self.rules]
        if len(names) != len(set(names)):
            raise ValueError(f"rule names must be unique: {names}")
        for name in self.channels:
            if not re.match(_NAME, name):
                raise ValueError(f"bad channel name {name!r}")
        for route in self.routes:
            unknown_rules = set(route.rules) - {"*", *names}
            unknown_channels = set(route.channels) - set(self.channels)
            if unknown_rules:
                raise ValueError(f"route names unknown rules {sorted(unknown_rules)}")
            if unknown_channels:
                raise ValueError(
                    f"route names unknown channels {sorted(unknown_channels)}; "
                    f"defined: {sorted(self.channels)}"
                )
        return self

    def routes_for(self, rule: str, severity: str) -> list[tuple[int, str]]:
        """(route index, channel) for each channel an alert of `rule` at `severity` goes to,
        in config order, once per channel (the first route naming it groups it)."""
        chosen: dict[str, int] = {}
        for index, route in enumerate(self.routes):
            if ("*" in route.rules or rule in route.rules) and SEVERITY_RANK[
                severity
            ] >= SEVERITY_RANK[route.min_severity]:
                for channel in route.channels:
                    chosen.setdefault(channel, index)
        return [(index, channel) for channel, index in chosen.items()]

    def channels_for(self, rule: str, severity: str) -> list[str]:
        """The channels an alert of `rule` at `severity` goes to, in config order, once each."""
        return [channel for _, channel in self.routes_for(rule, severity)]
