"""Alert rules: whether each rule's condition holds now, with its evidence.

Reads only. A probe *run* is a first attempt and its quick re-probes; it counts as
failed when its last attempt failed, so a dropped response that a re-probe answered
is not an error. Error rates and latency percentiles are taken over runs in the
rule's window; ``consecutive`` reads the check states detection keeps.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from monitor.config import AlertRule, Settings
from monitor.store import CheckStateRow, ProbeResultRow, StoreTx

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Run:
    """One probe run: its first attempt's time and its last attempt's outcome."""

    check_id: str
    component_id: str
    region: str
    started_at: datetime
    ok: bool
    error: str | None
    latency_ms: float | None


def attempt_runs(
    attempts: Iterable[T],
    *,
    series: Callable[[T], Any],
    order: Callable[[T], Any],
    attempt: Callable[[T], int],
) -> Iterator[tuple[T, T]]:
    """``(first, last)`` attempt of each run: within each ``series`` (a check in a region)
    taken in ``order`` (time, attempt), a run starts at an attempt 1 and ends before the
    next. The one way attempts are folded, for rows here and for bulk tuples in rollups."""
    first: T | None = None
    last: T | None = None
    for item in sorted(attempts, key=lambda a: (series(a), order(a))):
        if first is None or attempt(item) <= 1 or series(item) != series(first):
            if first is not None and last is not None:
                yield first, last
            first = item
        last = item
    if first is not None and last is not None:
        yield first, last


def runs_of(rows: Iterable[ProbeResultRow]) -> list[Run]:
    """Fold stored attempts into runs (rows in any order), oldest first."""
    return runs_of_attempts(
        (r.check_id, r.component_id, r.region, r.started_at, r.attempt, r.ok, r.error, r.latency_ms)
        for r in rows
    )


def runs_of_attempts(
    attempts: Iterable[tuple[str, str, str, datetime, int, bool, str | None, float | None]],
) -> list[Run]:
    """:func:`runs_of` for the plain tuples of :meth:`monitor.store.StoreTx.attempts`."""
    runs = [
        Run(
            check_id=first[0],
            component_id=first[1],
            region=first[2],
            started_at=first[3],
            ok=last[5],
            error=last[6],
            latency_ms=last[7],
        )
        for first, last in attempt_runs(
            attempts,
            series=lambda a: (a[0], a[2]),
            order=lambda a: (a[3], a[4]),
            attempt=lambda a: a[4],
        )
    ]
    runs.sort(key=lambda r: r.started_at)
    return runs


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) by the nearest-rank method; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, slots=True)
class Evidence:
    """What engineers need to judge an alert: secret-free, for alerts and reports."""

    component_id: str
    runs: int = 0
    failures: int = 0
    failing_checks: dict[str, int] = field(default_factory=dict)
    error_classes: dict[str, int] = field(default_factory=dict)
    regions_failing: tuple[str, ...] = ()
    regions_reporting: tuple[str, ...] = ()
    p50_ms: float | None = None
    p95_ms: float | None = None
    first_failure_at: datetime | None = None
    #: For ``complaints`` rules, the spike: ``{"at", "complaints", "expected", "topics"}``.
    complaints: dict[str, Any] | None = None

    @property
    def error_rate(self) -> float | None:
        return self.failures / self.runs if self.runs else None

    def as_json(self) -> dict[str, Any]:
        return {
            "component": self.component_id,
            "runs": self.runs,
            "failures": self.failures,
            "error_rate": None if self.error_rate is None else round(self.error_rate, 4),
            "failing_checks": self.failing_checks,
            "error_classes": self.error_classes,
            "regions_failing": list(self.regions_failing),
            "regions_reporting": list(self.regions_reporting),
            "latency_p50_ms": _round(self.p50_ms),
            "latency_p95_ms": _round(self.p95_ms),
            "first_failure_at": self.first_failure_at.isoformat()
            if self.first_failure_at
            else None,
            "complaints": self.complaints,
        }

    def dumps(self) -> str:
        return json.dumps(self.as_json(), sort_keys=True)

    @classmethod
    def loads(cls, text: str | None) -> Evidence | None:
        """Read :meth:`dumps` output back; None for empty or foreign text."""
        try:
            data = json.loads(text or "")
            first = data.get("first_failure_at")
            return cls(
                component_id=data["component"],
                runs=int(data["runs"]),
                failures=int(data["failures"]),
                failing_checks=dict(data["failing_checks"]),
                error_classes=dict(data["error_classes"]),
                regions_failing=tuple(data["regions_failing"]),
                regions_reporting=tuple(data["regions_reporting"]),
                p50_ms=data["latency_p50_ms"],
                p95_ms=data["latency_p95_ms"],
                first_failure_at=datetime.fromisoformat(first) if first else None,
                complaints=data.get("complaints"),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def summary(self) -> str:
        """One line: ``3 of 8 runs failed (38%) [timeout=2, http_status=1] in 2/2 regions; p50 ...``."""
        if not self.runs:
            return "no probe runs in the window"
        rate = f"{self.failures} of {self.runs} runs failed ({(self.error_rate or 0):.0%})"
        parts = [rate]
        if self.error_classes:
            parts.append(
                "[" + ", ".join(f"{k}={v}" for k, v in _by_count(self.error_classes)) + "]"
            )
        if self.regions_failing:
            parts.append(
                f"in {len(self.regions_failing)}/{len(self.regions_reporting)} region(s) "
                + ", ".join(self.regions_failing)
            )
        text = " ".join(parts)
        if self.p50_ms is not None:
            text += f"; latency p50 {self.p50_ms:.0f} ms, p95 {(self.p95_ms or 0):.0f} ms"
        return text


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _by_count(counts: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def evidence_of_runs(component_id: str, runs: Sequence[Run]) -> Evidence:
    """Summarise ``runs`` (of one component or one check)."""
    failed = [r for r in runs if not r.ok]
    latencies = [r.latency_ms for r in runs if r.latency_ms is not None]
    return Evidence(
        component_id=component_id,
        runs=len(runs),
        failures=len(failed),
        failing_checks=dict(_by_count(Counter(r.check_id for r in failed))),
        error_classes=dict(_by_count(Counter(r.error or "unknown" for r in failed))),
        regions_failing=tuple(sorted({r.region for r in failed})),
        regions_reporting=tuple(sorted({r.region for r in runs})),
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        first_failure_at=min((r.started_at for r in failed), default=None),
    )


def component_evidence(
    tx: StoreTx, component_id: str, *, now: datetime, window: timedelta
) -> Evidence:
    """The evidence of one component over the last ``window`` (for incident timelines)."""
    rows = tx.results(component_id=component_id, since=now - window, until=now + _EPSILON)
    return evidence_of_runs(component_id, runs_of(rows))


#: Results stamped at ``now`` itself belong to the window.
_EPSILON = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Condition:
    """A rule's verdict on one subject (a component, or a check) at one evaluation."""

    rule: AlertRule
    subject: str
    component_id: str
    #: The condition holds now (it starts or keeps an alert).
    active: bool
    value: float
    evidence: Evidence
    #: The condition is over for good: a firing alert resolves only then. Window rules
    #: clear as soon as they stop holding; ``consecutive`` clears once the check has
    #: recovered as detection counts it (``passes_to_recover``), so a check failing
    #: twice in every three runs stays one alert instead of a storm of them.
    clear: bool = True


