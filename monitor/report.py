"""The incident report, for the comms team and the press.

Two steps:

* :func:`build_report` reads one incident and everything measured around it in one
  transaction and returns frozen, plain data (:class:`IncidentReport`): the timeline,
  per-component impact computed from the component transitions, the worst minute of
  errors (the worst hour, from the hourly rollups, once the raw results of the incident's
  window are gone: see :func:`_peak_error_rate`), the statements published (with their
  X posts), what engineers were alerted, and the social signal when there is one;
* :func:`render_markdown` and :func:`render_html` show it in Indonesian or English,
  every time in the site's zone. Text from outside (statements, titles, authors,
  errors) is escaped in both: HTML by jinja2's autoescape, Markdown by
  :func:`escape_markdown`, so a report pasted into a renderer shows the text as written.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlmodel import col, select

from monitor.alerts import incident_url
from monitor.config import Settings
from monitor.detect import DEGRADED, MAJOR_OUTAGE, OPERATIONAL, PARTIAL_OUTAGE, SEVERITY
from monitor.i18n import format_duration, format_percent, format_time
from monitor.publish import status_word
from monitor.resources import templates_dir
from monitor.rollup import HOUR, floor_hour
from monitor.rules import Evidence, runs_of
from monitor.statements import Statement
from monitor.store import (
    AlertDeliveryRow,
    IncidentUpdateRow,
    ResultRollupRow,
    StoreTx,
    TransitionRow,
    XPostRow,
)

LANGUAGES = ("id", "en")
#: Statuses that count as impact (the public could not use the component).
OUTAGE = (PARTIAL_OUTAGE, MAJOR_OUTAGE)
#: A minute (or an hour) needs this many probe runs to count for the peak error rate.
PEAK_MIN_RUNS = 2
X_STATUS_URL = "https://x.com/i/web/status/{}"
MESSAGE_KINDS = ("firing", "update", "reminder", "resolved")
DELIVERY_STATUSES = ("sent", "failed", "pending", "sending")
#: Results stamped at the window's end itself belong to the window.
_EPSILON = timedelta(microseconds=1)
_ONE_HOUR = timedelta(hours=1)


# -- the report's data -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ComponentImpact:
    """How one of the incident's components fared within the incident's window."""

    component_id: str
    name: Statement
    #: The worst status it had within the window (``operational`` if it never changed).
    worst_status: str
    #: Time spent in ``partial_outage`` or ``major_outage``.
    impact: timedelta
    #: Time spent in ``degraded_performance``.
    degraded: timedelta
    #: The first moment within the window it was in an outage (the incident's start
    #: when it already was); None if it never was.
    first_failure_at: datetime | None
    #: When it last became operational within the window and stayed so; None if it is
    #: not operational at the window's end (or never left operational).
    recovered_at: datetime | None


@dataclass(frozen=True, slots=True)
class PeakErrorRate:
    """The worst one-minute bucket of probe runs of one component during the incident; the
    worst hour (of the hourly rollups) when the raw results of the window are gone."""

    ratio: float
    #: The start of the minute (or hour), in the site's zone.
    at: datetime
    component_id: str
    runs: int
    failures: int
    #: ``minute`` from the raw results; ``hour`` from the hourly rollups, once raw results
    #: of the incident's window were deleted (``[storage] raw_days``).
    resolution: Literal["minute", "hour"] = "minute"
    #: For hourly figures: how many days raw results are kept (said in the report).
    raw_days: int | None = None


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One entry of the incident's timeline, as published (times in the site's zone)."""

    update_id: int
    at: datetime
    #: The incident's status after this entry.
    status: str
    #: opened | joined | changed | degraded | recovered | update | resolved | reopened
    event: str
    author: str
    automatic: bool
    message: Statement
    #: The measurements behind an automatic entry; None for human ones.
    evidence: Evidence | None = None

    def texts(self, lang: str) -> tuple[str, str | None]:
        """The message in ``lang`` (or the other language when it has none) and the other
        language's text when it says something different, else None."""
        return _bilingual(self.message, lang)


@dataclass(frozen=True, slots=True)
class XPostOutcome:
    """What became of a statement's thread on X."""

    #: posted | failed | pending
    status: str
    #: The address of every post made so far, in thread order.
    urls: tuple[str, ...]
    error: str | None


@dataclass(frozen=True, slots=True)
class PublishedStatement:
    """A statement of the comms team (a human timeline entry) and its X thread, if any."""

    entry: TimelineEntry
    x_post: XPostOutcome | None


@dataclass(frozen=True, slots=True)
class AlertSummary:
    """The alert messages engineers were sent about the incident."""

    #: ``(kind, count)`` of messages (one per group and sequence number), in
    #: :data:`MESSAGE_KINDS` order, kinds without messages left out.
    messages: tuple[tuple[str, int], ...]
    #: ``(status, count)`` of deliveries (one per message and target).
    deliveries: tuple[tuple[str, int], ...]
    targets: int
    first_sent_at: datetime | None

    @property
    def message_count(self) -> int:
        return sum(count for _, count in self.messages)


