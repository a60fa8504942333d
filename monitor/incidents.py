"""Incidents: opened, updated and resolved automatically and by the comms team.

Automatic events and human statements form one timeline of
:class:`~monitor.store.IncidentUpdateRow`. Engineers are alerted by the rules of
``monitor.alerts``, which group their alerts per incident; the public timeline and
the alerts are separate streams.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from monitor.config import Settings
from monitor.detect import DEGRADED, MAJOR_OUTAGE, OPERATIONAL, SEVERITY, ComponentChange
from monitor.i18n import format_duration, format_percent, format_time, join_names
from monitor.rules import Evidence, component_evidence
from monitor.statements import Statement, StatementLibrary
from monitor.store import IncidentRow, IncidentUpdateRow, StoreTx

INCIDENT_STATUSES = ("investigating", "identified", "monitoring", "resolved")
AUTHOR_AUTO = "pantau"
#: The shortest span of results an automatic timeline entry's evidence covers.
EVIDENCE_WINDOW = timedelta(minutes=2)


class IncidentError(Exception):
    """An incident operation was refused (unknown id, bad status, unknown component)."""


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    """What an incident operation did, for logs, the CLI and the demo's timeline."""

    incident_id: int
    event: str  # opened | joined | recovered | resolved | reopened | update
    at: datetime
    title: str
    components: tuple[str, ...]


def _names(settings: Settings, component_ids: list[str], lang: str) -> str:
    order = {c.id: i for i, c in enumerate(settings.components)}
    component_ids = sorted(component_ids, key=lambda cid: (order.get(cid, len(order)), cid))
    names = []
    for cid in component_ids:
        try:
            names.append(settings.component(cid).name.get(lang))
        except KeyError:
            names.append(cid)
    return join_names(names, lang)


def statement_variables(
    settings: Settings,
    component_ids: list[str],
    *,
    started_at: datetime,
    now: datetime,
    error_rate: float | None = None,
    **extra: Any,
) -> dict[str, dict[str, Any]]:
    """Variables of a statement template, per language: ``components`` (their names),
    ``started_at`` and ``now`` (in the site's zone), ``duration``, ``error_rate``
    ("45%", or empty when unknown) and any ``extra``."""
    zone = settings.site.zone
    return {
        lang: {
            "components": _names(settings, component_ids, lang),
            "started_at": format_time(started_at, zone, lang),
            "now": format_time(now, zone, lang),
            "duration": format_duration(now - started_at, lang),
            "error_rate": format_percent(error_rate, lang),
            **extra,
        }
        for lang in ("id", "en")
    }


def recent_error_rate(
    tx: StoreTx, component_ids: list[str], *, now: datetime, window: timedelta = EVIDENCE_WINDOW
) -> float | None:
    """The share of failing probe runs of ``component_ids`` over the last ``window``
    (for the ``error_rate`` of statements); None without runs."""
    runs = failures = 0
    for component_id in component_ids:
        evidence = component_evidence(tx, component_id, now=now, window=window)
        runs, failures = runs + evidence.runs, failures + evidence.failures
    return failures / runs if runs else None


def _impact(statuses: dict[str, str]) -> str:
    worst = max((SEVERITY.get(s, 0) for s in statuses.values()), default=0)
    return {4: "major", 3: "minor", 2: "minor"}.get(worst, "none")


def open_incident(
    tx: StoreTx,
    settings: Settings,
    *,
    now: datetime,
    components: dict[str, str],
    statement: Statement,
    title: Statement,
    status: str = "investigating",
    author: str = AUTHOR_AUTO,
    automatic: bool = False,
    details: str | None = None,
) -> IncidentRow:
    """Open an incident with a first timeline entry (automatic ones carry ``details``,
    their evidence as JSON)."""
    _validate(settings, status, components)
    incident = tx.add_incident(
        IncidentRow(
            title_id=title.id,
            title_en=title.en,
            status=status,
            impact=_impact(components),
            automatic=automatic,
            started_at=now,
            updated_at=now,
        ),
        components,
    )
    _add_entry(
        tx,
        incident,
        now=now,
        status=status,
        statement=statement,
        author=author,
        event="opened",
        details=details,
    )
    return incident


def _validate(settings: Settings, status: str, components: dict[str, str]) -> None:
    if status not in INCIDENT_STATUSES:
        raise IncidentError(f"unknown status {status!r}; use one of {', '.join(INCIDENT_STATUSES)}")
    known = {c.id for c in settings.components}
    unknown = sorted(set(components) - known)
    if unknown:
        raise IncidentError(f"unknown component(s): {', '.join(unknown)}")