def subjects(rule: AlertRule, settings: Settings) -> list[tuple[str, str, list[str]]]:
    """``(subject, component, check ids)`` a rule is evaluated for."""
    if rule.check:
        owner = next(c.component for c in settings.checks if c.id == rule.check)
        return [(rule.check, owner, [rule.check])]
    components = [rule.component] if rule.component else [c.id for c in settings.components]
    return [(cid, cid, [c.id for c in settings.checks_of(cid)]) for cid in components]


def evaluate(tx: StoreTx, settings: Settings, *, now: datetime) -> list[Condition]:
    """Every rule's condition on every subject it covers, now."""
    rules = settings.alert_rules()
    if not rules or not settings.checks:
        return []
    longest = max(rule.window for rule in rules)
    attempts = tx.attempts(since=now - longest, until=now + _EPSILON)
    runs_by_check: dict[str, list[Run]] = defaultdict(list)
    for run in runs_of_attempts(attempts):
        runs_by_check[run.check_id].append(run)
    states_by_check: dict[str, list[CheckStateRow]] = defaultdict(list)
    if any(rule.kind == "consecutive" for rule in rules):
        for state in tx.check_states():
            states_by_check[state.check_id].append(state)
    conditions = []
    for rule in rules:
        if rule.kind == "complaints":
            conditions.append(_complaints(tx, settings, rule, now=now))
            continue
        for subject, component_id, check_ids in subjects(rule, settings):
            since = now - rule.window
            runs = [r for cid in check_ids for r in runs_by_check[cid] if r.started_at >= since]
            evidence = evidence_of_runs(component_id, sorted(runs, key=lambda r: r.started_at))
            active, value, clear = _verdict(
                rule, settings, evidence, runs, check_ids, states_by_check, now
            )
            conditions.append(
                Condition(rule, subject, component_id, active, value, evidence, clear)
            )
    return conditions