@dataclass(frozen=True, slots=True)
class SocialSummary:
    """Complaints about the service on social media during the incident.

    ``volume`` is the number of complaints in the incident's window, ``normal`` and
    ``peak_per_minute`` are the usual and the highest rate per minute, ``lag`` is how long
    after the incident started complaints rose (negative when they rose before it; None
    when they did not rise), and ``label`` names the source (for example ``"X, keyword
    prakerja"``).
    """

    volume: int
    normal: float
    peak_per_minute: float
    lag: timedelta | None
    label: str


@dataclass(frozen=True, slots=True)
class IncidentReport:
    """Everything the report shows about one incident; times are in ``zone``."""

    incident_id: int
    title: Statement
    status: str
    #: none | minor | major | critical
    impact: str
    automatic: bool
    started_at: datetime
    resolved_at: datetime | None
    #: The end of the measured window: ``resolved_at``, or the time of the report.
    measured_until: datetime
    generated_at: datetime
    zone: ZoneInfo
    site_title: Statement
    url: str
    timeline: tuple[TimelineEntry, ...]
    impacts: tuple[ComponentImpact, ...]
    peak: PeakErrorRate | None
    statements: tuple[PublishedStatement, ...]
    alerts: AlertSummary
    social: SocialSummary | None = None

    @property
    def resolved(self) -> bool:
        return self.resolved_at is not None

    @property
    def duration(self) -> timedelta:
        return self.measured_until - self.started_at

    @property
    def worst_status(self) -> str:
        """The worst status any of its components had during the incident, as measured."""
        statuses = [i.worst_status for i in self.impacts]
        return max(statuses, key=lambda s: SEVERITY.get(s, 0), default=OPERATIONAL)


# -- building it from the store ------------------------------------------------------------


def build_report(
    tx: StoreTx,
    settings: Settings,
    incident_id: int,
    *,
    now: datetime,
    social: SocialSummary | None = None,
) -> IncidentReport:
    """Read the report of incident ``incident_id`` as of ``now``. Raises KeyError if there
    is no such incident."""
    incident = tx.incident(incident_id)
    if incident is None:
        raise KeyError(incident_id)
    zone = settings.site.zone
    start, end = incident.started_at, incident.resolved_at or now
    component_ids = _ordered(settings, tx.incident_components(incident_id))
    timeline = tuple(_entry(row, zone) for row in tx.updates(incident_id))
    return IncidentReport(
        incident_id=incident_id,
        title=Statement(id=incident.title_id, en=incident.title_en),
        status=incident.status,
        impact=incident.impact,
        automatic=incident.automatic,
        started_at=start.astimezone(zone),
        resolved_at=incident.resolved_at.astimezone(zone) if incident.resolved_at else None,
        measured_until=end.astimezone(zone),
        generated_at=now.astimezone(zone),
        zone=zone,
        site_title=Statement(id=settings.site.title.get("id"), en=settings.site.title.get("en")),
        url=incident_url(settings, incident_id),
        timeline=timeline,
        impacts=tuple(
            _component_impact(tx, settings, cid, start=start, end=end, zone=zone)
            for cid in component_ids
        ),
        peak=_peak_error_rate(
            tx,
            component_ids,
            start=start,
            end=end,
            zone=zone,
            raw_days=settings.storage.raw_days,
        ),
        statements=_statements(timeline, tx.x_posts(incident_id=incident_id)),
        alerts=_alert_summary(tx.deliveries(incident_id=incident_id), zone),
        social=social,
    )


def _ordered(settings: Settings, component_ids: Iterable[str]) -> list[str]:
    """Components in the order of the config (unknown ones last, by id)."""
    order = {c.id: i for i, c in enumerate(settings.components)}
    return sorted(component_ids, key=lambda cid: (order.get(cid, len(order)), cid))


def _entry(row: IncidentUpdateRow, zone: ZoneInfo) -> TimelineEntry:
    assert row.id is not None
    return TimelineEntry(
        update_id=row.id,
        at=row.at.astimezone(zone),
        status=row.status,
        event=row.event,
        author=row.author,
        automatic=row.automatic,
        message=Statement(id=row.message_id, en=row.message_en),
        evidence=Evidence.loads(row.details) if row.automatic else None,
    )


def _component_name(settings: Settings, component_id: str) -> Statement:
    try:
        name = settings.component(component_id).name
    except KeyError:
        return Statement(id=component_id, en=component_id)
    return Statement(id=name.get("id"), en=name.get("en"))


