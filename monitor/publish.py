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
import os
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from monitor.clock import utc
from monitor.config import Settings
from monitor.detect import MAINTENANCE, SEVERITY
from monitor.fields import LocalizedText
from monitor.i18n import format_time
from monitor.resources import templates_dir
from monitor.store import ComponentStateRow, IncidentRow, Store, StoreTx

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

_STATUS_WORDS: dict[str, dict[str, str]] = {
    "id": {
        "operational": "Normal",
        "degraded_performance": "Kinerja menurun",
        "partial_outage": "Gangguan sebagian",
        "major_outage": "Gangguan besar",
        "under_maintenance": "Dalam pemeliharaan",
        "investigating": "Sedang diselidiki",
        "identified": "Penyebab ditemukan",
        "monitoring": "Dipantau",
        "resolved": "Selesai",
    },
    "en": {
        "operational": "Operational",
        "degraded_performance": "Degraded performance",
        "partial_outage": "Partial outage",
        "major_outage": "Major outage",
        "under_maintenance": "Under maintenance",
        "investigating": "Investigating",
        "identified": "Identified",
        "monitoring": "Monitoring",
        "resolved": "Resolved",
    },
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
_OVERALL_WORDS: dict[str, dict[str, str]] = {
    "none": {"id": "Semua layanan berjalan normal", "en": "All Systems Operational"},
    "maintenance": {"id": "Layanan sedang dalam pemeliharaan", "en": "Service Under Maintenance"},
    "minor": {"id": "Sebagian layanan terganggu", "en": "Partially Degraded Service"},
    "major": {"id": "Gangguan besar pada layanan", "en": "Major Service Outage"},
    "critical": {"id": "Seluruh layanan tidak dapat diakses", "en": "Major System Outage"},
}

_UI: dict[str, dict[str, str]] = {
    "id": {
        "language_name": "Bahasa Indonesia",
        "components": "Komponen",
        "active_incidents": "Insiden yang sedang berlangsung",
        "recent_incidents": f"Insiden {RECENT_DAYS} hari terakhir",
        "no_recent_incidents": f"Tidak ada insiden dalam {RECENT_DAYS} hari terakhir.",
        "latest_update": "Pembaruan terakhir",
        "no_updates": "Belum ada pernyataan.",
        "details": "Rincian insiden",
        "affected": "Komponen terdampak",
        "started": "Mulai",
        "resolved_at": "Selesai",
        "timeline": "Kronologi",
        "generated": "Halaman dibuat",
        "refresh_note": "Halaman ini diperbarui otomatis setiap 60 detik.",
        "back": "Kembali ke halaman status",
        "other_languages": "Bahasa lain",
        "incident": "Insiden",
        "api": "API status (JSON)",
        "planned": "Agenda terjadwal",
        "public_reports": "Laporan warganet",
        "public_reports_ratio": "{ratio}× dari biasanya ({per_minute} keluhan per menit).",
        "public_reports_lag": "Selisih dengan gangguan yang terdeteksi: {minutes} menit.",
        "planned_surge": "Perkiraan lonjakan pengunjung",
        "planned_maintenance": "Pemeliharaan terjadwal",
        "in_progress": "sedang berlangsung",
        "until": "sampai",
    },
    "en": {
        "language_name": "English",
        "components": "Components",
        "active_incidents": "Active incidents",
        "recent_incidents": f"Incidents in the last {RECENT_DAYS} days",
        "no_recent_incidents": f"No incidents in the last {RECENT_DAYS} days.",
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
        "planned": "Planned events",
        "public_reports": "Public reports",
        "public_reports_ratio": "{ratio}× the usual volume ({per_minute} complaints a minute).",
        "public_reports_lag": "Lag behind the detected disruption: {minutes} min.",
        "planned_surge": "Expected traffic surge",
        "planned_maintenance": "Scheduled maintenance",
        "in_progress": "in progress",
        "until": "until",
    },
}


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
    return OverallStatus(indicator=indicator, key=key, description=Words(**_OVERALL_WORDS[key]))


def _iso(moment: datetime | None, zone: ZoneInfo) -> str | None:
    return None if moment is None else moment.astimezone(zone).isoformat(timespec="seconds")


# -- rendering -----------------------------------------------------------------------------


def render_site(snapshot: SiteSnapshot, settings: Settings, out_dir: Path) -> Path:
    """Write the whole site for ``snapshot`` into ``out_dir`` (created if missing).

    Existing files are overwritten, others left alone: render into an empty folder
    (as :func:`publish_site` does) to get exactly the published tree. Returns ``out_dir``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    env = _environment()
    for lang in settings.site.languages:
        _render_language(env, snapshot, settings, out_dir, lang)
    for name, document in _api_documents(snapshot, settings).items():
        _write(out_dir / name, _dump_json(document))
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
        "t": _UI[lang],
        "title": snapshot.title.get(lang),
        "translations": [
            {
                "lang": other,
                "name": _UI[other]["language_name"],
                "href": root + _language_prefix(settings, other) + page,
            }
            for other in settings.site.languages
            if other != lang
        ],
        "when": when,
        "iso": lambda moment: _iso(moment, zone),
        "word": lambda status: _STATUS_WORDS[lang].get(status, status),
        "symbol": lambda status: _SYMBOLS.get(status, "?"),
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


def publish_site(
    store: Store, settings: Settings, *, now: datetime, out_dir: Path | None = None
) -> Path:
    """Render the site from ``store`` and swap it in at ``out_dir`` atomically; return the path.

    ``out_dir`` defaults to ``settings.site.output_dir`` (relative to the config). The new
    tree is rendered into a sibling folder first; if rendering fails the published tree
    is left as it was and the error propagates (StoreError, OSError, jinja2 errors).
    """
    target = (
        out_dir if out_dir is not None else settings.resolve_path(settings.site.output_dir)
    ).absolute()
    if target.is_symlink():  # publish into the folder the link points to, keep the link
        target = target.resolve()
    snapshot = load_snapshot(store, settings, now=now)
    target.parent.mkdir(parents=True, exist_ok=True)
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
