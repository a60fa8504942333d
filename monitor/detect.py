"""Detection: from probe results to check states and component statuses.

The rule (configurable in ``[detection]``): in each region, a check is *down* after
``failures_to_down`` consecutive failing runs and *up* again after
``passes_to_recover`` consecutive passes; ok-but-degraded results (slow, a waiting
room, a certificate near expiry) make it *degraded* the same way. Across regions a
check counts as down when ``quorum`` of the regions reporting see it down. A
component is ``major_outage`` when all its checks are down, ``partial_outage`` when
some are, ``degraded_performance`` when some are degraded, else ``operational``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from checks.base import ProbeResult
from monitor.config import DetectionSettings, Settings
from monitor.store import CheckStateRow, StoreTx

OPERATIONAL = "operational"
DEGRADED = "degraded_performance"
PARTIAL_OUTAGE = "partial_outage"
MAJOR_OUTAGE = "major_outage"
MAINTENANCE = "under_maintenance"
COMPONENT_STATUSES = (OPERATIONAL, DEGRADED, PARTIAL_OUTAGE, MAJOR_OUTAGE, MAINTENANCE)
#: Worse statuses sort higher.
SEVERITY = {OPERATIONAL: 0, MAINTENANCE: 1, DEGRADED: 2, PARTIAL_OUTAGE: 3, MAJOR_OUTAGE: 4}


@dataclass(frozen=True, slots=True)
class ComponentChange:
    """A component's status changed because of ``result``."""

    component_id: str
    from_status: str
    to_status: str
    #: The result that changed it (None when the coordinator re-evaluated the regions).
    result: ProbeResult | None
    transition_id: int | None
    evidence: str
    #: When it changed.
    at: datetime

    @property
    def is_failure(self) -> bool:
        """An outage (partial or major): what opens incidents. Degraded is not down."""
        return SEVERITY[self.to_status] >= SEVERITY[PARTIAL_OUTAGE]

    @property
    def is_recovery(self) -> bool:
        return self.to_status == OPERATIONAL


def count_result(state: CheckStateRow, result: ProbeResult) -> None:
    """Count ``result`` into the consecutive counters of ``state``."""
    if not result.ok:
        state.consecutive_failures += 1
        state.consecutive_passes = state.consecutive_degraded = state.consecutive_clean = 0
    else:
        state.consecutive_failures = 0
        state.consecutive_passes += 1
        if result.degraded:
            state.consecutive_degraded += 1
            state.consecutive_clean = 0
        else:
            state.consecutive_clean += 1
            state.consecutive_degraded = 0
    state.last_result_at = result.started_at
    state.last_error = result.error.value if result.error else None
    state.last_detail = result.detail


def next_check_status(state: CheckStateRow, result: ProbeResult, rule: DetectionSettings) -> str:
    """The status of a check in one region after ``result`` was counted.

    Down after ``failures_to_down`` consecutive failures; back after ``passes_to_recover``
    passes. Between up and degraded the same thresholds apply to degraded and clean
    passes, so one slow response does not flip the page. A first result decides at once.
    """
    current = state.status
    target = "degraded" if result.degraded else "up"
    if not result.ok:
        return "down" if state.consecutive_failures >= rule.failures_to_down else current
    if current == "unknown":
        return target
    if current == "down":
        return target if state.consecutive_passes >= rule.passes_to_recover else current
    if current == "up" and state.consecutive_degraded >= rule.failures_to_down:
        return "degraded"
    if current == "degraded" and state.consecutive_clean >= rule.passes_to_recover:
        return "up"
    return current


def step_check_state(state: CheckStateRow, result: ProbeResult, rule: DetectionSettings) -> bool:
    """Count ``result`` into ``state``. Return True when the check's status changed."""
    count_result(state, result)
    new = next_check_status(state, result, rule)
    if new == state.status:
        return False
    state.status, state.since = new, result.started_at
    return True


def region_grace(settings: DetectionSettings, interval: timedelta) -> timedelta:
    """How long a region may stay silent about a check before it leaves the quorum."""
    return settings.region_grace or 2 * interval