class _Tally:
    """Walks one component's statuses through the window, adding up time per kind."""

    def __init__(self, status: str, start: datetime) -> None:
        self.status, self.since, self.worst = status, start, status
        self.impact = self.degraded = timedelta(0)
        self.first_failure: datetime | None = start if status in OUTAGE else None
        self.recovered: datetime | None = None

    def step(self, status: str, at: datetime) -> None:
        self.close(at)
        self.status, self.since = status, at
        if SEVERITY.get(status, 0) > SEVERITY.get(self.worst, 0):
            self.worst = status
        if status in OUTAGE and self.first_failure is None:
            self.first_failure = at
        self.recovered = at if status == OPERATIONAL else None

    def close(self, at: datetime) -> None:
        """Count the time from the last change up to ``at`` in the current status."""
        span, self.since = at - self.since, at
        if self.status in OUTAGE:
            self.impact += span
        elif self.status == DEGRADED:
            self.degraded += span


def _component_impact(
    tx: StoreTx,
    settings: Settings,
    component_id: str,
    *,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
) -> ComponentImpact:
    """Time in outage and degraded between ``start`` and ``end``, from the transitions."""
    before = tx.transition_at(component_id, start)
    tally = _Tally(before.to_status if before else OPERATIONAL, start)
    for transition in _transitions_between(tx, component_id, start, end):
        tally.step(transition.to_status, transition.at)
    tally.close(end)
    return ComponentImpact(
        component_id=component_id,
        name=_component_name(settings, component_id),
        worst_status=tally.worst,
        impact=tally.impact,
        degraded=tally.degraded,
        first_failure_at=tally.first_failure.astimezone(zone) if tally.first_failure else None,
        recovered_at=tally.recovered.astimezone(zone) if tally.recovered else None,
    )


def _transitions_between(
    tx: StoreTx, component_id: str, start: datetime, end: datetime
) -> list[TransitionRow]:
    """Transitions after ``start`` up to and including ``end``, oldest first."""
    query = (
        select(TransitionRow)
        .where(
            TransitionRow.component_id == component_id,
            col(TransitionRow.at) > start,
            col(TransitionRow.at) <= end,
        )
        .order_by(col(TransitionRow.at), col(TransitionRow.id))
    )
    return list(tx.session.exec(query))


def _peak_error_rate(
    tx: StoreTx,
    component_ids: Sequence[str],
    *,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
    raw_days: int,
) -> PeakErrorRate | None:
    """The worst minute of the incident's components (:func:`_peak_minute`), or their
    worst hour (:func:`_peak_hour`) when raw results of the window were deleted after
    ``[storage] raw_days`` (:func:`monitor.rollup.prune`): minutes of what is left would
    understate the peak, or find none."""
    oldest = tx.first_result_at()
    if oldest is not None and oldest <= start:  # pruning deletes the oldest results first
        return _peak_minute(tx, component_ids, start=start, end=end, zone=zone)
    hours = [
        row
        for cid in component_ids
        for row in tx.rollups(
            HOUR,
            since=floor_hour(start, zone),
            until=max(end, start + _EPSILON),
            component_id=cid,
        )
    ]
    if not _raw_results_pruned(tx, hours, oldest):
        return _peak_minute(tx, component_ids, start=start, end=end, zone=zone)
    return _peak_hour(hours, zone=zone, raw_days=raw_days)


def _raw_results_pruned(
    tx: StoreTx, hours: Sequence[ResultRollupRow], oldest: datetime | None
) -> bool:
    """Whether some of the runs these hourly rollups counted have no raw results any more:
    an hour with runs before the ``oldest`` raw result still stored, or, for the hour that
    holds it, fewer runs left in the raw results than the rollup counted. (A store that
    began probing after the incident started has no such hour.)"""
    for row in hours:
        if not row.runs or (oldest is not None and row.start > oldest):
            continue
        if oldest is None or row.start + _ONE_HOUR <= oldest:
            return True
        kept = tx.results(
            component_id=row.component_id, since=row.start, until=row.start + _ONE_HOUR
        )
        if len(runs_of(kept)) < row.runs:
            return True
    return False


def _best(candidates: Sequence[PeakErrorRate]) -> PeakErrorRate | None:
    """The highest share of failed runs; ties go to more failures, then to the earlier
    bucket, then to the component id."""
    if not candidates:
        return None
    return min(candidates, key=lambda p: (-p.ratio, -p.failures, p.at, p.component_id))


def _peak_minute(
    tx: StoreTx,
    component_ids: Sequence[str],
    *,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
) -> PeakErrorRate | None:
    """The minute with the highest share of failed runs (at least :data:`PEAK_MIN_RUNS`),
    per component, from the raw results; ties as :func:`_best`."""
    rows = [
        row
        for cid in component_ids
        for row in tx.results(component_id=cid, since=start, until=end + _EPSILON)
    ]
    buckets: dict[tuple[str, datetime], list[bool]] = defaultdict(list)
    for run in runs_of(rows):
        buckets[(run.component_id, run.started_at.replace(second=0, microsecond=0))].append(run.ok)
    return _best(
        [
            PeakErrorRate(
                ratio=oks.count(False) / len(oks),
                at=minute.astimezone(zone),
                component_id=cid,
                runs=len(oks),
                failures=oks.count(False),
            )
            for (cid, minute), oks in buckets.items()
            if len(oks) >= PEAK_MIN_RUNS
        ]
    )