def _add_entry(
    tx: StoreTx,
    incident: IncidentRow,
    *,
    now: datetime,
    status: str,
    statement: Statement,
    author: str,
    event: str,
    details: str | None = None,
) -> IncidentUpdateRow:
    assert incident.id is not None
    return tx.add_update(
        IncidentUpdateRow(
            incident_id=incident.id,
            at=now,
            status=status,
            author=author,
            message_id=statement.id,
            message_en=statement.en,
            automatic=author == AUTHOR_AUTO,
            event=event,
            details=details,
        )
    )


def update_incident(
    tx: StoreTx,
    settings: Settings,
    incident_id: int,
    *,
    now: datetime,
    statement: Statement,
    status: str | None = None,
    author: str,
    components: dict[str, str] | None = None,
) -> IncidentRow:
    """Add a statement to an incident; ``status="resolved"`` resolves it, a new status on a
    resolved incident reopens it. Raises IncidentError."""
    incident = tx.incident(incident_id)
    if incident is None:
        raise IncidentError(f"no incident {incident_id}")
    new_status = status or incident.status
    _validate(settings, new_status, components or {})
    for component_id, component_status in (components or {}).items():
        tx.set_incident_component(incident_id, component_id, component_status)
    event = _event_for(incident.status, new_status)
    incident.status, incident.updated_at = new_status, now
    if event == "resolved":
        incident.resolved_at = now
        for component_id in tx.incident_components(incident_id):
            tx.set_incident_component(incident_id, component_id, OPERATIONAL)
    elif event == "reopened":
        incident.resolved_at = None
    _add_entry(
        tx, incident, now=now, status=new_status, statement=statement, author=author, event=event
    )
    return incident


def _event_for(old: str, new: str) -> str:
    if new == "resolved" and old != "resolved":
        return "resolved"
    if old == "resolved" and new != "resolved":
        return "reopened"
    return "update"


