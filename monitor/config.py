"""Configuration: one frozen, validated tree loaded from ``config.toml``.

:func:`load_settings` reports every problem with its key path and raises
:class:`ConfigError`; the CLI turns that into exit code 2. ``${ENV}`` is
resolved only in fields typed as secrets.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from checks import CHECK_KINDS
from checks.base import ID_PATTERN, CheckSettings
from monitor.fields import (
    Duration,
    DurationOrZero,
    LocalizedText,
    SecretText,
    StrList,
    Text,
    parse_duration,
    parse_ratio,
    shown,
)

Language = Literal["id", "en"]


class ConfigError(Exception):
    """The configuration is invalid. ``errors`` holds ``(key_path, message)`` pairs."""

    def __init__(self, errors: Sequence[tuple[str, str]], *, source: str = "config") -> None:
        self.errors = list(errors)
        self.source = source
        lines = [f"{path}: {message}" for path, message in self.errors]
        super().__init__(f"{source}: {len(self.errors)} error(s)\n" + "\n".join(lines))


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class S3Settings(_Frozen):
    """``[site.s3]``: also publish the page to an S3-compatible bucket (needs ``pantau[s3]``).

    Credentials come from the environment as boto3 reads them (``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``) or from the two keys below as ``${ENV}`` references.
    """

    bucket: str = Field(min_length=3, max_length=63)
    #: A folder inside the bucket ("" for its root).
    prefix: str = ""
    #: The endpoint of an S3-compatible service (MinIO, R2, ...); unset for AWS.
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: SecretText | None = None
    secret_access_key: SecretText | None = None


class SiteSettings(_Frozen):
    """``[site]``: the public status page."""

    #: Page title.
    title: Text = LocalizedText(id="Status Layanan", en="Service Status")
    #: Public address of the page, used in alerts and feeds (for example ``https://status.example.id``).
    base_url: str = ""
    #: IANA zone in which times are shown.
    timezone: str = "Asia/Jakarta"
    #: Languages of the page; the first is served at ``/``.
    languages: tuple[Language, ...] = ("id", "en")
    #: Where ``pantau publish`` and ``pantau run`` write the site.
    output_dir: Path = Path("site")
    #: How often ``pantau run`` republishes (it also publishes on every state change).
    publish_interval: Duration = timedelta(seconds=30)
    #: Also upload the page to an S3-compatible bucket.
    s3: S3Settings | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {shown(value)} (use an IANA name such as 'Asia/Jakarta')"
            ) from None
        return value

    @field_validator("languages")
    @classmethod
    def _some_language(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError("list each language once, at least one")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class StorageSettings(_Frozen):
    """``[storage]``: where results, incidents and deliveries are kept."""

    #: SQLAlchemy URL: ``sqlite:///pantau.db`` or ``postgresql+psycopg://user:${PGPASSWORD}@host/db``.
    url: SecretText = Field(default="sqlite:///pantau.db", validate_default=True)
    #: Days raw probe results are kept; older ones are deleted once rolled up (the hourly
    #: and daily rollups, which the page reads, are kept for the whole programme).
    raw_days: int = Field(default=14, ge=1, le=3650)
    #: PostgreSQL connections kept open per process, and extra ones allowed under load
    #: (the leader's lock connection is one more, outside the pool).
    pool_size: int = Field(default=5, ge=1, le=100)
    max_overflow: int = Field(default=5, ge=0, le=100)
    #: How long a step waits for a free pooled connection before failing.
    pool_timeout: Duration = timedelta(seconds=10)
    #: How long opening a connection to the server may take.
    connect_timeout: Duration = timedelta(seconds=5)
    #: Results kept in memory while the store cannot be written (disk full, read only,
    #: server away), written when it returns; the oldest beyond this are dropped, counted.
    buffer: int = Field(default=10_000, ge=0, le=10_000_000)


class ComponentSettings(_Frozen):
    """``[[components]]``: a part of the service the public cares about."""

    id: str = Field(pattern=ID_PATTERN)
    name: Text
    description: Text | None = None


class DetectionSettings(_Frozen):
    """``[detection]``: when a component counts as down and as recovered."""

    #: Consecutive failing runs of a check before its component is down.
    failures_to_down: int = Field(default=2, ge=1, le=100)
    #: Consecutive passing runs of a check before its component has recovered.
    passes_to_recover: int = Field(default=2, ge=1, le=100)
    #: Open an incident automatically when a component goes down.
    auto_incidents: bool = True
    #: Regions that must see a check fail before it counts as failing; default a
    #: majority of the regions that reported within the last two intervals.
    quorum: int | None = Field(default=None, ge=1, le=100)
    #: A region that has not reported a check for this long leaves its quorum (and shows
    #: as silent in ``pantau status``); default: two of the check's intervals.
    region_grace: Duration | None = None


class AlertRule(_Frozen):
    """``[[alerts.rules]]``: when engineers are alerted.

    - ``error_rate``: the share of failing probe runs over ``window`` is ``above`` a ratio
      (``0.2`` or ``"20%"``), with at least ``min_probes`` runs in the window;
    - ``latency``: the ``percentile`` (default p95) of response times over ``window`` is
      ``above`` a duration (``"2s"``);
    - ``consecutive``: a check failed ``failures`` runs in a row (default
      ``[detection] failures_to_down``) in a quorum of regions;
    - ``complaints``: public complaints spike while every probe is green (a blind spot:
      people report trouble the probes do not see); it holds for ``window`` after the spike.

    A rule covers one ``component``, one ``check``, or (neither given) every component,
    each on its own. Its condition must hold for ``for`` before the alert fires.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    id: str = Field(pattern=ID_PATTERN)
    kind: Literal["error_rate", "latency", "consecutive", "complaints"]
    component: str | None = None
    check: str | None = None
    #: The threshold: a ratio for ``error_rate``, seconds for ``latency``.
    above: float | None = None
    window: Duration = timedelta(minutes=2)
    min_probes: int = Field(default=3, ge=1, le=100_000)
    percentile: float = Field(default=95, gt=0, le=100)
    failures: int | None = Field(default=None, ge=1, le=100)
    for_: DurationOrZero = Field(default=timedelta(0), alias="for")

    @field_validator("above", mode="before")
    @classmethod
    def _threshold(cls, value: Any, info: ValidationInfo) -> Any:
        kind = info.data.get("kind")
        if value is None:
            return None
        if kind == "error_rate":
            return parse_ratio(value)
        if kind == "latency":
            return parse_duration(value).total_seconds()
        raise ValueError("'above' is for error_rate and latency rules; use 'failures'")

    @model_validator(mode="after")
    def _complete(self) -> AlertRule:
        if self.component and self.check:
            raise ValueError("give 'component' or 'check', not both")
        if self.kind == "complaints" and (self.component or self.check):
            raise ValueError("a complaints rule covers the whole service: no component or check")
        if self.kind in ("error_rate", "latency") and self.above is None:
            raise ValueError(f"a {self.kind} rule needs 'above'")
        return self