def _peak_hour(
    hours: Sequence[ResultRollupRow], *, zone: ZoneInfo, raw_days: int
) -> PeakErrorRate | None:
    """The hour (of the site's zone, overlapping the window) with the highest share of
    failed runs (at least :data:`PEAK_MIN_RUNS`), per component, from the hourly rollups;
    ties as :func:`_best`."""
    return _best(
        [
            PeakErrorRate(
                ratio=row.failures / row.runs,
                at=row.start.astimezone(zone),
                component_id=row.component_id,
                runs=row.runs,
                failures=row.failures,
                resolution="hour",
                raw_days=raw_days,
            )
            for row in hours
            if row.runs >= PEAK_MIN_RUNS
        ]
    )


def _statements(
    timeline: Sequence[TimelineEntry], posts: Sequence[XPostRow]
) -> tuple[PublishedStatement, ...]:
    by_update = {post.update_id: post for post in posts}
    return tuple(
        PublishedStatement(entry=entry, x_post=_x_outcome(by_update.get(entry.update_id)))
        for entry in timeline
        if not entry.automatic
    )


def _x_outcome(post: XPostRow | None) -> XPostOutcome | None:
    if post is None:
        return None
    try:
        ids = [str(i) for i in json.loads(post.post_ids or "[]")]
    except (ValueError, TypeError):
        ids = []
    # X ids are numbers; anything else is not made into a link.
    urls = tuple(X_STATUS_URL.format(i) for i in ids if i.isascii() and i.isdigit())
    return XPostOutcome(status=post.status, urls=urls, error=post.error)


def _alert_summary(deliveries: Sequence[AlertDeliveryRow], zone: ZoneInfo) -> AlertSummary:
    kinds = {(d.group_id, d.seq): d.kind for d in deliveries}
    messages = Counter(kinds.values())
    statuses = Counter(d.status for d in deliveries)
    sent = [d.sent_at for d in deliveries if d.status == "sent" and d.sent_at is not None]
    return AlertSummary(
        messages=_in_order(messages, MESSAGE_KINDS),
        deliveries=_in_order(statuses, DELIVERY_STATUSES),
        targets=len({d.target_label for d in deliveries}),
        first_sent_at=min(sent).astimezone(zone) if sent else None,
    )


def _in_order(counts: Counter[str], order: Sequence[str]) -> tuple[tuple[str, int], ...]:
    known = [(key, counts[key]) for key in order if counts[key]]
    return tuple(known + sorted((k, v) for k, v in counts.items() if k not in order))


# -- words ---------------------------------------------------------------------------------