class IncidentAutomation:
    """Opens, joins and resolves automatic incidents from component changes."""

    def __init__(self, settings: Settings, statements: StatementLibrary) -> None:
        self.settings = settings
        self.statements = statements

    def handle(
        self, tx: StoreTx, change: ComponentChange, *, now: datetime
    ) -> IncidentEvent | None:
        """Apply one component change to the incidents, in ``tx``. A component in planned
        maintenance opens no incident: the page says it is under maintenance."""
        if self.settings.maintenance_of(change.component_id, now) is not None:
            return None
        if change.is_failure:
            return self._on_failure(tx, change, now=now)
        if change.is_recovery:
            return self._on_recovery(tx, change, now=now)
        if change.to_status == DEGRADED:
            return self._on_degraded(tx, change, now=now)
        return None

    def _on_degraded(
        self, tx: StoreTx, change: ComponentChange, *, now: datetime
    ) -> IncidentEvent | None:
        """Slow or queued but working: no new incident, but an open one says so."""
        incident = self._open_for(tx, change.component_id)
        if incident is None or incident.id is None:
            return None
        if change.component_id not in tx.incident_components(incident.id):
            return None
        tx.set_incident_component(incident.id, change.component_id, DEGRADED)
        name_id, name_en = self._name(change.component_id)
        note = Statement(
            id=f"{name_id} sudah bisa diakses lagi, tetapi masih lambat.",
            en=f"{name_en} is reachable again but still slow.",
        )
        return self._note(tx, incident, change, note, event="degraded", now=now)

    def _evidence(self, tx: StoreTx, component_id: str, now: datetime) -> Evidence:
        """The component's runs over the last few intervals: error rate, classes, regions."""
        intervals = [c.interval for c in self.settings.checks_of(component_id)]
        window = max([EVIDENCE_WINDOW, *(3 * i for i in intervals)])
        return component_evidence(tx, component_id, now=now, window=window)

    def _name(self, component_id: str) -> tuple[str, str]:
        return (
            _names(self.settings, [component_id], "id"),
            _names(self.settings, [component_id], "en"),
        )

    def _note(
        self,
        tx: StoreTx,
        incident: IncidentRow,
        change: ComponentChange,
        note: Statement,
        *,
        event: str,
        now: datetime,
    ) -> IncidentEvent:
        """An automatic timeline entry about one component of an open incident, with the
        component's evidence."""
        assert incident.id is not None
        _add_entry(
            tx,
            incident,
            now=now,
            status=incident.status,
            statement=note,
            author=AUTHOR_AUTO,
            event=event,
            details=self._evidence(tx, change.component_id, now).dumps(),
        )
        incident.updated_at = now
        return IncidentEvent(incident.id, event, now, incident.title_id, (change.component_id,))

    def _open_for(self, tx: StoreTx, component_id: str) -> IncidentRow | None:
        """The unresolved incident a failing component belongs to: one naming it, else an
        automatic one (so a wave breaking four components makes one incident, not four)."""
        open_incidents = tx.incidents(unresolved=True)
        for incident in open_incidents:
            assert incident.id is not None
            if component_id in tx.incident_components(incident.id):
                return incident
        return next((i for i in open_incidents if i.automatic), None)

    def _on_failure(
        self, tx: StoreTx, change: ComponentChange, *, now: datetime
    ) -> IncidentEvent | None:
        incident = self._open_for(tx, change.component_id)
        if incident is not None:
            assert incident.id is not None
            already = change.component_id in tx.incident_components(incident.id)
            tx.set_incident_component(incident.id, change.component_id, change.to_status)
            affected = tx.incident_components(incident.id)
            incident.impact = _impact(affected)
            incident.updated_at = now
            if incident.automatic:
                self._retitle(incident, sorted(affected), now=now)
            if already:  # worse or better within the outage: a note, not a new member
                note, event = self._changed_note(change), "changed"
            else:
                note, event = self._joined_note(change), "joined"
            return self._note(tx, incident, change, note, event=event, now=now)
        if not self.settings.detection.auto_incidents:
            return None
        started = change.at
        evidence = self._evidence(tx, change.component_id, now)
        variables = statement_variables(
            self.settings,
            [change.component_id],
            started_at=started,
            now=now,
            error_rate=evidence.error_rate,
        )
        incident = open_incident(
            tx,
            self.settings,
            now=now,
            components={change.component_id: change.to_status},
            statement=self.statements.render("investigating", variables),
            title=self.statements.render("title", variables),
            automatic=True,
            details=evidence.dumps(),
        )
        assert incident.id is not None
        return IncidentEvent(incident.id, "opened", now, incident.title_id, (change.component_id,))

    def _retitle(self, incident: IncidentRow, component_ids: list[str], *, now: datetime) -> None:
        """An automatic incident's title names every component it covers."""
        variables = statement_variables(
            self.settings, component_ids, started_at=incident.started_at, now=now
        )
        title = self.statements.render("title", variables)
        incident.title_id, incident.title_en = title.id, title.en

    def _changed_note(self, change: ComponentChange) -> Statement:
        """The entry when a component already in the incident gets worse or better."""
        name_id, name_en = self._name(change.component_id)
        if change.to_status == MAJOR_OUTAGE:
            return Statement(
                id=f"{name_id} kini tidak dapat diakses sama sekali.",
                en=f"{name_en} is now fully unavailable.",
            )
        return Statement(
            id=f"{name_id} sebagian sudah berfungsi, tetapi masih terganggu.",
            en=f"{name_en} is partly working but still disrupted.",
        )

    def _joined_note(self, change: ComponentChange) -> Statement:
        """The public timeline entry when another component joins an open incident.

        Evidence (check names, error details) goes to engineers' alerts, not the public page.
        """
        name_id, name_en = self._name(change.component_id)
        words = {MAJOR_OUTAGE: ("tidak dapat diakses", "unavailable")}.get(
            change.to_status, ("terganggu sebagian", "partially unavailable")
        )
        return Statement(
            id=f"Juga terdampak: {name_id} {words[0]}.", en=f"Also affected: {name_en} {words[1]}."
        )

    def _on_recovery(
        self, tx: StoreTx, change: ComponentChange, *, now: datetime
    ) -> IncidentEvent | None:
        incident = self._open_for(tx, change.component_id)
        if incident is None or incident.id is None:
            return None
        affected = tx.incident_components(incident.id)
        if change.component_id not in affected:
            return None
        tx.set_incident_component(incident.id, change.component_id, OPERATIONAL)
        affected[change.component_id] = OPERATIONAL
        all_clear = all(status == OPERATIONAL for status in affected.values())
        if not (incident.automatic and all_clear):
            name_id, name_en = self._name(change.component_id)
            note = Statement(id=f"{name_id} kembali normal.", en=f"{name_en} is working again.")
            return self._note(tx, incident, change, note, event="recovered", now=now)
        variables = statement_variables(
            self.settings, sorted(affected), started_at=incident.started_at, now=now
        )
        update_incident(
            tx,
            self.settings,
            incident.id,
            now=now,
            statement=self.statements.render("resolved", variables),
            status="resolved",
            author=AUTHOR_AUTO,
        )
        return IncidentEvent(
            incident.id, "resolved", now, incident.title_id, tuple(sorted(affected))
        )