def _verdict(
    rule: AlertRule,
    settings: Settings,
    evidence: Evidence,
    runs: Sequence[Run],
    check_ids: Sequence[str],
    states: dict[str, list[CheckStateRow]],
    now: datetime,
) -> tuple[bool, float, bool]:
    """``(active, value, clear)`` of one rule on one subject."""
    if rule.kind == "error_rate":
        rate = evidence.error_rate or 0.0
        assert rule.above is not None
        active = evidence.runs >= rule.min_probes and rate > rule.above
        return active, rate, not active
    if rule.kind == "latency":
        latencies = [r.latency_ms for r in runs if r.latency_ms is not None]
        value = (percentile(latencies, rule.percentile) or 0.0) / 1000
        assert rule.above is not None
        active = len(latencies) >= rule.min_probes and value > rule.above
        return active, value, not active
    needed = rule.failures or settings.detection.failures_to_down
    worst, active, clear = 0, False, True
    intervals = {c.id: c.interval for c in settings.checks}
    for check_id in check_ids:
        count, failing, recovered = _consecutive(
            states.get(check_id, []),
            needed,
            interval=intervals[check_id],
            quorum=settings.detection.quorum,
            recover=settings.detection.passes_to_recover,
            now=now,
        )
        worst = max(worst, count)
        active = active or failing
        clear = clear and recovered and not failing
    return active, float(worst), clear


def _consecutive(
    states: Sequence[CheckStateRow],
    needed: int,
    *,
    interval: timedelta,
    quorum: int | None,
    recover: int,
    now: datetime,
) -> tuple[int, bool, bool]:
    """Of one check: the most consecutive failures in any region; whether ``quorum`` of the
    regions reporting within two intervals (default a majority) have at least ``needed``;
    and whether that many have passed ``recover`` times in a row (it has recovered)."""
    reported = [s for s in states if s.last_result_at is not None]
    recent = [s for s in reported if now - s.last_result_at <= 2 * interval]  # type: ignore[operator]
    voters = recent or reported
    if not voters:
        return 0, False, True
    need = min(quorum or len(voters) // 2 + 1, len(voters))
    failing = sum(1 for s in voters if s.consecutive_failures >= needed)
    passing = sum(1 for s in voters if s.consecutive_passes >= recover)
    worst = max(s.consecutive_failures for s in voters)
    return worst, failing >= need, passing >= need


#: The subject of ``complaints`` rules: the public, not one component.
PUBLIC = "public"


def _complaints(tx: StoreTx, settings: Settings, rule: AlertRule, *, now: datetime) -> Condition:
    """Holds while a blind-spot complaint spike (every probe green) is within ``window``."""
    spikes = [s for s in tx.spikes(since=now - rule.window) if s.label == "blind_spot"]
    latest = spikes[-1] if spikes else None
    topics = latest.topics.split(",") if latest is not None and latest.topics else []
    known = {c.id for c in settings.components}
    component = next((t for t in topics if t in known), PUBLIC)
    evidence = Evidence(
        component_id=component,
        complaints=None
        if latest is None
        else {
            "at": latest.at.isoformat(),
            "complaints": latest.value,
            "expected": round(latest.expected, 1),
            "bucket_seconds": latest.bucket_seconds,
            "topics": topics,
        },
    )
    value = latest.value if latest is not None else 0.0
    return Condition(rule, PUBLIC, component, latest is not None, value, evidence)
