"""Rollups: each component's probe runs and status summed per hour and per day.

Publishing reads these and never the raw results: 90 days of one-minute probes of ten
components are 1.3 million results, and their rollups about 22,000 rows.

A row (:class:`~monitor.store.ResultRollupRow`) covers one component (all its checks and
regions) over one hour or one day *of the site's zone* (``[site] timezone``: a WIB day
begins at 17:00 UTC the day before). It holds

* the runs that began in it: a run is a first attempt and its quick re-probes, and it
  failed when its last attempt failed (as :func:`monitor.rules.runs_of` folds them); the
  failed runs; the passed-but-degraded runs; and the response times of passed runs
  (count, sum, maximum and a fixed-bucket histogram, so a day's percentiles are derived
  from its hours);
* from the component's transitions: its worst status, the seconds it was observed and,
  of those, the seconds in partial or major outage (downtime). Before a component's first
  transition the log tells nothing of its status: that part of an hour counts as observed
  (and operational, as the store holds) when runs began in it, and its downtime is
  estimated from those runs (its seconds × failed runs ÷ runs). Time after the last
  rollup is not observed yet.

Uptime is then ``1 - downtime_seconds / observed_seconds`` over an hour, a day or 90 days.

:func:`rollup` is incremental and idempotent. It recomputes, from the raw results of those
hours only, the hours that got results since the last rollup (found by result id), every
hour since the last rollup (the open hour, and an outage that goes on), and the hours a
late transition changed; then the days of those hours from their hour rows. The first
rollup of a store (or after ``[site] timezone`` changed) rolls up everything stored.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from operator import itemgetter
from typing import Any
from zoneinfo import ZoneInfo

from monitor.clock import utc
from monitor.config import Settings
from monitor.detect import MAJOR_OUTAGE, OPERATIONAL, PARTIAL_OUTAGE, SEVERITY
from monitor.rules import attempt_runs
from monitor.store import RollupMarkRow, Store, StoreTx, TransitionRow

log = logging.getLogger(__name__)

HOUR = "hour"
DAY = "day"
_ONE_HOUR = timedelta(hours=1)

#: Upper bounds (ms) of the latency histogram's buckets, each about a quarter wider than
#: the one before; a bucket holds the times above the bound before it, up to its own.
LATENCY_BUCKETS_MS: tuple[float, ...] = (
    *(5, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 100, 125, 150, 175, 200, 250, 300),
    *(350, 400, 450, 500, 600, 700, 800, 900, 1000, 1250, 1500, 1750, 2000, 2500, 3000),
    *(3500, 4000, 5000, 6000, 7000, 8000, 9000, 10000, 15000, 20000, 30000, 60000),
    math.inf,
)

#: Hours since this long before the last rollup are recomputed: PostgreSQL hands out
#: result ids before the commit, so a result may become visible after one with a higher id.
GRACE = timedelta(minutes=5)
#: How far a run's re-probes may trail its first attempt, at least.
MIN_RETRY_REACH = timedelta(minutes=10)
#: A backfill reads raw results this many hours at a time.
SCAN_HOURS = 24
_DOWN = frozenset({PARTIAL_OUTAGE, MAJOR_OUTAGE})


# -- hours and days of the site's zone --------------------------------------------------------


def floor_hour(moment: datetime, zone: ZoneInfo) -> datetime:
    """The start (UTC) of the zone's hour holding ``moment``."""
    local = moment.astimezone(zone)
    return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    """The zone's date at ``moment``."""
    return moment.astimezone(zone).date()


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """When (UTC) the zone's ``day`` begins: midnight WIB is 17:00 UTC the day before."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def hours_between(since: datetime, until: datetime, zone: ZoneInfo) -> Iterator[datetime]:
    """Starts of the zone's hours that overlap ``[since, until)``."""
    hour = floor_hour(since, zone)
    while hour < until:
        yield hour
        hour += _ONE_HOUR


# -- latency histograms -----------------------------------------------------------------------


def _bucket_key(bound: float) -> str:
    return "inf" if math.isinf(bound) else f"{bound:g}"


_KEYS = tuple(_bucket_key(bound) for bound in LATENCY_BUCKETS_MS)
_BOUNDS = {key: bound for key, bound in zip(_KEYS, LATENCY_BUCKETS_MS, strict=True)}


def latency_bucket(latency_ms: float) -> str:
    """The histogram key of ``latency_ms``: its bucket's upper bound."""
    return _KEYS[bisect.bisect_left(LATENCY_BUCKETS_MS, latency_ms)]


