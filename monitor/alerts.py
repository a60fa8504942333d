"""Alerts to engineers: rules fire alerts, alerts are grouped per incident, groups
send messages through Apprise, recorded per target and delivered at most once.

:func:`evaluate_alerts` steps each alert (pending, firing after the rule's ``for``,
resolved) and each group (first message after ``group_wait``, updates, reminders
every ``repeat_interval``, one message when all clear); silences and maintenance
events hold alerts back. Messages are delivery rows written in the same transaction
as the state that causes them. :func:`deliver_pending` claims each due row
with an update that succeeds once, sends it, and records the outcome: sent, a
retry with exponential backoff, or failed after ``max_attempts``. A claimed row
whose process died before recording the outcome stays ``sending`` until the leader
sees that process gone (no heartbeat) and the send's timeout passed; it is then sent
again, so a message is lost by no crash, and arrives twice only when the sender died
in the instant between the target accepting it and the outcome being recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from monitor.config import AlertRule, AlertSettings, Settings
from monitor.fields import Secret
from monitor.i18n import format_duration, format_time
from monitor.rules import PUBLIC, Condition, Evidence
from monitor.store import (
    AlertDeliveryRow,
    AlertGroupRow,
    AlertRow,
    IncidentRow,
    Store,
    StoreTx,
)

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """A notification target refused or could not be reached."""


class Notifier(Protocol):
    """Sends one message to one target. Raises DeliveryError on failure."""

    def send(self, target: Secret, *, title: str, body: str) -> None: ...


class AppriseNotifier:
    """The Apprise adapter: the one place that talks to Apprise."""

    def __init__(self, *, timeout: float = 10.0) -> None:
        self.timeout = timeout

    def warm(self) -> None:
        """Load Apprise and its plugins (half a second, once) before a delivery is claimed,
        so a claimed message reaches its target quickly: a process killed between the
        claim and the send leaves a message to be sent again later."""
        import apprise

        apprise.Apprise(asset=apprise.AppriseAsset(async_mode=False)).add("json://127.0.0.1/")

    def send(self, target: Secret, *, title: str, body: str) -> None:
        import apprise

        notifier = apprise.Apprise(asset=apprise.AppriseAsset(async_mode=False))
        if not notifier.add(target.reveal()):
            raise DeliveryError(f"not a usable Apprise URL: {target.masked()}")
        for service in notifier:
            # Bound each attempt; Apprise's defaults wait up to a minute.
            service.socket_connect_timeout = self.timeout
            service.socket_read_timeout = self.timeout
        try:
            ok = notifier.notify(title=title, body=body)
        except Exception as exc:  # Apprise plugins may raise anything
            raise DeliveryError(f"{type(exc).__name__} from {target.masked()}") from exc
        if not ok:
            raise DeliveryError(f"delivery to {target.masked()} failed")


def incident_url(settings: Settings, incident_id: int | None) -> str:
    """The public page of an incident (the status page when there is none)."""
    base = settings.site.base_url.rstrip("/")
    path = f"incidents/{incident_id}.html" if incident_id is not None else "index.html"
    return f"{base}/{path}" if base else path


# -- rules to alerts ------------------------------------------------------------
@dataclass(slots=True)
class AlertReport:
    """What one evaluation did."""

    fired: list[AlertRow] = field(default_factory=list)
    resolved: list[AlertRow] = field(default_factory=list)
    #: ``(group id, kind)`` of every message enqueued.
    messages: list[tuple[int, str]] = field(default_factory=list)


def suppressions(tx: StoreTx, settings: Settings, now: datetime) -> dict[str, str]:
    """Components whose alerts are held back now, with why: a silence or a maintenance."""
    held: dict[str, str] = {}
    for silence in tx.silences(now=now):
        if silence.active(now):
            held.setdefault(silence.component_id, f"silence #{silence.id}: {silence.reason}")
    for component in settings.components:
        event = settings.maintenance_of(component.id, now)
        if event is not None:
            held.setdefault(component.id, f"maintenance {event.id}")
    return held


def evaluate_alerts(
    tx: StoreTx, settings: Settings, conditions: list[Condition], *, now: datetime
) -> AlertReport:
    """Step every alert with the rules' verdicts, group firing ones, enqueue messages.

    All in ``tx``: alert states, groups and the deliveries they cause commit together,
    so a restart neither repeats nor loses a message.
    """
    report = AlertReport()
    live = {(a.rule_id, a.subject): a for a in tx.live_alerts()}
    held = suppressions(tx, settings, now)
    grouping = _Grouping(tx, settings, now)
    for condition in conditions:
        alert = live.pop((condition.rule.id, condition.subject), None)
        if (
            alert is not None
            and alert.state == "firing"
            and condition.rule.kind == "consecutive"
            and _recovered_since(tx, alert)
        ):
            # The component recovered and failed again between two evaluations (none ran
            # in between: a restart, a stall): that outage is over, this is a new one.
            _resolve(alert, now, report)
            alert = None
        if not condition.active:
            # A pending alert needs its condition without a break; a firing one stays
            # until the condition has cleared (a single pass does not end an outage).
            if alert is not None and (alert.state == "pending" or condition.clear):
                _resolve(alert, now, report)
                continue
            if alert is None:
                continue
        if alert is None:
            alert = tx.add_alert(
                AlertRow(
                    rule_id=condition.rule.id,
                    subject=condition.subject,
                    component_id=condition.component_id,
                    state="pending",
                    active_since=_active_since(condition, now),
                    evaluated_at=now,
                )
            )
        alert.value, alert.evidence = condition.value, condition.evidence.dumps()
        alert.evaluated_at = now
        alert.suppressed_by = held.get(condition.component_id)
        due = now - alert.active_since >= condition.rule.for_
        if alert.state == "pending" and condition.active and due:
            alert.state, alert.fired_at = "firing", now
            report.fired.append(alert)
            log.info(
                "alert firing rule=%s subject=%s value=%s",
                alert.rule_id,
                alert.subject,
                alert.value,
            )
        if alert.state == "firing" and alert.group_id is None and alert.suppressed_by is None:
            alert.group_id = grouping.group_for(alert).id
    for alert in live.values():  # its rule is gone from the config
        _resolve(alert, now, report)
    tx.session.flush()
    for group in tx.open_groups():
        _step_group(tx, settings, group, now=now, report=report)
    return report


def _resolve(alert: AlertRow, now: datetime, report: AlertReport) -> None:
    was_firing = alert.state == "firing"
    alert.state, alert.resolved_at, alert.evaluated_at = "resolved", now, now
    if was_firing:
        report.resolved.append(alert)
        log.info("alert resolved rule=%s subject=%s", alert.rule_id, alert.subject)


def _recovered_since(tx: StoreTx, alert: AlertRow) -> bool:
    """Whether the alert's component went back to operational after the alert fired."""
    if alert.fired_at is None:
        return False
    return any(
        t.component_id == alert.component_id and t.to_status == "operational"
        for t in tx.transitions_in(since=alert.fired_at)
    )


