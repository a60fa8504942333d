"""Probe failures against complaint spikes: did the public notice, and when?

For one incident, :func:`correlate_incident` measures complaint volume in three windows
(the ``span`` before it started, the incident itself, the ``span`` after it was
resolved) against a baseline, finds when the probes failed and when complaints spiked,
and labels the incident:

* ``confirmed``: the probes failed (or the incident names a component in an outage)
  and complaints spiked;
* ``probes_only``: no complaint spike (with neither, the incident stands without a
  public echo, and is labelled the same way);
* ``public_only``: complaints spiked while the probes saw no outage, a blind spot.

The baseline is a :class:`~monitor.social.spikes.SpikeDetector` warmed with the stored
per-minute counts summed into buckets of ``[social] bucket``, frozen where the
``before`` window starts, so the incident does not teach it that its volume is normal.
A window's expected volume is the sum of the baseline of its buckets, each weighted by
the share of the bucket inside the window. Spike onsets are the stored
:class:`~monitor.store.ComplaintSpikeRow` rows and those the detector finds when it is
fed on through the incident: the runtime's rows may be missing (not recorded yet, or
the source was imported later), and the same detector over the same counts agrees
with them otherwise.

:func:`is_blind_spot` says whether a complaint spike at a moment is something the
probes do not see. Everything here reads the store and writes nothing.
"""

from __future__ import annotations

import bisect
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate

from sqlalchemy import or_
from sqlmodel import col, select

from monitor.clock import floor_time
from monitor.config import Settings, SocialSettings
from monitor.detect import DEGRADED, MAJOR_OUTAGE, OPERATIONAL, PARTIAL_OUTAGE
from monitor.report import SocialSummary
from monitor.social.classify import TOPICS
from monitor.social.spikes import SpikeDetector
from monitor.store import IncidentComponentRow, IncidentRow, StoreTx, TransitionRow

log = logging.getLogger(__name__)

CONFIRMED = "confirmed"
PROBES_ONLY = "probes_only"
PUBLIC_ONLY = "public_only"
LABELS = (CONFIRMED, PROBES_ONLY, PUBLIC_ONLY)
#: Statuses in which the probes see the public unable to use a component.
OUTAGE = (PARTIAL_OUTAGE, MAJOR_OUTAGE)
#: Statuses in which a complaint spike is unexplained by what the probes see.
#: ``under_maintenance`` is not one: complaints about announced work are expected.
SEEN_AS_UP = (OPERATIONAL, DEGRADED)
#: Probe failures this long before an incident was opened still belong to it.
PROBE_GRACE = timedelta(minutes=10)
#: Counts behind the baseline.
HISTORY = timedelta(days=28)
_MINUTE = timedelta(minutes=1)
#: Spikes stamped at a window's end itself belong to the window.
_EPSILON = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class VolumeWindow:
    """Complaints in ``[start, end)`` against the baseline's ``expected`` sum over it.

    ``per_minute`` is ``complaints`` per minute of the window (0 for an empty window) and
    ``ratio`` is ``complaints / expected`` (None when nothing was expected).
    """

    start: datetime
    end: datetime
    complaints: int
    expected: float
    per_minute: float
    ratio: float | None

    @property
    def minutes(self) -> float:
        return max((self.end - self.start) / _MINUTE, 0.0)

    @property
    def expected_per_minute(self) -> float:
        """The baseline's rate per minute over the window (0 for an empty window)."""
        return self.expected / self.minutes if self.minutes else 0.0