def bucket_range(key: str) -> tuple[float, float]:
    """The latencies ``(lower, upper]`` a histogram key stands for."""
    upper = _BOUNDS.get(key, math.inf if key == "inf" else float(key))
    index = bisect.bisect_left(LATENCY_BUCKETS_MS, upper)
    return (LATENCY_BUCKETS_MS[index - 1] if index else 0.0), upper


def histogram_percentile(
    histogram: Mapping[str, int], q: float, *, max_ms: float | None = None
) -> float | None:
    """The ``q``-th percentile (nearest rank, 0..100) estimated from a histogram: always in
    the bucket of the exact one, interpolated within it (and never above ``max_ms``).
    None when the histogram is empty."""
    buckets = sorted((bucket_range(key), count) for key, count in histogram.items() if count > 0)
    total = sum(count for _, count in buckets)
    if not total:
        return None
    rank = max(1, math.ceil(q / 100 * total))
    seen = 0
    for (lower, upper), count in buckets:
        if seen + count >= rank:
            top = upper if max_ms is None else min(upper, max(max_ms, lower))
            return lower + (top - lower) * (rank - seen) / count
        seen += count
    raise AssertionError("unreachable: the rank is within the total")


def load_histogram(text: str) -> Counter[str]:
    return Counter({str(k): int(v) for k, v in json.loads(text or "{}").items()})


def dump_histogram(histogram: Mapping[str, int]) -> str:
    ordered = sorted((k for k, v in histogram.items() if v), key=lambda k: bucket_range(k)[1])
    return json.dumps({k: histogram[k] for k in ordered}, separators=(",", ":"))


def uptime(observed_seconds: float, downtime_seconds: float) -> float | None:
    """The share (0..1) of the observed time not in outage; None when nothing was observed."""
    if observed_seconds <= 0:
        return None
    return min(1.0, max(0.0, 1 - downtime_seconds / observed_seconds))


# -- sums ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Sums:
    """What a rollup row holds, being summed."""

    runs: int = 0
    failures: int = 0
    degraded: int = 0
    latency_count: int = 0
    latency_sum_ms: float = 0.0
    latency_max_ms: float | None = None
    histogram: Counter[str] = field(default_factory=Counter)
    worst: str | None = None
    observed: float = 0.0
    downtime: float = 0.0
    #: Runs (and failed ones) before the first transition: they tell that time's uptime.
    unknown_runs: int = 0
    unknown_failures: int = 0

    def add_run(self, ok: bool, degraded: bool, latency_ms: float | None, *, unknown: bool) -> None:
        """Count a run; ``unknown``: it began before the component's first transition."""
        self.runs += 1
        self.unknown_runs += unknown
        if not ok:
            self.failures += 1
            self.unknown_failures += unknown
            return
        self.degraded += degraded
        if latency_ms is not None:
            self._add_latency(1, latency_ms, latency_ms)
            self.histogram[latency_bucket(latency_ms)] += 1

    def _add_latency(self, count: int, total: float, highest: float | None) -> None:
        self.latency_count += count
        self.latency_sum_ms += total
        if highest is not None:
            self.latency_max_ms = max(highest, self.latency_max_ms or highest)

    def add_status(self, worst: str | None, observed: float, downtime: float) -> None:
        self.worst = _worse(self.worst, worst)
        self.observed += observed
        self.downtime += downtime

    def add_row(self, row: Mapping[str, Any]) -> None:
        """Add a stored rollup (:meth:`StoreTx.rollup_values`)."""
        self.runs += row["runs"]
        self.failures += row["failures"]
        self.degraded += row["degraded"]
        self._add_latency(row["latency_count"], row["latency_sum_ms"], row["latency_max_ms"])
        self.histogram.update(load_histogram(row["latency_histogram"]))
        self.add_status(row["worst_status"], row["observed_seconds"], row["downtime_seconds"])

    @property
    def empty(self) -> bool:
        return not self.runs and self.worst is None and not self.observed

    def values(
        self, component_id: str, period: str, start: datetime, now: datetime
    ) -> dict[str, Any]:
        """The columns of its :class:`~monitor.store.ResultRollupRow`."""
        return {
            "component_id": component_id,
            "period": period,
            "start": start,
            "runs": self.runs,
            "failures": self.failures,
            "degraded": self.degraded,
            "latency_count": self.latency_count,
            "latency_sum_ms": self.latency_sum_ms,
            "latency_max_ms": self.latency_max_ms,
            "latency_histogram": dump_histogram(self.histogram),
            "worst_status": self.worst,
            "observed_seconds": self.observed,
            "downtime_seconds": self.downtime,
            "updated_at": now,
        }