def _active_since(condition: Condition, now: datetime) -> datetime:
    """When a newly seen condition began. Consecutive failures began at the first of them
    (an evaluation that comes late, after a restart or a stall, must not delay the alert's
    ``for``, nor hide an outage that ended within ``group_wait`` of being seen); for the
    other rules, now."""
    first = condition.evidence.first_failure_at
    if condition.rule.kind == "consecutive" and first is not None:
        return min(first, now)
    return now


class _Grouping:
    """Finds the group a newly firing alert joins (one per incident, so a wave opening
    that breaks four components is one message, not four)."""

    def __init__(self, tx: StoreTx, settings: Settings, now: datetime) -> None:
        self.tx, self.settings, self.now = tx, settings, now
        self._incidents: list[tuple[IncidentRow, set[str]]] | None = None

    def incidents(self) -> list[tuple[IncidentRow, set[str]]]:
        if self._incidents is None:
            self._incidents = [
                (i, set(self.tx.incident_components(i.id)))
                for i in self.tx.incidents(unresolved=True)
                if i.id is not None
            ]
        return self._incidents

    def incident_for(self, component_ids: Iterable[str]) -> IncidentRow | None:
        """The unresolved incident naming one of the components, else an automatic one."""
        wanted = set(component_ids)
        for incident, components in self.incidents():
            if components & wanted:
                return incident
        return next((i for i, _ in self.incidents() if i.automatic), None)

    def group_for(self, alert: AlertRow) -> AlertGroupRow:
        incident = self.incident_for([alert.component_id])
        groups = self.tx.open_groups()
        if incident is not None:
            for group in groups:
                if group.incident_id == incident.id:
                    return group
        wait = self.settings.alerts.group_wait
        for group in groups:
            if group.incident_id is None and self.now - group.created_at <= wait:
                return group
        return self.tx.add_group(
            AlertGroupRow(
                incident_id=incident.id if incident else None,
                created_at=self.now,
                send_after=self.now + wait,
            )
        )