#: How long the default ``complaints`` rule holds after a blind-spot spike.
COMPLAINT_WINDOW = timedelta(minutes=30)


class AlertSettings(_Frozen):
    """``[alerts]``: when and where engineers are told, through Apprise URLs."""

    #: Apprise URLs (``json://``, ``tgram://``, ``slack://`` ...); may hold ``${ENV}`` secrets.
    notify: tuple[SecretText, ...] = ()
    #: The rules; without any, one ``consecutive`` rule covers every component.
    rules: tuple[AlertRule, ...] = ()
    #: How often rules are evaluated.
    evaluation_interval: Duration = timedelta(seconds=5)
    #: A new group's first message waits this long for other alerts to join it.
    group_wait: Duration = timedelta(seconds=10)
    #: Alerts joining a group after its first message are told at most this often.
    group_interval: Duration = timedelta(minutes=5)
    #: A reminder while a group keeps firing.
    repeat_interval: Duration = timedelta(hours=1)
    #: Attempts per message and target before it is marked failed.
    max_attempts: int = Field(default=8, ge=1, le=100)
    #: First retry delay; doubles on each attempt up to ``max_backoff``.
    backoff: Duration = timedelta(seconds=5)
    max_backoff: Duration = timedelta(minutes=10)
    #: Timeout of one delivery attempt.
    timeout: Duration = timedelta(seconds=10)


class MetricsSettings(_Frozen):
    """``[metrics]``: Prometheus metrics of ``pantau run``."""

    #: ``host:port`` to serve ``/metrics`` on (for example ``127.0.0.1:9464``); unset, none.
    listen: str | None = None

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"use host:port, such as '127.0.0.1:9464', not {shown(value)}")
        return value

    @property
    def address(self) -> tuple[str, int]:
        assert self.listen is not None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class ProbeSettings(_Frozen):
    """``[probe]``: the probing process."""

    #: Name of the region this process probes from.
    region: str = Field(default="default", pattern=ID_PATTERN)
    #: Probes running at once, at most.
    concurrency: int = Field(default=50, ge=1, le=10_000)
    #: Random delay added to each check's schedule so probes do not all start together.
    jitter: Duration = timedelta(seconds=1)