@dataclass(frozen=True, slots=True)
class Correlation:
    """What the public said about one incident, against what the probes saw.

    ``during`` starts at the incident's start. ``probe_onset`` is when an incident
    component went into an outage (None if none did), ``spike_onset`` the first complaint
    spike from ``span`` before the incident to its end, and ``lag`` is ``spike_onset -
    probe_onset`` (negative when the public noticed first; None without both).
    ``peak_per_minute`` is the rate of the busiest bucket during the incident, so that
    one noisy minute does not make the peak. ``topics`` are those of complaint posts
    during the incident, most frequent first. ``source`` names the social sources (the
    report's ``label``).
    """

    incident_id: int
    before: VolumeWindow
    during: VolumeWindow
    after: VolumeWindow
    probe_onset: datetime | None
    spike_onset: datetime | None
    lag: timedelta | None
    peak_per_minute: float
    label: str
    topics: tuple[str, ...]
    source: str

    def summary(self) -> SocialSummary:
        """The social signal as the incident report shows it.

        Its ``lag`` runs from the incident's start (which the report shows), not from
        the probe onset: the two differ for incidents opened by hand.
        """
        start = self.during.start
        return SocialSummary(
            volume=self.during.complaints,
            normal=self.during.expected_per_minute,
            peak_per_minute=self.peak_per_minute,
            lag=None if self.spike_onset is None else self.spike_onset - start,
            label=self.source,
        )

    def public(self) -> dict[str, object]:
        """Aggregates for the public incident page: never post text, handles or ids."""
        ratio = self.during.ratio
        return {
            "label": self.label,
            "during_ratio": None if ratio is None else round(ratio, 1),
            "complaints_per_minute": round(self.during.per_minute, 1),
            "lag_minutes": None if self.lag is None else round(self.lag / _MINUTE),
        }


# -- the baseline ---------------------------------------------------------------------------


def baseline(
    tx: StoreTx, *, until: datetime, bucket: timedelta, history: timedelta = HISTORY
) -> SpikeDetector:
    """A detector fed the stored counts of ``history`` before ``until``, in buckets.

    Only whole buckets (on a grid from the Unix epoch) that end by ``until`` are fed;
    from the first stored minute on, minutes with no stored count count as 0. With no
    counts at all the detector has seen nothing and expects 0 everywhere.
    """
    counts = tx.counts(since=floor_time(until - history, bucket), until=until)
    detector = SpikeDetector(bucket=bucket)
    _Complaints(counts, bucket).feed(detector, stop=floor_time(until, bucket))
    return detector


class _Complaints:
    """Stored complaints per minute and per bucket, with prefix sums per minute so that
    any window's total takes two bisections."""

    def __init__(self, counts: Mapping[datetime, int], bucket: timedelta) -> None:
        self.bucket = bucket
        self._minutes = list(counts)  # the store returns them in time order
        self._sums = list(accumulate(counts.values(), initial=0))
        totals: dict[datetime, int] = {}
        for minute, count in counts.items():
            start = floor_time(minute, bucket)
            totals[start] = totals.get(start, 0) + count
        self._totals = totals
        self._buckets = sorted(totals)

    def total(self, start: datetime, end: datetime) -> int:
        """Complaints in the minutes starting in ``[start, end)``."""
        first = bisect.bisect_left(self._minutes, start)
        last = max(bisect.bisect_left(self._minutes, end), first)
        return self._sums[last] - self._sums[first]

    def peak_per_minute(self, start: datetime, end: datetime) -> float:
        """The rate per minute of the busiest bucket overlapping ``[start, end)``."""
        first = bisect.bisect_left(self._buckets, floor_time(start, self.bucket))
        last = max(bisect.bisect_left(self._buckets, end), first)
        peak = max((self._totals[at] for at in self._buckets[first:last]), default=0)
        return peak / (self.bucket / _MINUTE)

    def feed(
        self, detector: SpikeDetector, *, stop: datetime, start: datetime | None = None
    ) -> list[datetime]:
        """Feed ``detector`` the buckets from ``start`` (never before the first stored
        one) up to ``stop``, missing ones as 0; return the spike onsets it reported."""
        first = self._buckets[0] if self._buckets else stop
        at, onsets = first if start is None else max(start, first), []
        while at < stop:
            if detector.update(at, self._totals.get(at, 0)) is not None:
                onsets.append(at)
            at += self.bucket
        return onsets

    def window(self, detector: SpikeDetector, start: datetime, end: datetime) -> VolumeWindow:
        """``[start, end)`` against the baseline ``detector`` expects."""
        complaints = self.total(start, end)
        expected = _expected(detector, start, end, self.bucket)
        length = max((end - start) / _MINUTE, 0.0)
        return VolumeWindow(
            start=start,
            end=end,
            complaints=complaints,
            expected=expected,
            per_minute=complaints / length if length else 0.0,
            ratio=complaints / expected if expected > 0 else None,
        )


