"""Alerts to engineers through Apprise, recorded per target and delivered exactly once.

Deliveries are rows written in the same transaction as the incident event that
causes them (:func:`enqueue_alerts`). :func:`deliver_pending` claims each due row
with an update that succeeds once, sends it, and records the outcome: sent, a
retry with exponential backoff, or failed after ``max_attempts``. A claimed row
whose process died before recording the outcome stays ``sending`` and is never
sent again (at most once); ``pantau status`` shows such rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from monitor.config import AlertSettings, Settings
from monitor.fields import Secret
from monitor.store import AlertDeliveryRow, IncidentRow, IncidentUpdateRow, Store, StoreTx

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


def _link(settings: Settings, incident: IncidentRow) -> str:
    base = settings.site.base_url.rstrip("/")
    path = f"incidents/{incident.id}.html"
    return f"{base}/{path}" if base else path


def alert_text(
    settings: Settings, incident: IncidentRow, entry: IncidentUpdateRow, *, evidence: str = ""
) -> tuple[str, str]:
    """The title and body of an alert for a timeline entry, secret-free."""
    label = {"opened": "OPEN", "resolved": "RESOLVED", "reopened": "REOPENED"}.get(
        entry.event, "UPDATE"
    )
    title = f"[Pantau] {label} #{incident.id}: {incident.title('en')}"
    lines = [entry.message_en, "", entry.message_id, ""]
    if evidence:
        lines.append(f"Evidence: {evidence}")
    lines.append(f"Status: {incident.status}; started {incident.started_at.isoformat()}")
    if incident.resolved_at is not None:
        lines.append(f"Resolved {incident.resolved_at.isoformat()}")
    lines.append(f"Incident page: {_link(settings, incident)}")
    return title, "\n".join(lines)


def enqueue_alerts(
    tx: StoreTx,
    settings: Settings,
    incident: IncidentRow,
    entry: IncidentUpdateRow,
    *,
    now: datetime,
    evidence: str = "",
) -> list[AlertDeliveryRow]:
    """Write one pending delivery per configured target for a timeline entry."""
    assert incident.id is not None and entry.id is not None
    title, body = alert_text(settings, incident, entry, evidence=evidence)
    return [
        tx.add_delivery(
            AlertDeliveryRow(
                incident_id=incident.id,
                update_id=entry.id,
                target_index=index,
                target_label=target.masked(),
                title=title,
                body=body,
                next_attempt_at=now,
                created_at=now,
            )
        )
        for index, target in enumerate(settings.alerts.notify)
    ]


@dataclass(slots=True)
class DeliveryReport:
    """What one pass of :func:`deliver_pending` did."""

    sent: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


def backoff_delay(rule: AlertSettings, attempts: int) -> timedelta:
    """Delay before the next attempt after ``attempts`` failed ones: doubling, capped."""
    delay = rule.backoff * int(2 ** max(attempts - 1, 0))
    return min(delay, rule.max_backoff)


def deliver_pending(
    store: Store, settings: Settings, notifier: Notifier, *, now: datetime
) -> DeliveryReport:
    """Send every due delivery once. Never raises for a failing target."""
    report = DeliveryReport()
    with store.read() as tx:
        due = tx.due_deliveries(now)
    targets = settings.alerts.notify
    for row in due:
        assert row.id is not None
        with store.tx() as tx:
            if not tx.claim_delivery(row.id, now):
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