_UI: dict[str, dict[str, str]] = {
    "id": {
        "report": "Laporan insiden",
        "status": "Status",
        "impact": "Dampak",
        "origin": "Dibuka",
        "automatic_origin": "otomatis oleh Pantau",
        "manual_origin": "oleh tim komunikasi",
        "started": "Mulai",
        "resolved_at": "Selesai",
        "ongoing": "Belum selesai; diukur hingga {now}",
        "duration": "Durasi",
        "page": "Halaman publik",
        "components": "Dampak per komponen",
        "component": "Komponen",
        "worst": "Status terburuk",
        "outage_time": "Waktu gangguan",
        "degraded_time": "Waktu kinerja menurun",
        "first_failure": "Gangguan pertama",
        "recovered": "Pulih",
        "not_recovered": "belum pulih",
        "no_components": "Tidak ada komponen yang tercatat untuk insiden ini.",
        "peak": "Tingkat galat tertinggi",
        "peak_text": "{ratio} ({failures} dari {runs} percobaan gagal) pada {component}, "
        "dalam menit mulai {at}.",
        "peak_hour_text": "{ratio} ({failures} dari {runs} percobaan gagal) pada {component}, "
        "dalam satu jam mulai {at} (angka per jam: data mentah yang berumur lebih dari "
        "{days} hari tidak disimpan lagi).",
        "no_peak": "Tidak ada menit dengan cukup percobaan (minimal {min}) untuk dihitung.",
        "timeline": "Linimasa",
        "no_timeline": "Belum ada entri.",
        "automatic": "otomatis",
        "evidence": "Bukti",
        "statements": "Pernyataan yang dipublikasikan",
        "no_statements": "Tim komunikasi belum menerbitkan pernyataan.",
        "x_none": "Tidak diposting ke X.",
        "x_posted": "Diposting ke X",
        "x_failed": "Gagal diposting ke X",
        "x_pending": "Sedang diposting ke X",
        "alerts": "Peringatan untuk teknisi",
        "no_alerts": "Tidak ada pesan peringatan yang dikirim untuk insiden ini.",
        "messages": "Pesan",
        "deliveries": "Pengiriman",
        "targets": "tujuan",
        "first_sent": "Terkirim pertama",
        "after_start": "{duration} setelah insiden mulai",
        "social": "Sinyal media sosial",
        "social_off": "Sinyal media sosial belum dikonfigurasi.",
        "source": "Sumber",
        "volume": "Keluhan selama insiden",
        "normal": "Normal",
        "peak_rate": "Puncak",
        "per_minute": "{value} per menit",
        "lag": "Keluhan naik",
        "lag_after": "{duration} setelah insiden mulai",
        "lag_before": "{duration} sebelum insiden mulai",
        "lag_none": "tidak ada kenaikan",
        "generated": "Dibuat {now}. Semua waktu dalam zona waktu {zone}.",
        "other_language": "English",
    },
    "en": {
        "report": "Incident report",
        "status": "Status",
        "impact": "Impact",
        "origin": "Opened",
        "automatic_origin": "automatically by Pantau",
        "manual_origin": "by the comms team",
        "started": "Started",
        "resolved_at": "Resolved",
        "ongoing": "Not resolved; measured up to {now}",
        "duration": "Duration",
        "page": "Public page",
        "components": "Impact per component",
        "component": "Component",
        "worst": "Worst status",
        "outage_time": "Time in outage",
        "degraded_time": "Time degraded",
        "first_failure": "First failure",
        "recovered": "Recovered",
        "not_recovered": "not recovered",
        "no_components": "No components are recorded for this incident.",
        "peak": "Peak error rate",
        "peak_text": "{ratio} ({failures} of {runs} runs failed) on {component}, "
        "in the minute from {at}.",
        "peak_hour_text": "{ratio} ({failures} of {runs} runs failed) on {component}, "
        "in the hour from {at} (hourly figures: raw results older than {days} are no "
        "longer kept).",
        "no_peak": "No minute had enough probe runs (at least {min}) to measure.",
        "timeline": "Timeline",
        "no_timeline": "No entries yet.",
        "automatic": "automatic",
        "evidence": "Evidence",
        "statements": "Statements published",
        "no_statements": "The comms team has published no statement.",
        "x_none": "Not posted to X.",
        "x_posted": "Posted to X",
        "x_failed": "Posting to X failed",
        "x_pending": "Being posted to X",
        "alerts": "Engineer alerts",
        "no_alerts": "No alert messages were sent for this incident.",
        "messages": "Messages",
        "deliveries": "Deliveries",
        "targets": "target(s)",
        "first_sent": "First delivered",
        "after_start": "{duration} after the incident started",
        "social": "Social signal",
        "social_off": "Social signal not configured.",
        "source": "Source",
        "volume": "Complaints during the incident",
        "normal": "Normal",
        "peak_rate": "Peak",
        "per_minute": "{value} per minute",
        "lag": "Complaints rose",
        "lag_after": "{duration} after the incident started",
        "lag_before": "{duration} before the incident started",
        "lag_none": "no rise",
        "generated": "Generated {now}. All times in the {zone} time zone.",
        "other_language": "Bahasa Indonesia",
    },
}

_EVENTS: dict[str, dict[str, str]] = {
    "id": {
        "opened": "Dibuka",
        "joined": "Komponen bergabung",
        "changed": "Status komponen berubah",
        "degraded": "Kinerja menurun",
        "recovered": "Komponen pulih",
        "update": "Pembaruan",
        "resolved": "Selesai",
        "reopened": "Dibuka kembali",
    },
    "en": {
        "opened": "Opened",
        "joined": "Component joined",
        "changed": "Component changed",
        "degraded": "Degraded",
        "recovered": "Component recovered",
        "update": "Update",
        "resolved": "Resolved",
        "reopened": "Reopened",
    },
}

_IMPACTS = {
    "id": {"none": "Tidak ada", "minor": "Ringan", "major": "Besar", "critical": "Kritis"},
    "en": {"none": "None", "minor": "Minor", "major": "Major", "critical": "Critical"},
}

_KINDS = {
    "id": {
        "firing": "peringatan",
        "update": "pembaruan",
        "reminder": "pengingat",
        "resolved": "pulih",
    },
    "en": {"firing": "firing", "update": "update", "reminder": "reminder", "resolved": "resolved"},
}

_DELIVERY_WORDS = {
    "id": {"sent": "terkirim", "failed": "gagal", "pending": "menunggu", "sending": "dikirim"},
    "en": {"sent": "sent", "failed": "failed", "pending": "pending", "sending": "sending"},
}


def _bilingual(text: Statement, lang: str) -> tuple[str, str | None]:
    other = "en" if lang == "id" else "id"
    primary = text.get(lang).strip() or text.get(other).strip()
    secondary = text.get(other).strip()
    return primary, secondary if secondary and secondary != primary else None


def _text_lang(text: Statement, lang: str) -> str:
    """The language :func:`_bilingual` shows first: ``lang`` unless it has no text."""
    return lang if text.get(lang).strip() else ("en" if lang == "id" else "id")