def _expected(detector: SpikeDetector, start: datetime, end: datetime, bucket: timedelta) -> float:
    """The baseline summed over ``[start, end)``, partial buckets pro rata."""
    total, at = 0.0, floor_time(start, bucket)
    while at < end:
        inside = min(at + bucket, end) - max(at, start)
        total += detector.expected(at) * (inside / bucket)
        at += bucket
    return total


# -- one incident ---------------------------------------------------------------------------


def correlate_incident(
    tx: StoreTx,
    settings: Settings,
    incident_id: int,
    *,
    now: datetime,
    span: timedelta = timedelta(hours=1),
) -> Correlation | None:
    """Correlate incident ``incident_id`` with the complaints stored, as of ``now``.

    ``during`` runs to the incident's resolution (or ``now``), ``after`` for ``span``
    after its resolution, clipped at ``now`` (empty while unresolved). Returns None when
    no complaint counts are stored from ``HISTORY`` before the incident to ``now`` or the
    end of ``after`` (no social signal). Raises KeyError when there is no such incident.
    """
    incident = tx.incident(incident_id)
    if incident is None:
        raise KeyError(incident_id)
    bucket, start = settings.social.bucket, incident.started_at
    end = max(min(incident.resolved_at or now, now), start)
    after_end = min(end + span, now) if incident.resolved_at is not None else end
    warm_until = floor_time(start - span, bucket)
    counts = tx.counts(since=floor_time(warm_until - HISTORY, bucket), until=after_end)
    if not counts:
        return None
    complaints = _Complaints(counts, bucket)
    detector = SpikeDetector(bucket=bucket)
    complaints.feed(detector, stop=warm_until)
    # Volumes are measured against the detector frozen before the incident, which could
    # otherwise learn the incident's volume as normal; only then is it fed on.
    before, during, after = (
        complaints.window(detector, a, b)
        for a, b in ((start - span, start), (start, end), (end, after_end))
    )
    spike_onset = _spike_onset(tx, complaints, detector, since=start - span, until=end, now=now)
    components = tx.incident_components(incident_id)
    probe_onset = _probe_onset(tx, components, since=start - PROBE_GRACE, until=end)
    probes_failed = probe_onset is not None or any(s in OUTAGE for s in components.values())
    posts = tx.posts(since=start, until=end, complaints_only=True)
    correlation = Correlation(
        incident_id=incident_id,
        before=before,
        during=during,
        after=after,
        probe_onset=probe_onset,
        spike_onset=spike_onset,
        lag=None if spike_onset is None or probe_onset is None else spike_onset - probe_onset,
        peak_per_minute=complaints.peak_per_minute(start, end),
        label=_label(probes_failed=probes_failed, spiked=spike_onset is not None),
        topics=_topics(post.topics for post in posts),
        source=source_label(settings.social),
    )
    log.debug(
        "correlated incident=%s label=%s lag=%s ratio=%s",
        incident_id,
        correlation.label,
        correlation.lag,
        during.ratio,
    )
    return correlation


def _spike_onset(
    tx: StoreTx,
    complaints: _Complaints,
    detector: SpikeDetector,
    *,
    since: datetime,
    until: datetime,
    now: datetime,
) -> datetime | None:
    """The first spike onset in ``[since, until]``: stored, or found by feeding
    ``detector`` on (from where it stopped) through the buckets complete by ``now``."""
    bucket = complaints.bucket
    stop = min(floor_time(now, bucket), floor_time(until, bucket) + bucket)
    found = complaints.feed(detector, start=floor_time(since, bucket), stop=stop)
    stored = [row.at for row in tx.spikes(since=since, until=until + _EPSILON)]
    return min((at for at in [*found, *stored] if since <= at <= until), default=None)


