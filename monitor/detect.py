"""Detection: from probe results to check states and component statuses.

The rule (configurable in ``[detection]``): a check is *down* after
``failures_to_down`` consecutive failing runs and *up* again after
``passes_to_recover`` consecutive passes. A component is ``major_outage`` when
all its checks are down, ``partial_outage`` when some are, else ``operational``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

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
    result: ProbeResult
    transition_id: int | None
    evidence: str

    @property
    def is_failure(self) -> bool:
        return SEVERITY[self.to_status] > SEVERITY[OPERATIONAL] and self.to_status != MAINTENANCE

    @property
    def is_recovery(self) -> bool:
        return self.to_status == OPERATIONAL


def step_check_state(state: CheckStateRow, result: ProbeResult, rule: DetectionSettings) -> bool:
    """Count ``result`` into ``state``. Return True when the check's up/down status changed."""
    if result.ok:
        state.consecutive_passes += 1
        state.consecutive_failures = 0
    else:
        state.consecutive_failures += 1
        state.consecutive_passes = 0
    state.last_result_at = result.started_at
    state.last_error = result.error.value if result.error else None
    state.last_detail = result.detail
    new = state.status
    if not result.ok and state.consecutive_failures >= rule.failures_to_down:
        new = "down"
    elif result.ok and (
        state.status == "unknown" or state.consecutive_passes >= rule.passes_to_recover
    ):
        new = "up"
    if new == state.status:
        return False
    state.status, state.since = new, result.started_at
    return True


def component_status(states: list[CheckStateRow]) -> str:
    """The public status of a component from the states of its checks."""
    down = sum(1 for s in states if s.status == "down")
    if down == 0:
        return OPERATIONAL
    return MAJOR_OUTAGE if down == len(states) else PARTIAL_OUTAGE


def evidence_of(states: list[CheckStateRow]) -> str:
    """A short, secret-free account of which checks fail and how."""
    failing = [s for s in states if s.status == "down"]
    if not failing:
        return "all checks passing"
    classes = Counter(s.last_error or "unknown" for s in failing)
    parts = [f"{s.check_id}: {s.last_error} ({s.last_detail})" for s in failing]
    summary = ", ".join(f"{name}={count}" for name, count in classes.most_common())
    return f"{len(failing)}/{len(states)} checks failing [{summary}]; " + "; ".join(parts)


def record_result(tx: StoreTx, settings: Settings, result: ProbeResult) -> ComponentChange | None:
    """Store ``result``, update its check, and re-evaluate its component in ``tx``.

    Returns the component's change, if any; its transition row is in the same transaction.
    """
    tx.add_result(result)
    state = tx.check_state(result.check_id, result.component_id)
    if not step_check_state(state, result, settings.detection):
        return None
    check_ids = {c.id for c in settings.checks_of(result.component_id)}
    states = [s for s in tx.check_states() if s.check_id in check_ids]
    status = component_status(states)
    evidence = evidence_of(states)
    previous = tx.component_states().get(result.component_id)
    before = previous.status if previous else OPERATIONAL
    transition = tx.set_component_status(
        result.component_id, status, at=result.started_at, cause=evidence
    )
    if transition is None:
        return None
    return ComponentChange(
        component_id=result.component_id,
        from_status=before,
        to_status=status,
        result=result,
        transition_id=transition.id,
        evidence=evidence,
    )