def _zone_name(moment: datetime) -> str:
    """``WIB``; ``UTC+07`` for zones without a letter abbreviation (as :func:`format_time`)."""
    abbreviation = moment.strftime("%Z")
    return f"UTC{abbreviation}" if abbreviation.startswith(("+", "-")) else abbreviation


def _number(value: float, lang: str, *, decimals: int = 0) -> str:
    """``1.234,5`` (Indonesian) or ``1,234.5`` (English)."""
    text = f"{value:,.{decimals}f}"
    return text.translate(str.maketrans(",.", ".,")) if lang == "id" else text


def evidence_text(evidence: Evidence, lang: str) -> str:
    """One line of an automatic entry's evidence: failed runs, error classes, regions and
    latency, in ``lang``."""
    if not evidence.runs:
        return (
            "tidak ada percobaan dalam jendela" if lang == "id" else "no probe runs in the window"
        )
    rate = format_percent(evidence.error_rate, lang)
    of = "dari" if lang == "id" else "of"
    parts = [
        f"{evidence.failures} {of} {evidence.runs} "
        + ("percobaan gagal" if lang == "id" else "runs failed")
        + f" ({rate})"
    ]
    if evidence.error_classes:
        label = "galat" if lang == "id" else "errors"
        counts = ", ".join(f"{k} {v}" for k, v in evidence.error_classes.items())
        parts.append(f"{label}: {counts}")
    if evidence.regions_failing:
        label = "wilayah" if lang == "id" else "regions"
        shown = f"{len(evidence.regions_failing)}/{len(evidence.regions_reporting)}"
        parts.append(f"{label} {shown}: {', '.join(evidence.regions_failing)}")
    if evidence.p50_ms is not None:
        label = "latensi" if lang == "id" else "latency"
        p95 = _number(evidence.p95_ms or 0, lang)
        parts.append(f"{label} p50 {_number(evidence.p50_ms, lang)} ms, p95 {p95} ms")
    return "; ".join(parts)


# -- the view both renderers show ----------------------------------------------------------

#: Shows a moment in the report's zone and language.
_When = Callable[[datetime], str]