def _step_group(
    tx: StoreTx, settings: Settings, group: AlertGroupRow, *, now: datetime, report: AlertReport
) -> None:
    """Send what a group owes: its first message after ``group_wait``, an update when new
    alerts joined (at most every ``group_interval``), a reminder every
    ``repeat_interval``, and one message when its last alert resolves."""
    assert group.id is not None
    members = tx.alerts(group_id=group.id)
    if group.incident_id is None:
        incident = _Grouping(tx, settings, now).incident_for(a.component_id for a in members)
        group.incident_id = incident.id if incident else None
    firing = [a for a in members if a.state == "firing"]
    told = [a for a in firing if a.suppressed_by is None]
    rule = settings.alerts
    kind: str | None = None
    if not firing:
        group.status, group.resolved_at = "resolved", now
        kind = "resolved" if group.messages else None
        if kind is None and _untold_outage(members, rule.group_wait, now):
            # An outage longer than group_wait that ended before its first message went
            # out (the evaluation saw it late: a restart, a stall): told, then its end.
            title, body = alert_message(tx, settings, group, members, kind="firing", now=now)
            _enqueue(tx, settings, group, kind="firing", title=title, body=body, now=now)
            report.messages.append((group.id, "firing"))
            kind = "resolved"
    elif not told:
        kind = None
    elif not group.messages:
        kind = "firing" if now >= group.send_after else None
    else:
        assert group.last_message_at is not None
        since_last = now - group.last_message_at
        if any(not a.notified for a in told) and since_last >= rule.group_interval:
            kind = "update"
        elif since_last >= rule.repeat_interval:
            kind = "reminder"
    if kind is None:
        return
    title, body = alert_message(tx, settings, group, members, kind=kind, now=now)
    _enqueue(tx, settings, group, kind=kind, title=title, body=body, now=now)
    for alert in told:
        alert.notified = True
    report.messages.append((group.id, kind))


def _untold_outage(members: list[AlertRow], wait: timedelta, now: datetime) -> bool:
    """Whether a member fired, unsilenced, for a condition that lasted ``wait`` or more
    (from its first failure to its resolution): not a flap, and nobody was told."""
    return any(
        a.fired_at is not None
        and a.suppressed_by is None
        and (a.resolved_at or now) - a.active_since >= wait
        for a in members
    )


def _enqueue(
    tx: StoreTx,
    settings: Settings,
    group: AlertGroupRow,
    *,
    kind: str,
    title: str,
    body: str,
    now: datetime,
) -> None:
    assert group.id is not None
    for index, target in enumerate(settings.alerts.notify):
        tx.add_delivery(
            AlertDeliveryRow(
                group_id=group.id,
                seq=group.messages,
                kind=kind,
                incident_id=group.incident_id,
                target_index=index,
                target_label=target.masked(),
                title=title,
                body=body,
                next_attempt_at=now,
                created_at=now,
            )
        )
    group.messages += 1
    group.last_message_at = now


# -- messages ---------------------------------------------------------------------
def _component_name(settings: Settings, component_id: str) -> str:
    if component_id == PUBLIC:
        return "Public reports"
    try:
        return settings.component(component_id).name.get("en")
    except KeyError:
        return component_id