def _worse(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    return max(a, b, key=lambda status: SEVERITY.get(status, 0))


# -- status from transitions ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Timeline:
    """A component's statuses from ``ats[i]`` on (the first one in effect at a scan's start)."""

    ats: tuple[datetime, ...]
    statuses: tuple[str, ...]

    @classmethod
    def of(cls, transitions: Iterable[TransitionRow]) -> _Timeline:
        ordered = sorted(transitions, key=lambda t: (t.at, t.id or 0))
        return cls(tuple(t.at for t in ordered), tuple(t.to_status for t in ordered))

    @property
    def known_from(self) -> datetime | None:
        """Since when a status is known: the first transition (None: never)."""
        return self.ats[0] if self.ats else None

    def over(self, start: datetime, end: datetime) -> tuple[str | None, float, float, float]:
        """``(worst, observed, downtime, unknown)`` seconds of ``[start, end)``; ``unknown``
        is the time before the first transition."""
        if end <= start:
            return None, 0.0, 0.0, 0.0
        known = self.ats[0] if self.ats else end
        unknown = (min(end, max(start, known)) - start).total_seconds()
        if known >= end:
            return None, 0.0, 0.0, unknown
        moment = max(start, known)
        index = bisect.bisect_right(self.ats, moment) - 1
        worst: str | None = None
        observed = downtime = 0.0
        while moment < end:
            following = self.ats[index + 1] if index + 1 < len(self.ats) else end
            span = (min(following, end) - moment).total_seconds()
            status = self.statuses[index]
            if span > 0:
                worst = _worse(worst, status)
                observed += span
                downtime += span if status in _DOWN else 0.0
            moment, index = min(following, end), index + 1
        return worst, observed, downtime, unknown


def _hour_status(timeline: _Timeline, hour: datetime, sums: _Sums, now: datetime) -> None:
    """Add the status part of ``hour`` (up to ``now``) to ``sums``, whose runs are counted."""
    worst, observed, downtime, unknown = timeline.over(hour, min(hour + _ONE_HOUR, now))
    if sums.unknown_runs:  # watched before any transition: operational, as the store holds
        share = sums.unknown_failures / sums.unknown_runs
        sums.add_status(OPERATIONAL, unknown, unknown * share)
    sums.add_status(worst, observed, downtime)


# -- runs from raw results -----------------------------------------------------------------

_Outcome = tuple[str, str, str, datetime, int, bool, bool, float | None]


def fold_runs(outcomes: list[_Outcome]) -> Iterator[tuple[str, datetime, bool, bool, float | None]]:
    """``(component_id, started_at, ok, degraded, latency_ms)`` per run of the outcomes
    (:meth:`StoreTx.result_outcomes`), folded as :func:`monitor.rules.attempt_runs` folds
    attempts: a run starts at an attempt 1 and takes the outcome of its last attempt."""
    for first, last in attempt_runs(
        outcomes, series=itemgetter(1, 2), order=itemgetter(3, 4), attempt=itemgetter(4)
    ):
        yield first[0], first[3], last[5], last[6], last[7]


def retry_reach(settings: Settings) -> timedelta:
    """How long after a run's first attempt its last re-probe may start (generously)."""
    reaches = [c.retries * (c.retry_delay + 4 * c.timeout) for c in settings.checks]
    return max([MIN_RETRY_REACH, *reaches])


def _contiguous(hours: Sequence[datetime], most: int) -> Iterator[list[datetime]]:
    """Sorted ``hours`` in runs of consecutive hours, at most ``most`` each."""
    chunk: list[datetime] = []
    for hour in hours:
        if chunk and (hour - chunk[-1] != _ONE_HOUR or len(chunk) >= most):
            yield chunk
            chunk = []
        chunk.append(hour)
    if chunk:
        yield chunk


# -- the step --------------------------------------------------------------------------------


def rollup(tx: StoreTx, settings: Settings, *, now: datetime, max_hours: int | None = None) -> int:
    """Bring the hourly and daily rollups up to ``now``; return how many rows it wrote.

    Safe to run any time and as often as wanted: rows are recomputed, never added to.
    The first rollup of a store rolls up everything stored; with ``max_hours`` it does
    that many hours at most, oldest first, and the next calls go on from there (see
    :func:`backfilling`), so each transaction stays short. Errors of the store propagate
    (StoreError when ``tx`` commits).
    """
    now = utc(now)
    mark = tx.rollup_mark()
    if mark.zone != settings.site.timezone:
        _restart(tx, mark, settings.site.timezone)
    if mark.ran_at is None:
        hours = _backfill_hours(tx, settings, mark, now=now)
        if max_hours is not None and len(hours) > max_hours:
            del hours[max_hours:]
            mark.backfill_at = hours[-1] + _ONE_HOUR
        else:
            mark.ran_at, mark.backfill_at = now, None
        return _write(tx, settings, hours, now=now)
    touched, mark.result_id, mark.transition_id = _touched_hours(tx, settings, mark, now=now)
    mark.ran_at = now
    return _write(tx, settings, sorted(touched), now=now)


def backfilling(tx: StoreTx) -> bool:
    """True while the first rollup of the store has not got up to date."""
    return tx.rollup_mark().ran_at is None


#: Hours a backfill takes in one transaction, so probe writes never wait long for it.
BACKFILL_HOURS = 24


#: Raw results deleted per transaction when pruning.
PRUNE_BATCH = 20_000


def catch_up(store: Store, settings: Settings, *, now: Callable[[], datetime]) -> int:
    """Bring the rollups up to ``now()``, a backfill :data:`BACKFILL_HOURS` hours per
    transaction, then prune raw results older than ``[storage] raw_days``; the rollup
    rows written."""
    written = 0
    while True:
        with store.tx() as tx:
            written += rollup(tx, settings, now=now(), max_hours=BACKFILL_HOURS)
            if not backfilling(tx):
                break
    while prune(store, settings, now=now()) == PRUNE_BATCH:
        pass
    return written


def prune(store: Store, settings: Settings, *, now: datetime) -> int:
    """Delete one batch of raw results older than ``[storage] raw_days`` that the rollups
    have taken in (never during a backfill, never one not rolled up yet); the number
    deleted. Pages and the uptime bars read the rollups, which are kept."""
    with store.tx() as tx:
        mark = tx.rollup_mark()
        if mark.ran_at is None:
            return 0
        horizon = now - timedelta(days=settings.storage.raw_days)
        # Only whole hours that the last rollup closed: the hour of a re-probe may still move.
        settled = floor_hour(mark.ran_at, settings.site.zone) - retry_reach(settings)
        before = min(horizon, settled)
        deleted = tx.delete_results_before(before, up_to_id=mark.result_id, limit=PRUNE_BATCH)
    if deleted:
        log.info("pruned raw results count=%s before=%s", deleted, before.isoformat())
    return deleted


def _write(tx: StoreTx, settings: Settings, hours: list[datetime], *, now: datetime) -> int:
    written, days = _write_hours(tx, settings, hours, now=now)
    written += _write_days(tx, settings, days, now=now)
    log.debug("rollup hours=%d days=%d rows=%d", len(hours), len(days), written)
    return written


def _restart(tx: StoreTx, mark: RollupMarkRow, zone: str) -> None:
    """Start over in ``zone``: hours and days of another zone do not line up."""
    if mark.zone:
        log.info("rollups rebuilt zone_from=%s zone_to=%s", mark.zone, zone)
    tx.delete_rollups()
    mark.result_id = mark.transition_id = 0
    mark.ran_at = mark.backfill_at = None
    mark.zone = zone


def _backfill_hours(
    tx: StoreTx, settings: Settings, mark: RollupMarkRow, *, now: datetime
) -> list[datetime]:
    """The hours a first rollup has still to do, oldest first."""
    if mark.backfill_at is not None:
        return list(hours_between(mark.backfill_at, now, settings.site.zone))
    # Whatever comes after this point is new to the rollups that follow the backfill.
    mark.result_id = tx.last_result_id()
    transitions = tx.transitions_in()
    mark.transition_id = max((t.id or 0 for t in transitions), default=0)
    starts = [tx.first_result_at(), *(t.at for t in transitions[:1])]
    first = min((at for at in starts if at is not None), default=now)
    return list(hours_between(first, now, settings.site.zone))


def _touched_hours(
    tx: StoreTx, settings: Settings, mark: RollupMarkRow, *, now: datetime
) -> tuple[set[datetime], int, int]:
    """The hours to recompute since the last rollup, and the newest result and transition
    ids seen."""
    zone = settings.site.zone
    hours = set(hours_between((mark.ran_at or now) - GRACE, now, zone))
    transitions = tx.transitions_in(after_id=mark.transition_id)
    for transition in transitions:  # a status holds until the next one, so up to now
        hours.update(hours_between(transition.at, now, zone))
    transition_id = max([mark.transition_id, *(t.id or 0 for t in transitions)])
    result_id, reach = mark.result_id, retry_reach(settings)
    for row_id, started_at, attempt in tx.result_times(after_id=mark.result_id):
        hours.add(floor_hour(started_at, zone))
        if attempt > 1:  # a re-probe decides a run that may have begun an hour before
            hours.add(floor_hour(started_at - reach, zone))
        result_id = max(result_id, row_id)
    return hours, result_id, transition_id


def _write_hours(
    tx: StoreTx, settings: Settings, hours: list[datetime], *, now: datetime
) -> tuple[int, set[date]]:
    """Recompute ``hours`` (sorted) for every component; return rows written and their days."""
    if not hours:
        return 0, set()
    reach = retry_reach(settings)
    configured = {c.id for c in settings.components}
    timelines = _Timelines(tx, since=hours[0], until=hours[-1] + _ONE_HOUR)
    written, days = 0, set()
    for chunk in _contiguous(hours, SCAN_HOURS):
        sums = _run_sums(tx, chunk, reach, timelines)
        components = sorted(configured | {cid for cid, _ in sums} | set(timelines.inside))
        rows = []
        for hour in chunk:
            for component_id in components:
                hour_sums = sums.get((component_id, hour)) or _Sums()
                _hour_status(timelines[component_id], hour, hour_sums, now)
                if not hour_sums.empty:
                    rows.append(hour_sums.values(component_id, HOUR, hour, now))
                    days.add(local_day(hour, settings.site.zone))
        tx.replace_rollups(rows)
        written += len(rows)
    return written, days


def _run_sums(
    tx: StoreTx, chunk: list[datetime], reach: timedelta, timelines: _Timelines
) -> dict[tuple[str, datetime], _Sums]:
    """The runs of each component that began in ``chunk``, a list of consecutive hours."""
    since, until = chunk[0], chunk[-1] + _ONE_HOUR
    # Read a margin either side: a run's re-probes may trail into the next hour, and
    # re-probes read before ``since`` belong to runs of the hour before.
    outcomes = tx.result_outcomes(since=since - reach, until=until + reach)
    sums: dict[tuple[str, datetime], _Sums] = defaultdict(_Sums)
    for component_id, started_at, ok, degraded, latency in fold_runs(outcomes):
        if since <= started_at < until:
            hour = chunk[int((started_at - since) / _ONE_HOUR)]
            known = timelines[component_id].known_from
            unknown = known is None or started_at < known
            sums[(component_id, hour)].add_run(ok, degraded, latency, unknown=unknown)
    return sums


class _Timelines(dict[str, _Timeline]):
    """Each component's timeline over ``[since, until)``: its transitions there and the one in
    effect at ``since``, looked up when first asked for."""

    def __init__(self, tx: StoreTx, *, since: datetime, until: datetime) -> None:
        super().__init__()
        self.tx, self.since = tx, since
        self.inside: dict[str, list[TransitionRow]] = defaultdict(list)
        for transition in tx.transitions_in(since=since, until=until):
            self.inside[transition.component_id].append(transition)

    def __missing__(self, component_id: str) -> _Timeline:
        in_effect = self.tx.transition_at(component_id, self.since)
        rows = [in_effect] if in_effect is not None else []
        # One made at ``since`` itself is in effect already (the last of them, if several).
        rows += [t for t in self.inside.get(component_id, ()) if t.at > self.since or not rows]
        timeline = self[component_id] = _Timeline.of(rows)
        return timeline


def _write_days(tx: StoreTx, settings: Settings, days: set[date], *, now: datetime) -> int:
    """Recompute the day rows of ``days`` from their hour rows; return rows written."""
    zone = settings.site.zone
    written = 0
    for chunk in _contiguous_days(sorted(days)):
        since, until = day_start(chunk[0], zone), day_start(chunk[-1] + timedelta(days=1), zone)
        sums: dict[tuple[str, date], _Sums] = defaultdict(_Sums)
        for row in tx.rollup_values(HOUR, since=since, until=until):
            sums[(row["component_id"], local_day(row["start"], zone))].add_row(row)
        tx.replace_rollups(
            [
                day_sums.values(component_id, DAY, day_start(day, zone), now)
                for (component_id, day), day_sums in sorted(sums.items())
            ]
        )
        written += len(sums)
    return written


def _contiguous_days(days: list[date]) -> Iterator[list[date]]:
    """Sorted ``days`` in runs of consecutive days, at most a month each."""
    chunk: list[date] = []
    for day in days:
        if chunk and (day - chunk[-1] != timedelta(days=1) or len(chunk) >= 31):
            yield chunk
            chunk = []
        chunk.append(day)
    if chunk:
        yield chunk