def _view(report: IncidentReport, lang: str) -> dict[str, Any]:
    """Plain (unescaped) texts of the report in ``lang``, in the order they are shown.
    Each renderer escapes them its own way."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; use one of {', '.join(LANGUAGES)}")
    t = _UI[lang]

    def when(moment: datetime) -> str:
        return format_time(moment, report.zone, lang)

    title, title_other = _bilingual(report.title, lang)
    return {
        "lang": lang,
        "t": t,
        "site": report.site_title.get(lang),
        "heading": f"{t['report']} #{report.incident_id}",
        "title": title,
        "title_other": title_other,
        "title_lang": _text_lang(report.title, lang),
        "other_lang": "en" if lang == "id" else "id",
        "facts": _facts(report, lang, when),
        "url": report.url,
        # Without [site] base_url the address is relative: shown, but not a link.
        "url_is_link": report.url.startswith(("https://", "http://")),
        "impacts": [_impact_row(i, lang, when) for i in report.impacts],
        "peak": _peak_text(report, lang, when),
        "timeline": [_entry_view(e, lang, when) for e in report.timeline],
        "statements": [_statement_view(s, lang, when) for s in report.statements],
        "alerts": _alert_lines(report, lang, when),
        "social": _social_lines(report.social, lang),
        "footer": t["generated"].format(
            now=when(report.generated_at), zone=_zone_name(report.generated_at)
        ),
    }


def _facts(report: IncidentReport, lang: str, when: _When) -> list[tuple[str, str]]:
    t = _UI[lang]
    origin = t["automatic_origin"] if report.automatic else t["manual_origin"]
    facts = [
        (t["status"], _status_word(report.status, lang)),
        (t["impact"], _impact_word(report, lang)),
        (t["origin"], origin),
        (t["started"], when(report.started_at)),
    ]
    if report.resolved_at is not None:
        facts.append((t["resolved_at"], when(report.resolved_at)))
    else:
        facts.append((t["resolved_at"], t["ongoing"].format(now=when(report.measured_until))))
    facts.append((t["duration"], format_duration(report.duration, lang)))
    return facts


def _impact_word(report: IncidentReport, lang: str) -> str:
    """The worst measured status; the incident's declared impact when none was measured
    (``impact`` follows the components' current statuses, so it falls as they recover)."""
    if report.worst_status != OPERATIONAL:
        return _status_word(report.worst_status, lang)
    return _IMPACTS[lang].get(report.impact, report.impact)


def _status_word(status: str, lang: str) -> str:
    return status_word(status, lang)


def _impact_row(impact: ComponentImpact, lang: str, when: _When) -> list[str]:
    t = _UI[lang]
    recovered = when(impact.recovered_at) if impact.recovered_at else t["not_recovered"]
    if impact.worst_status == OPERATIONAL:
        recovered = "–"
    return [
        impact.name.get(lang) or impact.component_id,
        _status_word(impact.worst_status, lang),
        format_duration(impact.impact, lang),
        format_duration(impact.degraded, lang),
        when(impact.first_failure_at) if impact.first_failure_at else "–",
        recovered,
    ]


def _peak_text(report: IncidentReport, lang: str, when: _When) -> str:
    t, peak = _UI[lang], report.peak
    if peak is None:
        return t["no_peak"].format(min=PEAK_MIN_RUNS)
    names = {i.component_id: i.name.get(lang) for i in report.impacts}
    return t["peak_hour_text" if peak.resolution == "hour" else "peak_text"].format(
        ratio=format_percent(peak.ratio, lang),
        failures=peak.failures,
        runs=peak.runs,
        component=names.get(peak.component_id, peak.component_id),
        at=when(peak.at),
        days=_days(peak.raw_days or 0, lang),
    )


def _days(count: int, lang: str) -> str:
    """``14`` (the Indonesian text says ``hari`` itself) or ``14 days`` / ``1 day``."""
    if lang == "id":
        return _number(count, lang)
    return f"{_number(count, lang)} {'day' if count == 1 else 'days'}"


def _entry_view(entry: TimelineEntry, lang: str, when: _When) -> dict[str, Any]:
    text, other = entry.texts(lang)
    author = f"Pantau ({_UI[lang]['automatic']})" if entry.automatic else entry.author
    return {
        "when": when(entry.at),
        "iso": entry.at.isoformat(timespec="seconds"),
        "status": _status_word(entry.status, lang),
        "event": _EVENTS[lang].get(entry.event, entry.event),
        "author": author,
        "automatic": entry.automatic,
        "text": text,
        "text_lang": _text_lang(entry.message, lang),
        "other": other,
        "evidence": evidence_text(entry.evidence, lang) if entry.evidence else None,
    }


def _statement_view(statement: PublishedStatement, lang: str, when: _When) -> dict[str, Any]:
    t, post = _UI[lang], statement.x_post
    if post is None:
        x_text = t["x_none"]
    else:
        x_text = t.get(f"x_{post.status}", post.status)
        if post.status == "failed" and post.error:
            x_text += f": {post.error}"
    view = _entry_view(statement.entry, lang, when)
    view.update(x=x_text, x_status=post.status if post else "none", urls=post.urls if post else ())
    return view


def _alert_lines(report: IncidentReport, lang: str, when: _When) -> list[str]:
    t, alerts = _UI[lang], report.alerts
    if not alerts.message_count:
        return [t["no_alerts"]]
    kinds = ", ".join(f"{_KINDS[lang].get(k, k)} {n}" for k, n in alerts.messages)
    outcomes = ", ".join(f"{_DELIVERY_WORDS[lang].get(s, s)} {n}" for s, n in alerts.deliveries)
    lines = [
        f"{t['messages']}: {alerts.message_count} ({kinds})",
        f"{t['deliveries']}: {outcomes} ({alerts.targets} {t['targets']})",
    ]
    if alerts.first_sent_at is not None:
        after = format_duration(alerts.first_sent_at - report.started_at, lang)
        lines.append(
            f"{t['first_sent']}: {when(alerts.first_sent_at)} "
            f"({t['after_start'].format(duration=after)})"
        )
    return lines


def _social_lines(social: SocialSummary | None, lang: str) -> list[str]:
    t = _UI[lang]
    if social is None:
        return [t["social_off"]]
    if social.lag is None:
        lag = t["lag_none"]
    else:
        key = "lag_before" if social.lag < timedelta(0) else "lag_after"
        lag = t[key].format(duration=format_duration(abs(social.lag), lang))
    per_minute = t["per_minute"]
    return [
        f"{t['source']}: {social.label}",
        f"{t['volume']}: {_number(social.volume, lang)}",
        f"{t['normal']}: {per_minute.format(value=_number(social.normal, lang, decimals=1))}",
        f"{t['peak_rate']}: "
        + per_minute.format(value=_number(social.peak_per_minute, lang, decimals=1)),
        f"{t['lag']}: {lag}",
    ]


# -- Markdown ------------------------------------------------------------------------------

# Characters with a meaning anywhere in a line (``&``, ``<`` and ``>`` become entities);
# ``(``, ``)`` and ``!`` mean something only next to ``[`` or ``]``, escaped here.
_MD_INLINE = re.compile(r"([\\`*_\[\]|~])")
# What makes a block when it starts a line: a heading, a list item, a setext underline.
_MD_BLOCK_START = re.compile(r"^([#+\-=])")
_MD_ORDERED_ITEM = re.compile(r"^(\d{1,9})([.)])(?=\s|$)")


def escape_markdown(text: str) -> str:
    """``text`` as literal Markdown (CommonMark and GitHub's tables): HTML is made entities
    and every character with a Markdown meaning is backslash-escaped, so links, emphasis,
    headings, lists, raw HTML and table cells cannot be formed. Newlines are kept."""
    lines = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        # Leading blanks would make a code block; the rest is escaped character by character.
        escaped = _MD_INLINE.sub(r"\\\1", html.escape(line.strip(), quote=False))
        escaped = _MD_BLOCK_START.sub(r"\\\1", escaped)
        lines.append(_MD_ORDERED_ITEM.sub(r"\1\\\2", escaped))
    return "\n".join(lines)


def _md_cell(text: str) -> str:
    """A table cell: escaped, on one line (line breaks become ``<br>``)."""
    return "<br>".join(line for line in escape_markdown(text).split("\n") if line)


def _md_block(text: str, indent: str) -> list[str]:
    """Escaped lines of a multi-line text inside a list item, joined by hard breaks."""
    lines = [f"{indent}{line}" for line in escape_markdown(text).split("\n") if line]
    return [line + "  " for line in lines[:-1]] + lines[-1:]


def render_markdown(report: IncidentReport, *, lang: str = "id") -> str:
    """The report as Markdown in ``lang`` (``id`` or ``en``; ValueError otherwise)."""
    view = _view(report, lang)
    t = view["t"]
    out = [f"# {view['heading']}: {escape_markdown(view['title'])}", ""]
    if view["title_other"]:
        out += [f"*{escape_markdown(view['title_other'])}*", ""]
    out += [f"- **{label}:** {escape_markdown(value)}" for label, value in view["facts"]]
    out += [f"- **{t['page']}:** <{_md_url(view['url'])}>", ""]
    out += _md_impacts(view)
    out += [f"## {t['peak']}", "", escape_markdown(view["peak"]), ""]
    out += _md_timeline(view)
    out += _md_statements(view)
    out += [f"## {t['alerts']}", ""] + [f"- {escape_markdown(x)}" for x in view["alerts"]] + [""]
    out += [f"## {t['social']}", ""] + [f"- {escape_markdown(x)}" for x in view["social"]] + [""]
    out += ["---", "", f"*{escape_markdown(view['footer'])}*", ""]
    return "\n".join(out)


def _md_url(url: str) -> str:
    """An address for an autolink: characters that would end it are percent-encoded."""
    return re.sub(r"[<>\s]", lambda m: f"%{ord(m.group()):02X}", url)


def _md_impacts(view: dict[str, Any]) -> list[str]:
    t = view["t"]
    out = [f"## {t['components']}", ""]
    if not view["impacts"]:
        return [*out, t["no_components"], ""]
    header = [
        t["component"],
        t["worst"],
        t["outage_time"],
        t["degraded_time"],
        t["first_failure"],
        t["recovered"],
    ]
    out += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in view["impacts"]]
    return [*out, ""]


