"""Publishing: render the public status page from the store, and swap it in atomically.

Three steps, each callable alone:

* :func:`load_snapshot` reads everything the page shows in one read transaction
  and returns frozen, plain data (:class:`SiteSnapshot`);
* :func:`render_site` writes the HTML pages (jinja2, autoescaped), the JSON API
  (``json.dumps``, never templates) and the static assets into a folder;
* :func:`publish_site` renders into a new sibling folder and exchanges it with the
  published one in one step, so readers never see a half-written tree.

The tree (first configured language at the root, every other one under ``<lang>/``)::

    index.html, incidents/<id>.html           first language (Indonesian by default)
    en/index.html, en/incidents/<id>.html     other languages
    api/v2/summary.json, status.json, components.json, incidents.json,
    api/v2/incidents/unresolved.json          Atlassian Statuspage public API v2 shape
    style.css, .gitignore

The JSON API speaks the first configured language (names, titles, bodies); its
timestamps are ISO 8601 in the configured zone, with the offset.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import errno
import functools
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from monitor.clock import utc
from monitor.config import Settings
from monitor.detect import MAINTENANCE, SEVERITY
from monitor.fields import LocalizedText
from monitor.i18n import format_day, format_number, format_time, gettext
from monitor.resources import templates_dir
from monitor.rollup import (
    DAY,
    HOUR,
    day_start,
    floor_hour,
    histogram_percentile,
    load_histogram,
    local_day,
    uptime,
)
from monitor.store import ComponentStateRow, IncidentRow, ResultRollupRow, Store, StoreTx

log = logging.getLogger(__name__)

#: How far back the page and ``incidents.json`` list incidents (unresolved ones always).
RECENT_DAYS = 14

#: Component statuses from best to worst (Statuspage words).
COMPONENT_STATUSES = (
    "operational",
    "under_maintenance",
    "degraded_performance",
    "partial_outage",
    "major_outage",
)
INCIDENT_STATUSES = ("investigating", "identified", "monitoring", "resolved")
INDICATORS = ("none", "minor", "major", "critical")

#: What the repository commits as ``site/.gitignore``; written so a publish keeps git clean.
SITE_GITIGNORE = "*\n!.gitignore\n"

#: The word of each component and incident status: an English msgid of the catalogs.
_STATUS_MESSAGES: dict[str, str] = {
    "operational": "Operational",
    "degraded_performance": "Degraded performance",
    "partial_outage": "Partial outage",
    "major_outage": "Major outage",
    "under_maintenance": "Under maintenance",
    "investigating": "Investigating",
    "identified": "Identified",
    "monitoring": "Monitoring",
    "resolved": "Resolved",
}

#: A text symbol per status, so the status is never told by colour alone.
_SYMBOLS = {
    "operational": "✓",
    "degraded_performance": "!",
    "partial_outage": "▲",
    "major_outage": "✕",
    "under_maintenance": "⚙",
    "none": "✓",
    "minor": "!",
    "major": "✕",
    "critical": "✕",
    "maintenance": "⚙",
    "investigating": "○",
    "identified": "◐",
    "monitoring": "◕",
    "resolved": "✓",
}

# The overall description per indicator; "maintenance" is the wording of indicator
# "none" while some component is under maintenance and none is failing.
_OVERALL_MESSAGES: dict[str, str] = {
    "none": "All Systems Operational",
    "maintenance": "Service Under Maintenance",
    "minor": "Partially Degraded Service",
    "major": "Major Service Outage",
    "critical": "Major System Outage",
}

#: The page's interface words by the name templates use (``t.<name>``): English msgids of
#: the catalogs. Placeholders are ``str.format`` fields (``python-brace-format``).
_UI_MESSAGES: dict[str, str] = {
    "language_name": "English",
    "components": "Components",
    "active_incidents": "Active incidents",
    "recent_incidents": "Incidents in the last {days} days",
    "no_recent_incidents": "No incidents in the last {days} days.",
    "latest_update": "Latest update",
    "no_updates": "No statement yet.",
    "details": "Incident details",
    "affected": "Affected components",
    "started": "Started",
    "resolved_at": "Resolved",
    "timeline": "Timeline",
    "generated": "Page generated",
    "refresh_note": "This page refreshes itself every 60 seconds.",
    "back": "Back to the status page",
    "other_languages": "Other languages",
    "incident": "Incident",
    "api": "Status API (JSON)",
    "only_id": "This statement is only available in Indonesian.",
    "only_en": "This statement is only available in English.",
    "planned": "Planned events",
    "public_reports": "Public reports",
    "public_reports_ratio": "{ratio}× the usual volume ({per_minute} complaints a minute).",
    "public_reports_lag": "Lag behind the detected disruption: {minutes} min.",
    "planned_surge": "Expected traffic surge",
    "planned_maintenance": "Scheduled maintenance",
    "in_progress": "in progress",
    "until": "until",
    "stale_warning": "This page has not been updated for over {minutes} minutes; "
    "monitoring may be down.",
    "history": "Incident history",
    "history_link": "See the history of all incidents",
    "history_feeds": "Follow it in a feed reader",
    "no_incidents_month": "No incidents reported this month.",
    "duration": "Duration",
    "ongoing": "still ongoing",
    "uptime_heading": "Uptime over the last 90 days",
    "uptime_90d": "90-day uptime",
    "uptime_days": "Daily uptime of {name}, last 90 days",
    "uptime_no_data": "No data",
    "uptime_start": "90 days ago",
    "uptime_today": "Today",
    "latency_title": "Response time of {name}, last 24 hours (median per hour)",
    "latency_desc": "Lowest {low}, highest {high}, latest {last}.",
    "latency_p95": "95th percentile in the latest hour: {p95}.",
    "latency_none": "No response times yet.",
    "latency_start": "24 h ago",
    "latency_end": "now",
}


def status_word(status: str, lang: str, *, default: str | None = None) -> str:
    """The word for a component or incident ``status`` in ``lang``; ``default`` (else the
    status itself) for a status without one."""
    message = _STATUS_MESSAGES.get(status)
    if message is None:
        return status if default is None else default
    return gettext(lang, message)


class InterfaceText:
    """The page's interface words in one language: ``ui.components`` is ``Komponen``.

    Reading a name missing from :data:`_UI_MESSAGES` raises AttributeError (which jinja2's
    StrictUndefined turns into a rendering error).
    """

    def __init__(self, lang: str) -> None:
        self.lang = lang

    def __getattr__(self, name: str) -> str:
        try:
            message = _UI_MESSAGES[name]
        except KeyError:
            raise AttributeError(name) from None
        return gettext(self.lang, message)


# -- the snapshot ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Words:
    """A text per language; :meth:`get` falls back to the other language."""

    id: str = ""
    en: str = ""

    @classmethod
    def of(cls, text: LocalizedText | None) -> Words:
        return cls() if text is None else cls(id=text.id or "", en=text.en or "")

    def get(self, lang: str) -> str:
        return str(getattr(self, lang, "") or self.id or self.en)

    def lang_of(self, lang: str) -> str:
        """The language :meth:`get` actually answers in (for the ``lang`` attribute)."""
        if getattr(self, lang, ""):
            return lang
        return "id" if self.id else "en"


#: The uptime bars show this many days of the site's zone, today included.
UPTIME_DAYS = 90
#: The response-time chart shows this many hours, the current one included.
LATENCY_HOURS = 24


def uptime_text(ratio: float, lang: str) -> str:
    """``99,95%`` / ``99.95%``: rounded down, so any downtime shows below 100%."""
    hundredths = math.floor(round(ratio * 10000, 6))
    if hundredths >= 10000:
        return "100%"
    return format_number(Decimal(hundredths).scaleb(-2), "0.00", lang) + "%"


def _ms_text(value: float, lang: str) -> str:
    """``1.234 ms`` / ``1,234 ms``."""
    return format_number(value, "#,##0", lang) + " ms"


@dataclass(frozen=True)
class DayCell:
    """One day (of the site's zone) in a component's uptime bars."""

    day: date
    #: The worst status of the day, or ``no_data``.
    status: str
    #: The share of the observed time not in outage (0..1); None without data.
    uptime: float | None
    #: Titles of the incidents naming the component that were open that day, oldest first.
    incidents: tuple[Words, ...] = ()

    def label(self, lang: str) -> str:
        """``17 Sep 2026: Gangguan besar, 97,91%. Insiden: <title>; <title>``."""
        ui = InterfaceText(lang)
        status = ui.uptime_no_data if self.status == "no_data" else status_word(self.status, lang)
        text = f"{format_day(self.day, lang)}: {status}"
        if self.uptime is not None:
            text += f", {uptime_text(self.uptime, lang)}"
        if self.incidents:
            text += f". {ui.incident}: " + "; ".join(t.get(lang) for t in self.incidents)
        return text


@dataclass(frozen=True)
class LatencyPoint:
    """A component's response times over one hour (passed runs, from the hourly rollup)."""

    start: datetime
    runs: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    mean_ms: float | None = None


@dataclass(frozen=True)
class LatencyChart:
    """Where the response-time chart draws, in SVG user units of a ``WIDTH`` × ``HEIGHT``
    view box: the median per hour from ``TOP`` (``top_ms``) down to ``BASE`` (0 ms)."""

    WIDTH = 300
    HEIGHT = 84
    TOP = 16
    BASE = 66

    #: ``points`` of a polyline per stretch of consecutive hours with data, and the
    #: hours with data on neither side (drawn as dots).
    lines: tuple[str, ...]
    dots: tuple[tuple[float, float], ...]
    top_ms: float
    low_ms: float
    high_ms: float
    last_ms: float
    last_p95_ms: float | None

    def describe(self, lang: str) -> str:
        """The chart in words, for its ``<desc>``."""
        ui = InterfaceText(lang)
        text = ui.latency_desc.format(
            low=_ms_text(self.low_ms, lang),
            high=_ms_text(self.high_ms, lang),
            last=_ms_text(self.last_ms, lang),
        )
        if self.last_p95_ms is not None:
            text += " " + ui.latency_p95.format(p95=_ms_text(self.last_p95_ms, lang))
        return text

    def top_label(self, lang: str) -> str:
        return _ms_text(self.top_ms, lang)


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (at least 1)."""
    if value <= 1:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def latency_chart(points: tuple[LatencyPoint, ...]) -> LatencyChart | None:
    """The geometry of the hourly median response-time chart; None when no hour has one."""
    values = [p.p50_ms for p in points]
    known = [v for v in values if v is not None]
    if not known:
        return None
    top = _nice_ceiling(max(known))
    step = LatencyChart.WIDTH / max(len(points) - 1, 1)
    scale = (LatencyChart.BASE - LatencyChart.TOP) / top
    coords = [
        None if v is None else (round(i * step, 1), round(LatencyChart.BASE - v * scale, 1))
        for i, v in enumerate(values)
    ]
    stretches: list[list[tuple[float, float]]] = [[]]
    for coord in coords:
        if coord is None:
            stretches.append([])
        else:
            stretches[-1].append(coord)
    last = next(p for p in reversed(points) if p.p50_ms is not None)
    return LatencyChart(
        lines=tuple(" ".join(f"{x:g},{y:g}" for x, y in s) for s in stretches if len(s) > 1),
        dots=tuple(s[0] for s in stretches if len(s) == 1),
        top_ms=top,
        low_ms=min(known),
        high_ms=max(known),
        last_ms=last.p50_ms or 0.0,
        last_p95_ms=last.p95_ms,
    )


@dataclass(frozen=True)
class ComponentView:
    """A configured component and its current public status."""

    id: str
    name: Words
    description: Words | None
    position: int
    status: str
    #: When the current status began and when it was last evaluated (None: never).
    since: datetime | None
    updated_at: datetime | None
    #: The last :data:`UPTIME_DAYS` days, oldest first, and the uptime over them (0..1;
    #: None without data); from the rollups (:mod:`monitor.rollup`).
    days: tuple[DayCell, ...] = ()
    uptime_90d: float | None = None
    #: The last :data:`LATENCY_HOURS` hours, oldest first (the current one last).
    latency: tuple[LatencyPoint, ...] = ()

    @property
    def chart(self) -> LatencyChart | None:
        return latency_chart(self.latency)

    def uptime_label(self, lang: str) -> str:
        if self.uptime_90d is None:
            return InterfaceText(lang).uptime_no_data
        return uptime_text(self.uptime_90d, lang)


@dataclass(frozen=True)
class AffectedComponent:
    """A component named by an incident, with its status within that incident."""

    id: str
    name: Words
    status: str


@dataclass(frozen=True)
class UpdateView:
    """One timeline entry of an incident."""

    id: int
    at: datetime
    status: str
    message: Words
    event: str


@dataclass(frozen=True)
class IncidentView:
    """An incident with its components and its updates, oldest first."""

    id: int
    title: Words
    status: str
    impact: str
    started_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    components: tuple[AffectedComponent, ...]
    updates: tuple[UpdateView, ...]
    #: Complaint volume against normal (aggregates only), with ``[social] public_volume``.
    public_volume: dict[str, Any] | None = None

    @property
    def resolved(self) -> bool:
        return self.status == "resolved"

    @property
    def latest(self) -> UpdateView | None:
        return self.updates[-1] if self.updates else None

    @property
    def monitoring_at(self) -> datetime | None:
        """When the incident last went to ``monitoring`` (Statuspage's ``monitoring_at``)."""
        times = [u.at for u in self.updates if u.status == "monitoring"]
        return times[-1] if times else None


@dataclass(frozen=True)
class EventView:
    """A planned event from ``[[events]]``: a wave opening (surge) or a maintenance."""

    id: str
    kind: str
    name: Words
    message: Words | None
    start: datetime
    end: datetime
    components: tuple[AffectedComponent, ...]
    active: bool


#: The history page and the feeds list at most this many incidents, newest first.
HISTORY_LIMIT = 500

#: Planned events are shown this long before they start.
PLANNED_AHEAD = timedelta(days=30)


def planned_events(
    settings: Settings, names: Mapping[str, Words], *, now: datetime
) -> tuple[EventView, ...]:
    """Events going on now or starting within :data:`PLANNED_AHEAD`, soonest first."""
    views = []
    for event in sorted(settings.events, key=lambda e: (e.start, e.id)):
        if event.end <= now or event.start > now + PLANNED_AHEAD:
            continue
        covered = [c.id for c in settings.components if event.covers(c.id)]
        status = MAINTENANCE if event.kind == "maintenance" else "degraded_performance"
        views.append(
            EventView(
                id=event.id,
                kind=event.kind,
                name=Words.of(event.name),
                message=Words.of(event.message) if event.message else None,
                start=event.start,
                end=event.end,
                components=tuple(AffectedComponent(cid, names[cid], status) for cid in covered),
                active=event.active(now),
            )
        )
    return tuple(views)


@dataclass(frozen=True)
class OverallStatus:
    """The page's banner: a Statuspage indicator and its description per language."""

    indicator: str
    #: ``indicator``, or ``maintenance`` for the wording while only maintenance is going on.
    key: str
    description: Words


@dataclass(frozen=True)
class SiteSnapshot:
    """Everything the published site shows, read at one instant."""

    generated_at: datetime
    title: Words
    components: tuple[ComponentView, ...]
    overall: OverallStatus
    #: Unresolved incidents, newest first (however old they are).
    unresolved: tuple[IncidentView, ...]
    #: Incidents started in the last :data:`RECENT_DAYS` days, newest first.
    recent: tuple[IncidentView, ...]
    #: Every incident shown anywhere (unresolved, recent, and the history's last
    #: :data:`HISTORY_LIMIT`), newest first: the ones with a page.
    incidents: tuple[IncidentView, ...]
    #: Planned events going on or coming up, soonest first.
    events: tuple[EventView, ...] = ()


def load_snapshot(store: Store, settings: Settings, *, now: datetime) -> SiteSnapshot:
    """Read what the site shows from ``store`` in one read transaction.

    Components come in config order; one without a state row is ``operational``.
    Errors of the store propagate (``store.read()`` currently lets SQLAlchemy's through).
    """
    now = utc(now)
    names = {c.id: Words.of(c.name) for c in settings.components}
    # Rows are turned into plain data inside the block: outside it they may be expired.
    with store.read() as tx:
        unresolved_rows = tx.incidents(unresolved=True)
        declared = _declared_statuses(tx, unresolved_rows)
        events = planned_events(settings, names, now=now)
        maintenance = {
            c.id for e in events if e.kind == "maintenance" and e.active for c in e.components
        }
        components = _component_views(settings, names, tx.component_states(), declared, maintenance)
        recent_rows = tx.incidents(since=now - timedelta(days=RECENT_DAYS))
        history_rows = tx.incidents(limit=HISTORY_LIMIT)
        rows = {row.id: row for row in [*unresolved_rows, *recent_rows, *history_rows]}
        hidden = set() if settings.social.public_volume else {"complaints"}
        views = {key: _incident_view(tx, row, names, hidden) for key, row in rows.items()}
        unresolved_ids = [row.id for row in unresolved_rows]
        recent_ids = [row.id for row in recent_rows]
        if settings.social.public_volume:  # the incidents on the front page only
            for key in {*unresolved_ids, *recent_ids}:
                views[key] = _with_volume(tx, settings, views[key], now=now)
        components = _with_history(tx, settings, components, views.values(), now=now)
    unresolved = tuple(views[key] for key in unresolved_ids)
    return SiteSnapshot(
        generated_at=now,
        title=Words.of(settings.site.title),
        components=components,
        overall=overall_status([c.status for c in components], [i.impact for i in unresolved]),
        unresolved=unresolved,
        recent=tuple(views[key] for key in recent_ids),
        incidents=tuple(sorted(views.values(), key=lambda i: (i.started_at, i.id), reverse=True)),
        events=events,
    )


def _declared_statuses(tx: StoreTx, unresolved: Iterable[IncidentRow]) -> dict[str, str]:
    """The worst status each component has in an unresolved incident (what people declared)."""
    declared: dict[str, str] = {}
    for row in unresolved:
        assert row.id is not None
        for component_id, status in tx.incident_components(row.id).items():
            declared[component_id] = _worse(declared.get(component_id, "operational"), status)
    return declared


def _worse(a: str, b: str) -> str:
    return max(a, b, key=lambda status: SEVERITY.get(status, 0))


def _component_views(
    settings: Settings,
    names: Mapping[str, Words],
    states: Mapping[str, ComponentStateRow],
    declared: Mapping[str, str],
    maintenance: Collection[str] = (),
) -> tuple[ComponentView, ...]:
    """Components in config order. A component shows the worse of what the probes see and
    what an unresolved incident declares for it, as on Statuspage; during a planned
    maintenance it is ``under_maintenance`` whatever the probes see."""
    views = []
    for position, component in enumerate(settings.components, start=1):
        state = states.get(component.id)
        probed = state.status if state else "operational"
        if component.id in maintenance:
            probed = MAINTENANCE
        description = component.description
        views.append(
            ComponentView(
                id=component.id,
                name=names[component.id],
                description=Words.of(description) if description else None,
                position=position,
                status=_worse(probed, declared.get(component.id, "operational")),
                since=state.since if state else None,
                updated_at=state.updated_at if state else None,
            )
        )
    return tuple(views)


def _with_history(
    tx: StoreTx,
    settings: Settings,
    components: tuple[ComponentView, ...],
    incidents: Iterable[IncidentView],
    *,
    now: datetime,
) -> tuple[ComponentView, ...]:
    """The components with their uptime bars and response times, read from the rollups
    only (never from raw results: a few hundred rows however long the history)."""
    zone = settings.site.zone
    today = local_day(now, zone)
    first_day = today - timedelta(days=UPTIME_DAYS - 1)
    days: dict[str, dict[date, ResultRollupRow]] = {}
    since, until = day_start(first_day, zone), day_start(today + timedelta(days=1), zone)
    for row in tx.rollups(DAY, since=since, until=until):
        days.setdefault(row.component_id, {})[local_day(row.start, zone)] = row
    next_hour = floor_hour(now, zone) + timedelta(hours=1)
    first_hour = next_hour - timedelta(hours=LATENCY_HOURS)
    hours: dict[str, dict[datetime, ResultRollupRow]] = {}
    for row in tx.rollups(HOUR, since=first_hour, until=next_hour):
        hours.setdefault(row.component_id, {})[row.start] = row
    titles = _incident_days(incidents, zone, first_day, now=now)
    window = [first_day + timedelta(days=n) for n in range(UPTIME_DAYS)]
    hour_starts = [first_hour + timedelta(hours=n) for n in range(LATENCY_HOURS)]
    views = []
    for view in components:
        rows = days.get(view.id, {})
        cells = tuple(_day_cell(d, rows.get(d), titles.get((view.id, d), ())) for d in window)
        observed = sum(row.observed_seconds for row in rows.values())
        downtime = sum(row.downtime_seconds for row in rows.values())
        by_hour = hours.get(view.id, {})
        latency = tuple(_latency_point(h, by_hour.get(h)) for h in hour_starts)
        views.append(
            dataclasses.replace(
                view, days=cells, uptime_90d=uptime(observed, downtime), latency=latency
            )
        )
    return tuple(views)


def _day_cell(day: date, row: ResultRollupRow | None, titles: Iterable[Words]) -> DayCell:
    if row is None:
        return DayCell(day, "no_data", None, tuple(titles))
    status = row.worst_status or "no_data"
    return DayCell(day, status, uptime(row.observed_seconds, row.downtime_seconds), tuple(titles))


def _latency_point(start: datetime, row: ResultRollupRow | None) -> LatencyPoint:
    if row is None or not row.latency_count:
        return LatencyPoint(start, runs=row.runs if row else 0)
    histogram = load_histogram(row.latency_histogram)
    return LatencyPoint(
        start,
        runs=row.runs,
        p50_ms=histogram_percentile(histogram, 50, max_ms=row.latency_max_ms),
        p95_ms=histogram_percentile(histogram, 95, max_ms=row.latency_max_ms),
        mean_ms=row.latency_sum_ms / row.latency_count,
    )


def _incident_days(
    incidents: Iterable[IncidentView], zone: ZoneInfo, first_day: date, *, now: datetime
) -> dict[tuple[str, date], list[Words]]:
    """The titles of the incidents open on each day from ``first_day``, per component."""
    titles: dict[tuple[str, date], list[Words]] = {}
    for incident in sorted(incidents, key=lambda i: (i.started_at, i.id)):
        day = max(local_day(incident.started_at, zone), first_day)
        last = local_day(incident.resolved_at or now, zone)
        while day <= last:
            for affected in incident.components:
                titles.setdefault((affected.id, day), []).append(incident.title)
            day += timedelta(days=1)
    return titles


def _with_volume(
    tx: StoreTx, settings: Settings, view: IncidentView, *, now: datetime
) -> IncidentView:
    """The incident with its public complaint volume (aggregates, never posts)."""
    from monitor.correlate import correlate_incident

    correlation = correlate_incident(tx, settings, view.id, now=now)
    if correlation is None:
        return view
    return dataclasses.replace(view, public_volume=correlation.public())


def _incident_view(
    tx: StoreTx,
    row: IncidentRow,
    names: Mapping[str, Words],
    hidden_events: Collection[str] = (),
) -> IncidentView:
    """An incident as the page shows it; timeline entries of ``hidden_events`` (complaint
    volume, unless ``[social] public_volume``) are left out."""
    assert row.id is not None
    affected = tx.incident_components(row.id)
    order = {cid: position for position, cid in enumerate(names)}
    return IncidentView(
        id=row.id,
        title=Words(id=row.title_id, en=row.title_en),
        status=row.status,
        impact=row.impact,
        started_at=row.started_at,
        updated_at=row.updated_at,
        resolved_at=row.resolved_at,
        components=tuple(
            AffectedComponent(id=cid, name=names.get(cid, Words(id=cid, en=cid)), status=status)
            for cid, status in sorted(
                affected.items(), key=lambda kv: (order.get(kv[0], 999), kv[0])
            )
        ),
        updates=tuple(
            UpdateView(
                id=u.id or 0,
                at=u.at,
                status=u.status,
                message=Words(id=u.message_id, en=u.message_en),
                event=u.event,
            )
            for u in tx.updates(row.id)
            if u.event not in hidden_events
        ),
    )


def overall_status(
    component_statuses: Iterable[str], incident_impacts: Iterable[str] = ()
) -> OverallStatus:
    """The Statuspage indicator of the page.

    From the components: every one ``major_outage`` -> ``critical``; any ``major_outage``
    -> ``major``; any ``partial_outage`` or ``degraded_performance`` -> ``minor``;
    otherwise ``none`` (worded as maintenance when a component is ``under_maintenance``).
    As on Statuspage, an unresolved incident's impact raises the indicator to at least
    that impact, so the banner never says "all operational" while the team says otherwise.
    Unknown status words count as operational.
    """
    statuses = list(component_statuses)
    if statuses and all(s == "major_outage" for s in statuses):
        level = 3
    elif "major_outage" in statuses:
        level = 2
    elif "partial_outage" in statuses or "degraded_performance" in statuses:
        level = 1
    else:
        level = 0
    impacts = [INDICATORS.index(i) for i in incident_impacts if i in INDICATORS]
    level = max([level, *impacts])
    indicator = INDICATORS[level]
    key = "maintenance" if level == 0 and "under_maintenance" in statuses else indicator
    message = _OVERALL_MESSAGES[key]
    description = Words(id=gettext("id", message), en=gettext("en", message))
    return OverallStatus(indicator=indicator, key=key, description=description)


def _iso(moment: datetime | None, zone: ZoneInfo) -> str | None:
    return None if moment is None else moment.astimezone(zone).isoformat(timespec="seconds")


# -- rendering -----------------------------------------------------------------------------


def render_site(snapshot: SiteSnapshot, settings: Settings, out_dir: Path) -> Path:
    """Write the whole site for ``snapshot`` into ``out_dir`` (created if missing).

    Existing files are overwritten, others left alone: render into an empty folder
    (as :func:`publish_site` does) to get exactly the published tree. Returns ``out_dir``.
    """
    # These modules build on this one's helpers, hence imported here.
    from monitor.badges import write_badges
    from monitor.feeds import render_history, write_feeds

    out_dir.mkdir(parents=True, exist_ok=True)
    env = _environment()
    for lang in settings.site.languages:
        _render_language(env, snapshot, settings, out_dir, lang)
        render_history(env, snapshot, settings, out_dir, lang)
    for name, document in _api_documents(snapshot, settings).items():
        _write(out_dir / name, _dump_json(document))
    write_feeds(snapshot, settings, out_dir)
    write_badges(snapshot, settings, out_dir)
    shutil.copyfile(templates_dir() / "style.css", out_dir / "style.css")
    _write(out_dir / ".gitignore", SITE_GITIGNORE)
    return out_dir


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(templates_dir()),
        autoescape=select_autoescape(
            enabled_extensions=("html", "xml", "html.j2", "xml.j2"),
            default_for_string=True,
            default=True,
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env


def _language_prefix(settings: Settings, lang: str) -> str:
    """The folder of a language: the first is served at the root, the others under ``<lang>/``."""
    return "" if lang == settings.site.languages[0] else f"{lang}/"


def _render_language(
    env: Environment, snapshot: SiteSnapshot, settings: Settings, out_dir: Path, lang: str
) -> None:
    pages: list[tuple[str, str, dict[str, Any]]] = [("index.html", "site/index.html.j2", {})]
    pages += [
        (f"incidents/{incident.id}.html", "site/incident.html.j2", {"incident": incident})
        for incident in snapshot.incidents
    ]
    for page, template, extra in pages:
        path = _language_prefix(settings, lang) + page
        context = _page_context(snapshot, settings, lang, path, page)
        _write(out_dir / path, env.get_template(template).render(**context, **extra))


#: The page warns that its data may be stale once it is older than this many publish
#: intervals (its inline script compares the generated time with the reader's clock) ...
STALE_INTERVALS = 3
#: ... and never sooner than this: behind the README's cache headers a CDN may serve a
#: page up to 90 s past its next publish (max-age plus stale-while-revalidate), and the
#: clocks of readers' phones drift.
STALE_FLOOR = timedelta(minutes=3)


def stale_after(publish_interval: timedelta) -> timedelta:
    """The age at which the page shows its stale-data warning: :data:`STALE_INTERVALS`
    publish intervals, at least :data:`STALE_FLOOR`, rounded up to whole minutes (the
    warning says "over N minutes")."""
    seconds = max(STALE_INTERVALS * publish_interval, STALE_FLOOR).total_seconds()
    return timedelta(minutes=math.ceil(seconds / 60))


def _page_context(
    snapshot: SiteSnapshot, settings: Settings, lang: str, path: str, page: str
) -> dict[str, Any]:
    zone = settings.site.zone
    root = "../" * path.count("/")

    def when(moment: datetime) -> str:
        return format_time(moment, zone, lang)

    return {
        "lang": lang,
        "snapshot": snapshot,
        "root": root,
        "home": "../" * page.count("/") + "index.html",
        "t": InterfaceText(lang),
        "recent_days": RECENT_DAYS,
        "title": snapshot.title.get(lang),
        "translations": [
            {
                "lang": other,
                "name": InterfaceText(other).language_name,
                "href": root + _language_prefix(settings, other) + page,
            }
            for other in settings.site.languages
            if other != lang
        ],
        "when": when,
        "iso": lambda moment: _iso(moment, zone),
        "word": lambda status: status_word(status, lang),
        "symbol": lambda status: _SYMBOLS.get(status, "?"),
        "stale_after": stale_after(settings.site.publish_interval),
    }


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")


def _dump_json(document: object) -> str:
    """JSON that is also safe to embed in HTML: ``<``, ``>``, ``&`` and line separators escaped."""
    text = json.dumps(document, ensure_ascii=False, indent=2)
    for char in "<>&\u2028\u2029":  # these only ever occur inside JSON strings
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text + "\n"


# -- the Statuspage v2 API -----------------------------------------------------------------


def _api_documents(snapshot: SiteSnapshot, settings: Settings) -> dict[str, dict[str, Any]]:
    api = _StatuspageApi(snapshot, settings)
    page = api.page()
    components = [api.component(c) for c in snapshot.components]
    status = {
        "indicator": snapshot.overall.indicator,
        "description": api.text(snapshot.overall.description),
    }
    unresolved = [api.incident(i) for i in snapshot.unresolved]
    maintenances = [api.maintenance(e) for e in snapshot.events if e.kind == "maintenance"]
    return {
        "api/v2/summary.json": {
            "page": page,
            "components": components,
            "incidents": unresolved,
            "scheduled_maintenances": maintenances,
            "status": status,
        },
        "api/v2/scheduled-maintenances.json": {
            "page": page,
            "scheduled_maintenances": maintenances,
        },
        "api/v2/status.json": {"page": page, "status": status},
        "api/v2/components.json": {"page": page, "components": components},
        "api/v2/incidents.json": {
            "page": page,
            "incidents": [api.incident(i) for i in snapshot.incidents],
        },
        "api/v2/incidents/unresolved.json": {"page": page, "incidents": unresolved},
    }


class _StatuspageApi:
    """Builds Statuspage v2 objects in the first configured language."""

    def __init__(self, snapshot: SiteSnapshot, settings: Settings) -> None:
        self.snapshot = snapshot
        self.settings = settings
        self.lang = settings.site.languages[0]
        self.zone = settings.site.zone
        self.base_url = settings.site.base_url.rstrip("/")
        # Statuspage page ids are opaque strings; ours is stable for a given page address.
        seed = settings.site.base_url or settings.site.title.get("id")
        self.page_id = hashlib.sha256(seed.encode("utf-8")).hexdigest()[:12]
        self.current = {c.id: c for c in snapshot.components}

    def text(self, words: Words) -> str:
        return words.get(self.lang)

    def iso(self, moment: datetime | None) -> str | None:
        return _iso(moment, self.zone)

    def page(self) -> dict[str, Any]:
        return {
            "id": self.page_id,
            "name": self.text(self.snapshot.title),
            "url": self.settings.site.base_url,
            "time_zone": self.settings.site.timezone,
            "updated_at": self.iso(self.snapshot.generated_at),
        }

    def component(self, component: ComponentView) -> dict[str, Any]:
        return {
            "id": component.id,
            "name": self.text(component.name),
            "status": component.status,
            # The store keeps no creation time: the current status's start stands in.
            "created_at": self.iso(component.since),
            "updated_at": self.iso(component.updated_at),
            "position": component.position,
            "description": self.text(component.description) if component.description else None,
            "showcase": True,
            "start_date": None,
            "group_id": None,
            "page_id": self.page_id,
            "group": False,
            "only_show_if_degraded": False,
        }

    def incident(self, incident: IncidentView) -> dict[str, Any]:
        return {
            "id": str(incident.id),
            "name": self.text(incident.title),
            "status": incident.status,
            "created_at": self.iso(incident.started_at),
            "updated_at": self.iso(incident.updated_at),
            "monitoring_at": self.iso(incident.monitoring_at),
            "resolved_at": self.iso(incident.resolved_at),
            "impact": incident.impact,
            "shortlink": f"{self.base_url}/incidents/{incident.id}.html" if self.base_url else None,
            "started_at": self.iso(incident.started_at),
            "page_id": self.page_id,
            # Statuspage lists updates newest first.
            "incident_updates": [self.update(incident, u) for u in reversed(incident.updates)],
            "components": [self.affected(a) for a in incident.components],
        }

    def update(self, incident: IncidentView, update: UpdateView) -> dict[str, Any]:
        return {
            "id": str(update.id),
            "status": update.status,
            "body": self.text(update.message),
            "incident_id": str(incident.id),
            "created_at": self.iso(update.at),
            "updated_at": self.iso(update.at),
            "display_at": self.iso(update.at),
            "affected_components": None,
            "deliver_notifications": True,
            "custom_tweet": None,
            "tweet_id": None,
        }

    def maintenance(self, event: EventView) -> dict[str, Any]:
        """A planned maintenance as a Statuspage scheduled maintenance."""
        return {
            "id": event.id,
            "name": self.text(event.name),
            "status": "in_progress" if event.active else "scheduled",
            "created_at": self.iso(event.start),
            "updated_at": self.iso(self.snapshot.generated_at),
            "monitoring_at": None,
            "resolved_at": None,
            "impact": "maintenance",
            "shortlink": self.base_url or None,
            "started_at": self.iso(event.start),
            "scheduled_for": self.iso(event.start),
            "scheduled_until": self.iso(event.end),
            "page_id": self.page_id,
            "incident_updates": [
                {
                    "id": f"{event.id}-plan",
                    "status": "scheduled",
                    "body": self.text(event.message or event.name),
                    "incident_id": event.id,
                    "created_at": self.iso(event.start),
                    "updated_at": self.iso(event.start),
                    "display_at": self.iso(event.start),
                    "affected_components": None,
                    "deliver_notifications": False,
                    "custom_tweet": None,
                    "tweet_id": None,
                }
            ],
            "components": [self.affected(a) for a in event.components],
        }

    def affected(self, affected: AffectedComponent) -> dict[str, Any]:
        """As on Statuspage, an incident lists its components with their *current* status."""
        if affected.id in self.current:
            return self.component(self.current[affected.id])
        missing = ComponentView(affected.id, affected.name, None, 0, affected.status, None, None)
        return self.component(missing)


# -- publishing ----------------------------------------------------------------------------


#: A staging folder this old was left by a process killed mid-publish (a publish takes
#: seconds), so it is removed.
LEFTOVER_AGE = 600.0


def _remove_leftovers(target: Path) -> None:
    """Remove staging and old-tree folders beside ``target`` left by a killed publish."""
    horizon = time.time() - LEFTOVER_AGE
    for pattern in (f".{target.name}.new-*", f".{target.name}.old-*"):
        for folder in target.parent.glob(pattern):
            try:
                if folder.is_dir() and folder.stat().st_mtime < horizon:
                    shutil.rmtree(folder, ignore_errors=True)
                    log.info("removed a folder left by an interrupted publish path=%s", folder)
            except OSError:
                continue


def publish_site(
    store: Store,
    settings: Settings,
    *,
    now: datetime,
    out_dir: Path | None = None,
    upload: bool = True,
) -> Path:
    """Render the site from ``store`` and swap it in at ``out_dir`` atomically; return the path.

    ``out_dir`` defaults to ``settings.site.output_dir`` (relative to the config). The new
    tree is rendered into a sibling folder first; if rendering fails the published tree
    is left as it was and the error propagates (StoreError, OSError, jinja2 errors).
    With ``upload`` and ``[site.s3]`` set, the swapped-in tree is then mirrored to the
    bucket (:func:`monitor.upload.upload_site`); its UploadError propagates, the local
    site staying published.
    """
    target = (
        out_dir if out_dir is not None else settings.resolve_path(settings.site.output_dir)
    ).absolute()
    if target.is_symlink():  # publish into the folder the link points to, keep the link
        target = target.resolve()
    snapshot = load_snapshot(store, settings, now=now)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it 0700; a web server must be able to read it
        render_site(snapshot, settings, staging)
        swap_directory(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    log.info(
        "published site path=%s incidents=%d indicator=%s",
        target,
        len(snapshot.incidents),
        snapshot.overall.indicator,
    )
    if upload and settings.site.s3 is not None:
        from monitor.upload import upload_site

        upload_site(target, settings.site.s3)
    return target


def swap_directory(new: Path, target: Path, *, exchange: bool = True) -> None:
    """Put the folder ``new`` at ``target``, which never goes missing once it exists.

    With ``exchange`` (Linux ``renameat2(RENAME_EXCHANGE)``) both names swap in one step
    and the old tree is deleted afterwards; without it, or where the kernel or file system
    refuses, the old tree is renamed away and ``new`` renamed in (a brief gap). ``new``
    no longer exists when this returns. Raises OSError.
    """
    try:
        os.rename(new, target)  # first publish: nothing to replace
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR, errno.ENOTDIR):
            raise
    if exchange and _exchange(new, target):
        shutil.rmtree(new)  # now holds the old tree
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.rename(target, old / "tree")
    try:
        os.rename(new, target)
    except OSError:
        os.rename(old / "tree", target)  # put the published tree back
        raise
    finally:
        shutil.rmtree(old)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False when this system cannot."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        log.debug("renameat2 exchange unsupported errno=%s; falling back to two renames", code)
        return False
    raise OSError(code, os.strerror(code), str(b))


@functools.cache
def _renameat2() -> Callable[[int, bytes, int, bytes, int], int] | None:
    """libc's ``renameat2`` (glibc 2.28+), or None elsewhere."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    function.restype = ctypes.c_int
    return function