def check_status_across_regions(
    states: list[CheckStateRow],
    *,
    now: datetime,
    interval: timedelta,
    quorum: int | None,
    grace: timedelta | None = None,
) -> str:
    """One check's status from the regions that reported within ``grace`` (default two
    intervals); when none did, from every region that ever reported.

    It is down when at least ``quorum`` of them see it down (default: a majority),
    degraded when that many see it down or degraded, else up; ``unknown`` before any result.
    """
    grace = grace if grace is not None else 2 * interval
    known = [s for s in states if s.status != "unknown" and s.last_result_at is not None]
    recent = [s for s in known if now - s.last_result_at <= grace]  # type: ignore[operator]
    voters = recent or known
    if not voters:
        return "unknown"
    need = min(quorum or len(voters) // 2 + 1, len(voters))
    down = sum(1 for s in voters if s.status == "down")
    degraded = sum(1 for s in voters if s.status == "degraded")
    if down >= need:
        return "down"
    return "degraded" if down + degraded >= need else "up"


def component_status(check_statuses: list[str]) -> str:
    """The public status of a component from the statuses of its checks."""
    known = [s for s in check_statuses if s != "unknown"]
    down = known.count("down")
    if down:
        return MAJOR_OUTAGE if down == len(known) else PARTIAL_OUTAGE
    return DEGRADED if "degraded" in known else OPERATIONAL


def evidence_of(states: list[CheckStateRow]) -> str:
    """A short, secret-free account of which checks fail (or are degraded), where and how."""
    failing = [s for s in states if s.status in ("down", "degraded")]
    if not failing:
        return "all checks passing"
    classes = Counter(s.last_error or "unknown" for s in failing)
    regions = sorted({s.region for s in failing})
    parts = [
        f"{s.check_id}@{s.region} {s.status}: {s.last_error} ({s.last_detail})" for s in failing
    ]
    summary = ", ".join(f"{name}={count}" for name, count in classes.most_common())
    return (
        f"{len(failing)} of {len(states)} check-regions failing [{summary}] "
        f"in {len(regions)} region(s) {', '.join(regions)}; " + "; ".join(parts)
    )


def record_result(
    tx: StoreTx, settings: Settings, result: ProbeResult, *, components: bool = True
) -> ComponentChange | None:
    """Store ``result``, update its check's state in its region and, with ``components``,
    re-evaluate the component across its checks and regions, all in ``tx``.

    Returns the component's change, if any; its transition row is in the same transaction.
    Probe workers (``--role probe``) pass ``components=False``: the coordinator decides
    components from every region's check states (:func:`reconcile`).
    """
    tx.add_result(result)
    state = tx.check_state(result.check_id, result.component_id, result.region)
    if not step_check_state(state, result, settings.detection) or not components:
        return None
    return evaluate_component(
        tx, settings, result.component_id, now=result.started_at, result=result
    )


def evaluate_component(
    tx: StoreTx,
    settings: Settings,
    component_id: str,
    *,
    now: datetime,
    result: ProbeResult | None = None,
) -> ComponentChange | None:
    """Set ``component_id``'s status from its checks' states in every region at ``now``;
    its change, if any, with the transition row written in ``tx``."""
    checks = {c.id: c for c in settings.checks_of(component_id)}
    by_check: dict[str, list[CheckStateRow]] = {check_id: [] for check_id in checks}
    for row in tx.check_states(component_id=component_id):
        if row.check_id in by_check:
            by_check[row.check_id].append(row)
    statuses = [
        check_status_across_regions(
            by_check[check_id],
            now=now,
            interval=check.interval,
            quorum=settings.detection.quorum,
            grace=region_grace(settings.detection, check.interval),
        )
        for check_id, check in checks.items()
    ]
    if all(status == "unknown" for status in statuses):
        return None  # nothing reported yet: no opinion
    all_states = [row for rows in by_check.values() for row in rows]
    status = component_status(statuses)
    evidence = evidence_of(all_states)
    transition = tx.set_component_status(component_id, status, at=now, cause=evidence)
    if transition is None:
        return None
    return ComponentChange(
        component_id=component_id,
        from_status=transition.from_status,
        to_status=status,
        result=result,
        transition_id=transition.id,
        evidence=evidence,
        at=now,
    )


def reconcile(tx: StoreTx, settings: Settings, *, now: datetime) -> list[ComponentChange]:
    """Re-evaluate every probed component from the check states of all regions at ``now``:
    what the coordinator does each evaluation interval, so results written by probe
    workers elsewhere take effect, and a region that fell silent leaves the quorum once
    its grace has passed."""
    changes = []
    for component in settings.components:
        if not settings.checks_of(component.id):
            continue
        change = evaluate_component(tx, settings, component.id, now=now)
        if change is not None:
            changes.append(change)
    return changes