def _md_entry(view: dict[str, Any], entry: dict[str, Any], head: list[str]) -> list[str]:
    """A list item: its heading line, the text, and the other language's text quoted.

    Blank lines keep the parts apart: a line after a quote would otherwise join the quote.
    """
    out = ["- " + " · ".join(head), "", *_md_block(entry["text"], "  ")]
    if entry["other"]:
        out += ["", f"  > *{view['t']['other_language']}:*  "]
        out += _md_block(entry["other"], "  > ")
    return [*out, ""]


def _md_timeline(view: dict[str, Any]) -> list[str]:
    t = view["t"]
    out = [f"## {t['timeline']}", ""]
    if not view["timeline"]:
        return [*out, t["no_timeline"], ""]
    for entry in view["timeline"]:
        head = [f"**{entry['when']}**", entry["status"], entry["event"]]
        head.append(escape_markdown(entry["author"]))
        out += _md_entry(view, entry, head)
        if entry["evidence"]:
            out += [f"  {t['evidence']}: {escape_markdown(entry['evidence'])}", ""]
    return out


def _md_statements(view: dict[str, Any]) -> list[str]:
    t = view["t"]
    out = [f"## {t['statements']}", ""]
    if not view["statements"]:
        return [*out, t["no_statements"], ""]
    for entry in view["statements"]:
        head = [f"**{entry['when']}**", entry["status"], escape_markdown(entry["author"])]
        out += _md_entry(view, entry, head)
        out += [f"  {escape_markdown(entry['x'])}", ""]
        out += [f"  - <{_md_url(url)}>" for url in entry["urls"]]
        out += [""] if entry["urls"] else []
    return out


# -- HTML ----------------------------------------------------------------------------------


def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(templates_dir()),
        autoescape=select_autoescape(default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_html(report: IncidentReport, *, lang: str = "id") -> str:
    """The report as one standalone HTML5 document in ``lang`` (``id`` or ``en``;
    ValueError otherwise): inline CSS, no external requests, all text escaped."""
    view = _view(report, lang)
    return _environment().get_template("report/report.html.j2").render(**view)