def rule_text(rule: AlertRule | None, alert: AlertRow, settings: Settings) -> str:
    """What the rule measured, in words: ``error rate 45% > 20% over 2m``."""
    if rule is None:
        return f"rule {alert.rule_id} (no longer configured)"
    window = format_duration(rule.window, "en")
    if rule.kind == "error_rate":
        return f"error rate {alert.value:.0%} > {rule.above or 0:.0%} over {window}"
    if rule.kind == "latency":
        return f"p{rule.percentile:g} latency {alert.value:.2f} s > {rule.above or 0:g} s over {window}"
    if rule.kind == "complaints":
        return "public complaints spiking while every probe is green (a blind spot)"
    needed = rule.failures or settings.detection.failures_to_down
    return f"{alert.value:.0f} consecutive failures (alerting at {needed})"


def alert_message(
    tx: StoreTx,
    settings: Settings,
    group: AlertGroupRow,
    members: list[AlertRow],
    *,
    kind: str,
    now: datetime,
) -> tuple[str, str]:
    """The title and body of a group's message, with each alert's evidence. Secret-free."""
    zone = settings.site.zone
    rules = {r.id: r for r in settings.alert_rules()}
    shown = members if kind == "resolved" else [a for a in members if a.state == "firing"]
    order = {c.id: i for i, c in enumerate(settings.components)}
    shown = sorted(shown, key=lambda a: (order.get(a.component_id, len(order)), a.id or 0))
    names = []
    for alert in shown:
        name = _component_name(settings, alert.component_id)
        if name not in names:
            names.append(name)
    incident = tx.incident(group.incident_id) if group.incident_id is not None else None
    label = {"firing": "FIRING", "update": "FIRING (update)", "reminder": "STILL FIRING"}.get(
        kind, "RESOLVED"
    )
    title = f"[Pantau] {label}: {', '.join(names)}"
    if incident is not None:
        title += f" (incident #{incident.id})"
    lines: list[str] = []
    if kind == "resolved":
        lines.append(
            f"All clear at {format_time(now, zone, 'en')}, "
            f"{format_duration(now - group.created_at, 'en')} after the first alert."
        )
    else:
        lines.append(
            f"{len(shown)} alert(s) firing, first at {format_time(group.created_at, zone, 'en')}."
        )
    if incident is not None:
        lines.append(f"Incident #{incident.id} [{incident.status}]: {incident.title('en')}")
    lines.append(f"Incident page: {incident_url(settings, group.incident_id)}")
    for alert in shown:
        lines.append("")
        lines.extend(_alert_lines(settings, alert, rules.get(alert.rule_id), zone=zone))
    return title, "\n".join(lines)


def _alert_lines(
    settings: Settings, alert: AlertRow, rule: AlertRule | None, *, zone: ZoneInfo
) -> list[str]:
    name = _component_name(settings, alert.component_id)
    subject = "" if alert.subject == alert.component_id else f", check {alert.subject}"
    state = "resolved" if alert.state == "resolved" else "firing"
    lines = [
        f"- {name} ({alert.component_id}{subject}) {state}: {rule_text(rule, alert, settings)}"
    ]
    if alert.suppressed_by:
        lines.append(f"  held back by {alert.suppressed_by}")
    evidence = Evidence.loads(alert.evidence)
    if evidence is None:
        return lines
    if evidence.complaints:
        spike = evidence.complaints
        minutes = int(spike.get("bucket_seconds", 300)) // 60
        topics = ", ".join(spike.get("topics") or []) or "unclassified"
        lines.append(
            f"  people report trouble the probes do not see: {spike['complaints']:.0f} "
            f"complaints in {minutes} min against {spike['expected']} normal; topics: {topics}"
        )
        return lines
    if evidence.failing_checks:
        checks = ", ".join(f"{k}={v}" for k, v in evidence.failing_checks.items())
        lines.append(f"  failing checks: {checks}")
    if evidence.error_classes:
        classes = ", ".join(f"{k}={v}" for k, v in evidence.error_classes.items())
        lines.append(f"  error classes: {classes}")
    if evidence.regions_reporting:
        lines.append(
            f"  regions failing: {', '.join(evidence.regions_failing) or 'none'} "
            f"(of {len(evidence.regions_reporting)} reporting)"
        )
    if evidence.p50_ms is not None:
        lines.append(f"  latency p50 {evidence.p50_ms:.0f} ms, p95 {evidence.p95_ms or 0:.0f} ms")
    first = min((t for t in (evidence.first_failure_at, alert.active_since) if t), default=None)
    if first is not None:
        lines.append(f"  first failure: {format_time(first, zone, 'en')}")
    return lines