class SocialSettings(_Frozen):
    """``[social]``: listening to the public (complaint volume against normal).

    ``sources``: ``x`` (volume from X's recent-counts API, samples from its recent search,
    with ``bearer_token``) and ``file`` (JSONL or CSV posts exported by a social-listening
    tool, read from ``file`` as it grows). Counts are kept per minute from the first day,
    since X reaches back only seven days and the baseline needs weeks.
    """

    sources: tuple[Literal["x", "file"], ...] = ()
    #: Words that name the service; the X query is built from them and the outage words.
    keywords: StrList = ("prakerja",)
    #: The X query, replacing the one built from ``keywords``.
    query: str | None = None
    #: Languages of the posts looked at (X's ``lang:`` operator).
    languages: tuple[Language, ...] = ("id", "en")
    #: X API v2 app-only bearer token (``${X_BEARER_TOKEN}``).
    bearer_token: SecretText | None = None
    #: A growing JSONL or CSV file of posts, relative to the config (the ``file`` source).
    file: Path | None = None
    #: How often sources are polled.
    poll_interval: Duration = timedelta(minutes=1)
    #: Posts fetched per poll as samples (X's search: 10 to 100).
    sample_size: int = Field(default=20, ge=10, le=100)
    #: Spike detection works on counts per bucket of this length.
    bucket: Duration = timedelta(minutes=5)
    #: Show complaint volume against normal (aggregates only) on public incident pages.
    public_volume: bool = False

    @model_validator(mode="after")
    def _sources_configured(self) -> SocialSettings:
        if "x" in self.sources and self.bearer_token is None:
            raise ValueError("the x source needs bearer_token (for example '${X_BEARER_TOKEN}')")
        if "file" in self.sources and self.file is None:
            raise ValueError("the file source needs 'file' (a JSONL or CSV of posts)")
        return self

    def x_query(self) -> str:
        """The X search query: ``query``, or one built from ``keywords`` and outage words."""
        if self.query:
            return self.query
        names = " OR ".join(self.keywords)
        names = f"({names})" if len(self.keywords) > 1 else names
        langs = " OR ".join(f"lang:{lang}" for lang in self.languages)
        langs = f" ({langs})" if len(self.languages) > 1 else f" {langs}"
        return (
            f'{names} (error OR eror OR gagal OR "tidak bisa" OR "gak bisa" OR "ga bisa" OR '
            f"gabisa OR down OR lemot OR otp) -is:retweet{langs}"
        )


class XPostSettings(_Frozen):
    """``[incidents.x]``: the programme's X account (OAuth 1.0a user context, all from ``${ENV}``)."""

    api_key: SecretText
    api_secret: SecretText
    access_token: SecretText
    access_token_secret: SecretText
    #: Languages posted, in order, in one thread.
    languages: tuple[Language, ...] = ("id", "en")


class IncidentSettings(_Frozen):
    """``[incidents]``: the comms workflow."""

    #: A folder of extra statement templates (``NAME.id.txt`` / ``NAME.en.txt``), relative to the config.
    templates_dir: Path | None = None
    #: Posting statements to X (``pantau incident update ... --post-x``).
    x: XPostSettings | None = None


class EventSettings(_Frozen):
    """``[[events]]``: a planned high-traffic event (a wave opening) or maintenance.

    During a ``surge`` the checks of its components run at their ``surge_interval``
    (default a third of their interval), so detection is fastest when failure is likeliest.
    """

    id: str = Field(pattern=ID_PATTERN)
    kind: Literal["surge", "maintenance"]
    name: Text
    #: What the public should know (shown on the page), per language.
    message: Text | None = None
    #: Start and end; a time without an offset is taken in ``[site] timezone``.
    start: datetime
    end: datetime
    #: Components it concerns; empty means all.
    components: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> EventSettings:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a time zone")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    def active(self, now: datetime) -> bool:
        return self.start <= now < self.end

    def covers(self, component_id: str) -> bool:
        return not self.components or component_id in self.components


def _localize(event: Any, zone: ZoneInfo) -> Any:
    if not isinstance(event, Mapping):
        return event
    fixed = dict(event)
    for key in ("start", "end"):
        value = fixed.get(key)
        if isinstance(value, datetime) and value.tzinfo is None:
            fixed[key] = value.replace(tzinfo=zone)
    return fixed