def _label(*, probes_failed: bool, spiked: bool) -> str:
    if not spiked:
        return PROBES_ONLY
    return CONFIRMED if probes_failed else PUBLIC_ONLY


def _topics(rows: Iterable[str]) -> tuple[str, ...]:
    """Topics by how many posts name them, ties in TOPICS order (unknown ones last)."""
    tally = Counter(topic for topics in rows for topic in topics.split(",") if topic)
    order = {topic: i for i, topic in enumerate(TOPICS)}
    ranked = sorted(tally, key=lambda t: (-tally[t], order.get(t, len(order)), t))
    return tuple(ranked)


def source_label(social: SocialSettings) -> str:
    """The configured social sources in words, e.g. ``"X: prakerja"``."""
    names = []
    for source in social.sources:
        if source == "x":
            names.append(f"X: {social.query or ', '.join(social.keywords)}")
        else:
            names.append(f"file: {social.file.name if social.file else '-'}")
    return "; ".join(names) or "complaint counts"


def _probe_onset(
    tx: StoreTx, component_ids: Iterable[str], *, since: datetime, until: datetime
) -> datetime | None:
    """When the first of the components went into an outage within ``[since, until]``,
    or the transition that put one there when it already was at ``since``."""
    onsets = []
    for component_id in component_ids:
        in_effect = tx.transition_at(component_id, since)
        if in_effect is not None and in_effect.to_status in OUTAGE:
            onsets.append(in_effect.at)
            continue
        query = (
            select(TransitionRow.at)
            .where(
                TransitionRow.component_id == component_id,
                col(TransitionRow.to_status).in_(OUTAGE),
                col(TransitionRow.at) > since,
                col(TransitionRow.at) <= until,
            )
            .order_by(col(TransitionRow.at))
            .limit(1)
        )
        first = tx.session.exec(query).first()
        if first is not None:
            onsets.append(first)
    return min(onsets, default=None)


# -- blind spots ----------------------------------------------------------------------------


def is_blind_spot(
    tx: StoreTx, settings: Settings, *, at: datetime, since: datetime | None = None
) -> bool:
    """True when the probes saw every configured component up all through ``[since, at]``
    (at the moment ``at`` alone when ``since`` is not given).

    Up is ``operational`` or ``degraded_performance`` (a complaint spike then is
    something the probes do not see), by the component's state at ``since`` (its current
    state when it has held since before then, else the transition in effect) and every
    transition within the window; and no incident open during the window names a
    component as in an outage. ``under_maintenance`` is not a blind spot.
    """
    since = at if since is None else min(since, at)
    states = tx.component_states()
    for component in settings.components:
        state = states.get(component.id)
        if state is not None and state.since <= since:
            status = state.status
        else:
            row = tx.transition_at(component.id, since)
            status = row.to_status if row is not None else OPERATIONAL
        if status not in SEEN_AS_UP:
            return False
    known = {component.id for component in settings.components}
    within = tx.transitions_in(since=since, until=at + timedelta(microseconds=1))
    if any(t.component_id in known and t.to_status not in SEEN_AS_UP for t in within):
        return False
    return not _incident_names_outage(tx, since, at)


def _incident_names_outage(tx: StoreTx, since: datetime, at: datetime) -> bool:
    """Whether an incident open at some moment of ``[since, at]`` names a component as
    in an outage."""
    query = (
        select(IncidentComponentRow.component_id)
        .join(IncidentRow, col(IncidentRow.id) == col(IncidentComponentRow.incident_id))
        .where(
            col(IncidentRow.started_at) <= at,
            or_(col(IncidentRow.resolved_at).is_(None), col(IncidentRow.resolved_at) > since),
            col(IncidentComponentRow.status).in_(OUTAGE),
        )
        .limit(1)
    )
    return tx.session.exec(query).first() is not None