@dataclass(slots=True)
class DeliveryReport:
    """What one pass of :func:`deliver_pending` did."""

    sent: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    #: Deliveries left ``sending`` by a process that stopped, taken back to be sent.
    reclaimed: list[int] = field(default_factory=list)


def backoff_delay(rule: AlertSettings, attempts: int) -> timedelta:
    """Delay before the next attempt after ``attempts`` failed ones: doubling, capped."""
    delay = rule.backoff * int(2 ** max(attempts - 1, 0))
    return min(delay, rule.max_backoff)


#: How long past its send timeout a claim must be before an orphaned ``sending`` row is
#: taken back.
RECLAIM_MARGIN = timedelta(seconds=5)


def deliver_pending(
    store: Store,
    settings: Settings,
    notifier: Notifier,
    *,
    now: datetime,
    claimer: str = "",
    alive: set[str] | None = None,
) -> DeliveryReport:
    """Send every due delivery once, claimed as ``claimer``. Never raises for a failing
    target. With ``alive`` (the processes known to run), deliveries left ``sending`` by
    any other process longer than the send timeout are taken back and sent first."""
    report = DeliveryReport()
    if alive is not None:
        with store.tx() as tx:
            report.reclaimed = tx.reclaim_orphaned_deliveries(
                alive=alive | {claimer},
                claimed_before=now - settings.alerts.timeout - RECLAIM_MARGIN,
                now=now,
            )
        for delivery_id in report.reclaimed:
            log.warning(
                "alert delivery left sending by a stopped process, resent id=%s", delivery_id
            )
    with store.read() as tx:
        due = tx.due_deliveries(now)
    warm = getattr(notifier, "warm", None)
    if due and warm is not None:
        warm()
    targets = settings.alerts.notify
    for row in due:
        assert row.id is not None
        with store.tx() as tx:
            if not tx.claim_delivery(row.id, now, claimer=claimer):
                continue  # another process took it
        error = _send(notifier, targets, row)
        with store.tx() as tx:
            claimed = tx.delivery(row.id)
            assert claimed is not None
            _record_outcome(claimed, error, settings.alerts, now=now, report=report)
    return report


def _send(notifier: Notifier, targets: tuple[Secret, ...], row: AlertDeliveryRow) -> str | None:
    if row.target_index >= len(targets) or targets[row.target_index].masked() != row.target_label:
        return "target no longer configured"
    try:
        notifier.send(targets[row.target_index], title=row.title, body=row.body)
    except DeliveryError as exc:
        return str(exc)
    except Exception as exc:
        return f"unexpected {type(exc).__name__}"
    return None


def _record_outcome(
    row: AlertDeliveryRow,
    error: str | None,
    rule: AlertSettings,
    *,
    now: datetime,
    report: DeliveryReport,
) -> None:
    assert row.id is not None
    if error is None:
        row.status, row.sent_at, row.last_error = "sent", now, None
        report.sent.append(row.id)
        log.info(
            "alert sent delivery=%s incident=%s target=%s",
            row.id,
            row.incident_id,
            row.target_label,
        )
        return
    row.last_error = error[:500]
    if row.attempts >= rule.max_attempts:
        row.status = "failed"
        report.failed.append(row.id)
        log.error(
            "alert failed for good delivery=%s target=%s error=%s", row.id, row.target_label, error
        )
        return
    row.status = "pending"
    row.next_attempt_at = now + backoff_delay(rule, row.attempts)
    report.retrying.append(row.id)
    log.warning(
        "alert delivery failed, will retry delivery=%s target=%s attempt=%s error=%s",
        row.id,
        row.target_label,
        row.attempts,
        error,
    )