def _check_config_type() -> Any:
    """The union of the registered kinds' settings models, told apart by ``kind``."""
    models = tuple(cls.config_model for cls in CHECK_KINDS.values())
    if len(models) == 1:
        return models[0]
    return Annotated[Union[models], Field(discriminator="kind")]  # noqa: UP007


if TYPE_CHECKING:
    CheckConfig: TypeAlias = CheckSettings
else:
    #: One entry of ``[[checks]]``: the settings model of its ``kind`` (from the registry,
    #: so a new kind needs no edit here).
    CheckConfig = _check_config_type()


class Settings(_Frozen):
    """The whole validated configuration."""

    site: SiteSettings = Field(default_factory=SiteSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    probe: ProbeSettings = Field(default_factory=ProbeSettings)
    detection: DetectionSettings = Field(default_factory=DetectionSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    incidents: IncidentSettings = Field(default_factory=IncidentSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    social: SocialSettings = Field(default_factory=SocialSettings)
    components: tuple[ComponentSettings, ...] = ()
    checks: tuple[CheckConfig, ...] = ()
    events: tuple[EventSettings, ...] = ()
    #: Folder of the config file; relative paths in it are taken from here.
    base_dir: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _events_in_site_zone(cls, data: Any) -> Any:
        """Times of ``[[events]]`` written without an offset are in ``[site] timezone``."""
        if not isinstance(data, Mapping) or not isinstance(data.get("events"), list):
            return data
        site = data.get("site")
        name = site.get("timezone", "Asia/Jakarta") if isinstance(site, Mapping) else "Asia/Jakarta"
        try:
            zone = ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            return data  # reported on [site] timezone
        events = [_localize(event, zone) for event in data["events"]]
        return {**data, "events": events}

    @model_validator(mode="before")
    @classmethod
    def _http_is_the_default_kind(cls, data: Any) -> Any:
        """A ``[[checks]]`` entry without ``kind`` is an http check."""
        if not isinstance(data, Mapping) or not isinstance(data.get("checks"), list):
            return data
        checks = [
            {**check, "kind": "http"}
            if isinstance(check, Mapping) and "kind" not in check
            else check
            for check in data["checks"]
        ]
        return {**data, "checks": checks}

    def component(self, component_id: str) -> ComponentSettings:
        for component in self.components:
            if component.id == component_id:
                return component
        raise KeyError(component_id)

    def alert_rules(self) -> tuple[AlertRule, ...]:
        """The configured alert rules, or the default: a check failing
        ``failures_to_down`` runs in a row alerts for its component."""
        if self.alerts.rules:
            return self.alerts.rules
        rules = [AlertRule(id="check-failing", kind="consecutive")]
        if self.social.sources:
            rules.append(AlertRule(id="public-reports", kind="complaints", window=COMPLAINT_WINDOW))
        return tuple(rules)

    def maintenance_of(self, component_id: str, now: datetime) -> EventSettings | None:
        """The planned maintenance covering ``component_id`` at ``now``, if any."""
        for event in self.events:
            if event.kind == "maintenance" and event.active(now) and event.covers(component_id):
                return event
        return None

    def checks_of(self, component_id: str) -> list[CheckSettings]:
        return [check for check in self.checks if check.component == component_id]

    def resolve_path(self, path: Path) -> Path:
        """``path`` taken from the config file's folder when it is relative."""
        return path if path.is_absolute() else self.base_dir / path

    def database_url(self) -> str:
        """The storage URL with secrets resolved; a relative SQLite file is taken from the
        config file's folder, like every other path in the config."""
        url = self.storage.url.reveal()
        prefix = "sqlite:///"
        if url.startswith(prefix) and url != "sqlite:///:memory:":
            path = Path(url.removeprefix(prefix))
            if not path.is_absolute():
                return prefix + str(self.resolve_path(path))
        return url


def _key_path(loc: Sequence[int | str], data: Mapping[str, Any]) -> str:
    """Render a pydantic location as ``checks[1].timeout``, naming the item's id when it has one."""
    parts: list[str] = []
    node: Any = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and item < len(node):
                node = node[item]
                if isinstance(node, Mapping) and isinstance(node.get("id"), str):
                    label = f"[{item}]({node['id']})"
            parts.append(label)
            continue
        if isinstance(node, Mapping) and item not in node and item in CHECK_KINDS:
            continue  # the discriminated union's tag, not a key of the file
        parts.append(f".{item}" if parts else str(item))
        node = node.get(item) if isinstance(node, Mapping) else None
    return "".join(parts) or "(top level)"


def _semantic_errors(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Cross-references pydantic cannot see: duplicate ids, checks of unknown components.

    Works on the raw mapping so these errors are reported beside pydantic's.
    """
    errors: list[tuple[str, str]] = []
    if "base_dir" in data:  # a field of Settings, but set from the file's place, not in it
        errors.append(("base_dir", "unknown key"))
    components = data.get("components")
    checks = data.get("checks")
    seen: set[str] = set()
    for i, component in enumerate(components if isinstance(components, list) else []):
        cid = component.get("id") if isinstance(component, Mapping) else None
        if isinstance(cid, str):
            if cid in seen:
                errors.append((f"components[{i}]({cid}).id", f"duplicate component id {cid!r}"))
            seen.add(cid)
    check_ids: set[str] = set()
    for i, check in enumerate(checks if isinstance(checks, list) else []):
        if not isinstance(check, Mapping):
            continue
        label = (
            f"checks[{i}]({check['id']})" if isinstance(check.get("id"), str) else f"checks[{i}]"
        )
        if isinstance(check.get("id"), str):
            if check["id"] in check_ids:
                errors.append((f"{label}.id", f"duplicate check id {check['id']!r}"))
            check_ids.add(check["id"])
        component = check.get("component")
        if isinstance(component, str) and component not in seen:
            errors.append((f"{label}.component", f"unknown component {component!r}"))
    errors += _rule_reference_errors(data.get("alerts"), seen, check_ids)
    return errors + _event_reference_errors(data.get("events"), seen)


def _rule_reference_errors(
    alerts: Any, components: set[str], checks: set[str]
) -> list[tuple[str, str]]:
    rules = alerts.get("rules") if isinstance(alerts, Mapping) else None
    errors: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, Mapping):
            continue
        rid = rule.get("id")
        label = f"alerts.rules[{i}]({rid})" if isinstance(rid, str) else f"alerts.rules[{i}]"
        if isinstance(rid, str):
            if rid in seen:
                errors.append((f"{label}.id", f"duplicate rule id {rid!r}"))
            seen.add(rid)
        component, check = rule.get("component"), rule.get("check")
        if isinstance(component, str) and component not in components:
            errors.append((f"{label}.component", f"unknown component {component!r}"))
        if isinstance(check, str) and check not in checks:
            errors.append((f"{label}.check", f"unknown check {check!r}"))
    return errors


def _event_reference_errors(events: Any, components: set[str]) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    for i, event in enumerate(events if isinstance(events, list) else []):
        if not isinstance(event, Mapping) or not isinstance(event.get("components"), list):
            continue
        label = (
            f"events[{i}]({event['id']})" if isinstance(event.get("id"), str) else f"events[{i}]"
        )
        for component in event["components"]:
            if isinstance(component, str) and component not in components:
                errors.append((f"{label}.components", f"unknown component {component!r}"))
    return errors


def parse_settings(
    data: Mapping[str, Any],
    *,
    env: Mapping[str, str] | None = None,
    base_dir: Path = Path("."),
    source: str = "config",
) -> Settings:
    """Validate a parsed config mapping. Raises ConfigError listing every problem."""
    context = {"env": os.environ if env is None else env, "base_dir": base_dir}
    errors = _semantic_errors(data)
    try:
        settings = Settings.model_validate({**data, "base_dir": base_dir}, context=context)
    except ValidationError as exc:
        errors = [(_key_path(e["loc"], data), _message(e)) for e in exc.errors()] + errors
    if errors:
        raise ConfigError(errors, source=source)
    return settings


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required key is missing"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def load_settings(path: Path, *, env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate a TOML config file. Raises ConfigError (also for unreadable files)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            [("(file)", f"cannot read {path}: {exc.strerror}")], source=str(path)
        ) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError([("(syntax)", f"not UTF-8 text: {exc}")], source=str(path)) from None
    except ValueError as exc:  # TOMLDecodeError, and an integer of over 4,300 digits
        raise ConfigError([("(syntax)", f"not valid TOML: {exc}")], source=str(path)) from None
    except RecursionError:
        raise ConfigError(
            [("(syntax)", "not valid TOML: arrays or tables nested too deeply")], source=str(path)
        ) from None
    return parse_settings(data, env=env, base_dir=path.resolve().parent, source=str(path))
