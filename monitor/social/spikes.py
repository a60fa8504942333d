"""Complaint-volume spikes: counts per bucket against a seasonal, robust baseline.

Each bucket's count is put on the Anscombe scale ``z = 2·sqrt(count + 3/8)``, where
Poisson noise has unit variance at any level. The baseline of a bucket is

    expected z = recent level (deseasonalised) + seasonal offset (time of day, weekday)

The seasonal offsets are medians per time-of-day slot over the previous
``season_days`` days, refined per weekday as weeks accumulate; the level is the median
of the deseasonalised values of the last ``level_window``. With no history of a slot
yet the offset is 0, so a short history falls back to the recent robust level.

The score of a bucket is ``(z - expected z) / scale``, where the scale is the robust
spread (1.4826 × median absolute error) of the last ``scale_window`` of prediction
errors, never below the Poisson floor of 1. Real social counts are far more dispersed
than Poisson and many series spike routinely, so a fixed threshold would alert all
the time on some series and never on others. The onset bar is therefore calibrated per
series by extreme-value theory: the peaks of past excursions (runs of scores of 3 and
more) over ``tail_days`` are fit with a generalised Pareto tail, and a spike must reach
the score that past excursions exceeded about ``tail_per_week`` times a week (and at
least ``threshold``). A series that truly spikes more often than that (an outage every
day) learns such spikes as its usual ones, and then only bigger ones fire; with
``tail_per_week=None`` the bar is ``threshold`` alone.

A spike is reported once, at its onset bucket. It lasts until the score has stayed
below ``release`` for ``quiet``; only then can a new onset fire. Values enter the
history winsorised at ``clip`` scales above the baseline, so a spike does not teach
the baseline that it is normal. Each decision uses only earlier buckets, so the same
code runs online and over a file. Missing buckets are missing data, not zeros: feed
zero counts explicitly. A whole series (:func:`detect`, ``pantau complaints detect
--csv``) may list its rows in any order and a bucket in several rows: the rows are
sorted by time and the counts of one timestamp added up (:func:`merge_buckets`).
"""

from __future__ import annotations

import bisect
import csv
import io
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path

DAY = timedelta(days=1)
WEEK = timedelta(days=7)
#: Scores from this level up form an excursion; their peaks calibrate the onset bar.
EXCURSION_LEVEL = 3.0
#: Fewest past excursions for a tail fit; before that the bar is ``threshold``.
MIN_EXCURSIONS = 10
#: Cap of the fitted tail shape, so that a few huge peaks cannot push the bar out of reach.
MAX_SHAPE = 0.5
#: Spacings a streaming detector looks at to infer its bucket.
_SPACINGS_FOR_BUCKET = 16

#: A bucket's place in the week: (weekday, time-of-day slot).
SlotKey = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Spike:
    """One spike, reported at its onset bucket.

    ``value`` is that bucket's count and ``expected`` the baseline count for it.
    ``score`` is the excess in robust standard deviations on the Anscombe scale,
    ``(z - expected z) / scale``. Under Poisson noise it is close to a standard normal
    (4.5 is exceeded with probability about 3e-6); on overdispersed series only scores
    above the series' calibrated bar fire.
    """

    timestamp: datetime
    value: float
    expected: float
    score: float

    def as_json(self) -> dict[str, object]:
        """The spike as a JSON-ready dict with an ISO 8601 timestamp."""
        return {
            "timestamp": self.timestamp.isoformat(),
            "value": self.value,
            "expected": self.expected,
            "score": self.score,
        }


@dataclass(frozen=True, slots=True)
class SpikeSettings:
    """How the detector decides. The defaults suit buckets of 1 to 15 minutes."""

    #: Lowest onset score, in robust standard deviations (the bar on a calm series).
    threshold: float = 4.5
    #: Past excursions whose peaks exceed the bar about this often per week are the
    #: series' usual spikiness, not spikes. None turns calibration off (bar = threshold).
    tail_per_week: float | None = 1.5
    #: Days of excursion peaks behind the calibration.
    tail_days: int = 28
    #: A spike is over once the score has stayed below this for ``quiet``.
    release: float = 2.0
    #: How long the score must stay below ``release`` before a new onset can fire.
    quiet: timedelta = timedelta(minutes=30)
    #: Width of a time-of-day slot of the seasonal profile; must divide a day.
    slot: timedelta = timedelta(hours=1)
    #: Days of history behind the seasonal profile.
    season_days: int = 28
    #: Weeks of (weekday, slot) history that weigh as much as the all-days profile.
    week_prior: float = 2.0
    #: Window of the recent level.
    level_window: timedelta = timedelta(hours=3)
    #: Window of prediction errors behind the robust scale.
    scale_window: timedelta = timedelta(days=7)
    #: Smallest scale (1 is Poisson noise on the Anscombe scale).
    min_scale: float = 1.0
    #: Values enter the history winsorised at this many scales above the baseline.
    clip: float = 3.0
    #: No spike is reported before this much history has been seen.
    warmup: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if not 0 <= self.release < self.threshold:
            raise ValueError("release must be at least 0 and below threshold")
        if self.tail_per_week is not None and self.tail_per_week <= 0:
            raise ValueError("tail_per_week must be positive (or None)")
        windows = (self.quiet, self.slot, self.level_window, self.scale_window)
        if min(windows) <= timedelta(0) or self.warmup < timedelta(0):
            raise ValueError("quiet, slot, level_window and scale_window must be positive")
        if self.slot.microseconds or DAY % self.slot:
            raise ValueError("slot must be a whole number of seconds that divides a day")
        if min(self.tail_days, self.season_days) < 1 or min(self.clip, self.min_scale) <= 0:
            raise ValueError("tail_days, season_days, clip and min_scale must be positive")


def to_scale(count: float) -> float:
    """The Anscombe transform: Poisson counts get unit variance."""
    return 2.0 * math.sqrt(max(count, 0.0) + 0.375)


def from_scale(z: float) -> float:
    """The count whose Anscombe value is ``z`` (never below 0)."""
    return max((z / 2.0) ** 2 - 0.375, 0.0)


def slot_key(at: datetime, slot: timedelta) -> SlotKey:
    """The weekday and time-of-day slot of ``at``, on its own wall clock."""
    seconds = at.hour * 3600 + at.minute * 60 + at.second
    return at.weekday(), seconds // int(slot.total_seconds())


def _expired(at: datetime, now: datetime, window: timedelta) -> bool:
    """Whether ``at`` is at or before ``now - window`` (never, when that is before year 1)."""
    try:
        return at <= now - window
    except OverflowError:
        return False


def _in_utc(at: datetime) -> datetime:
    """An aware ``at`` in UTC (a naive one as it is). Raises ValueError when UTC is
    past the calendar's ends (``0001-01-01T00:00+07:00``)."""
    if at.tzinfo is None:
        return at
    try:
        return at.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{at.isoformat()} is out of range in UTC") from None


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


def gpd_level(excesses: list[float], share: float) -> float | None:
    """The excess that a share ``share`` of a generalised Pareto sample exceeds.

    The tail is fit to ``excesses`` (all >= 0) by probability-weighted moments (Hosking
    & Wallis 1987), its shape capped at MAX_SHAPE. None when the fit degenerates.
    """
    ordered = sorted(excesses)
    n = len(ordered)
    a0 = sum(ordered) / n
    a1 = sum(v * (n - j - 0.65) for j, v in enumerate(ordered)) / n**2
    if a0 <= 0.0 or a0 <= 2.0 * a1:
        return None
    shape = min(2.0 - a0 / (a0 - 2.0 * a1), MAX_SHAPE)
    sigma = 2.0 * a0 * a1 / (a0 - 2.0 * a1)
    if abs(shape) < 1e-9:
        return -sigma * math.log(share)
    return sigma / shape * (math.pow(share, -shape) - 1.0)


class _SeasonalProfile:
    """Seasonal offsets on the Anscombe scale, built once a day from earlier days.

    A slot's daily offset is its median minus the median of all history; a (weekday,
    slot) has a weekly offset computed the same way over that weekday only, weighing
    ``weeks / (weeks + week_prior)`` against the daily one.
    """

    def __init__(
        self, history: Iterable[tuple[datetime, float, SlotKey]], week_prior: float
    ) -> None:
        self._week_prior = week_prior
        by_slot: dict[int, list[float]] = {}
        by_key: dict[SlotKey, list[float]] = {}
        weeks: dict[SlotKey, set[int]] = {}
        for at, z, key in history:
            by_slot.setdefault(key[1], []).append(z)
            by_key.setdefault(key, []).append(z)
            weeks.setdefault(key, set()).add(at.toordinal() // 7)
        centre = _median([z for values in by_slot.values() for z in values]) if by_slot else 0.0
        self._daily = {slot: _median(values) - centre for slot, values in by_slot.items()}
        self._weekly = {k: (_median(v) - centre, len(weeks[k])) for k, v in by_key.items()}
        self._cache: dict[SlotKey, float] = {}

    def offset(self, key: SlotKey) -> float:
        """The seasonal offset of a slot; 0 for a slot never seen."""
        cached = self._cache.get(key)
        if cached is None:
            daily = self._daily.get(key[1], 0.0)
            weekly, weeks = self._weekly.get(key, (daily, 0))
            weight = weeks / (weeks + self._week_prior)
            cached = self._cache[key] = (1.0 - weight) * daily + weight * weekly
        return cached


class _RecentLevel:
    """The median of the deseasonalised values of a trailing window, kept sorted."""

    def __init__(self, window: timedelta) -> None:
        self._window = window
        self._rows: deque[tuple[datetime, float, SlotKey, float]] = deque()
        self._sorted: list[float] = []
        self._last: tuple[float, SlotKey] | None = None

    def add(self, at: datetime, z: float, key: SlotKey, profile: _SeasonalProfile) -> None:
        level = z - profile.offset(key)
        self._rows.append((at, z, key, level))
        bisect.insort(self._sorted, level)
        self._last = (z, key)

    def forget_before(self, now: datetime) -> None:
        """Drop the values at or before ``now - window``."""
        while self._rows and _expired(self._rows[0][0], now, self._window):
            del self._sorted[bisect.bisect_left(self._sorted, self._rows.popleft()[3])]

    def reseason(self, profile: _SeasonalProfile) -> None:
        """Deseasonalise the window again with a new profile."""
        self._rows = deque((at, z, key, z - profile.offset(key)) for at, z, key, _ in self._rows)
        self._sorted = sorted(row[3] for row in self._rows)

    def value(self, profile: _SeasonalProfile) -> float | None:
        """The level; after a gap longer than the window, the last value's; None before any."""
        if self._sorted:
            mid = len(self._sorted) // 2
            if len(self._sorted) % 2:
                return self._sorted[mid]
            return (self._sorted[mid - 1] + self._sorted[mid]) / 2.0
        return None if self._last is None else self._last[0] - profile.offset(self._last[1])


class _RobustScale:
    """1.4826 × the median absolute prediction error over a trailing window."""

    def __init__(self, window: timedelta) -> None:
        self._window = window
        self._order: deque[tuple[datetime, float]] = deque()
        self._sorted: list[float] = []

    def add(self, at: datetime, error: float) -> None:
        self._order.append((at, abs(error)))
        bisect.insort(self._sorted, abs(error))
        while _expired(self._order[0][0], at, self._window):
            _, old = self._order.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]

    def value(self) -> float | None:
        """The scale (a normal standard deviation); None before any error."""
        return 1.4826 * self._sorted[len(self._sorted) // 2] if self._sorted else None


class _ExcursionTail:
    """Peaks of past excursions over a trailing window, and the bar they calibrate.

    An excursion is a run of scores >= EXCURSION_LEVEL, ended by ``quiet`` without one
    (declustering: one peak per event, however long). The excursion still open is not
    part of the sample, so a spike is judged against earlier ones only.
    """

    def __init__(self, window: timedelta, quiet: timedelta) -> None:
        self._window = window
        self._quiet = quiet
        self._peaks: deque[tuple[datetime, float]] = deque()
        self._open: tuple[datetime, float] | None = None  # (last high bucket, peak so far)
        self._start: datetime | None = None

    def add(self, at: datetime, score: float) -> None:
        self._start = self._start or at
        if self._open is not None and at - self._open[0] > self._quiet:
            self._peaks.append(self._open)
            self._open = None
        if score >= EXCURSION_LEVEL:
            self._open = (at, max(score, self._open[1]) if self._open else score)
        while self._peaks and _expired(self._peaks[0][0], at, self._window):
            self._peaks.popleft()

    def bar(self, at: datetime, per_week: float) -> float | None:
        """The score that past peaks exceeded ``per_week`` times a week; None if unknown."""
        if len(self._peaks) < MIN_EXCURSIONS or self._start is None:
            return None
        weeks = min(at - self._start, self._window) / WEEK
        share = per_week * weeks / len(self._peaks)
        if not 0.0 < share < 1.0:
            return None
        level = gpd_level([peak - EXCURSION_LEVEL for _, peak in self._peaks], share)
        return None if level is None else EXCURSION_LEVEL + level


class SpikeDetector:
    """Streaming: feed buckets in time order; the runtime keeps one per series.

    ``bucket`` is the bucket width; when None it is inferred (the median of the first
    spacings seen). Aware timestamps are handled in UTC.
    """

    def __init__(
        self, settings: SpikeSettings = SpikeSettings(), *, bucket: timedelta | None = None
    ) -> None:
        self._settings = settings
        self._given_bucket = bucket
        self._spacings: list[timedelta] = []  # the first spacings seen, sorted
        self._history: deque[tuple[datetime, float, SlotKey]] = deque()
        self._profile = _SeasonalProfile((), settings.week_prior)
        self._level = _RecentLevel(settings.level_window)
        self._profile_day: date | None = None
        self._scale = _RobustScale(settings.scale_window)
        self._tail = _ExcursionTail(settings.tail_days * DAY, settings.quiet)
        self._first: datetime | None = None
        self._last: datetime | None = None
        self._in_spike = False
        self._calm_since: datetime | None = None

    @property
    def bucket(self) -> timedelta | None:
        """The bucket width: given, or the median of the first spacings seen (None before)."""
        if self._given_bucket is not None or not self._spacings:
            return self._given_bucket
        return self._spacings[(len(self._spacings) - 1) // 2]

    @property
    def in_spike(self) -> bool:
        """Whether a spike reported earlier is still going on."""
        return self._in_spike

    def update(self, timestamp: datetime, value: float) -> Spike | None:
        """Count one bucket in; return a Spike when this bucket is a spike's onset.

        Raises ValueError when ``timestamp`` is not after the previous bucket's or when
        ``value`` is negative or not finite.
        """
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"count must be finite and >= 0, got {value!r}")
        timestamp = self._advance_clock(timestamp)
        z = to_scale(value)
        base = self._expected_z(timestamp)
        scale = self._current_scale(timestamp)
        spike = None
        if base is not None and scale is not None:
            score = (z - base) / scale
            spike = self._step_state(timestamp, value, base, score)
            self._tail.add(timestamp, score)
            z = min(z, base + self._settings.clip * scale)
        if base is not None:
            self._scale.add(timestamp, z - base)
        self._remember(timestamp, z)
        return spike

    def expected(self, timestamp: datetime) -> float:
        """The baseline count for ``timestamp`` given what was seen so far (0 before any)."""
        timestamp = _in_utc(timestamp)
        base = self._expected_z(timestamp)
        return from_scale(base) if base is not None else 0.0

    def _advance_clock(self, timestamp: datetime) -> datetime:
        timestamp = _in_utc(timestamp)
        if self._last is not None:
            if timestamp <= self._last:
                raise ValueError(f"bucket {timestamp} is not after {self._last}")
            if len(self._spacings) < _SPACINGS_FOR_BUCKET:
                bisect.insort(self._spacings, timestamp - self._last)
        self._first = self._first or timestamp
        self._last = timestamp
        self._level.forget_before(timestamp)
        if timestamp.date() != self._profile_day:
            self._profile = _SeasonalProfile(self._history, self._settings.week_prior)
            self._level.reseason(self._profile)
            self._profile_day = timestamp.date()
        return timestamp

    def _current_scale(self, timestamp: datetime) -> float | None:
        """The score's scale; None during the warmup."""
        if self._first is None or timestamp - self._first < self._settings.warmup:
            return None
        measured = self._scale.value()
        return None if measured is None else max(measured, self._settings.min_scale)

    def _expected_z(self, timestamp: datetime) -> float | None:
        """Recent level plus the seasonal offset of ``timestamp``; None before any history."""
        level = self._level.value(self._profile)
        if level is None:
            return None
        return level + self._profile.offset(slot_key(timestamp, self._settings.slot))

    def _step_state(
        self, timestamp: datetime, value: float, base: float, score: float
    ) -> Spike | None:
        if not self._in_spike:
            if score < self._settings.threshold or score < self._bar(timestamp):
                return None
            self._in_spike, self._calm_since = True, None
            return Spike(timestamp, float(value), from_scale(base), score)
        if score >= self._settings.release:
            self._calm_since = None
        elif self._calm_since is None:
            self._calm_since = timestamp
        if self._calm_since is not None and timestamp - self._calm_since >= self._quiet_span():
            self._in_spike = False
        return None

    def _bar(self, timestamp: datetime) -> float:
        """The onset bar: ``threshold``, raised to the calibrated tail level."""
        per_week = self._settings.tail_per_week
        level = None if per_week is None else self._tail.bar(timestamp, per_week)
        return self._settings.threshold if level is None else max(level, self._settings.threshold)

    def _quiet_span(self) -> timedelta:
        # The first calm bucket stands for a whole bucket of calm.
        return self._settings.quiet - (self.bucket or timedelta(0))

    def _remember(self, timestamp: datetime, z: float) -> None:
        key = slot_key(timestamp, self._settings.slot)
        self._history.append((timestamp, z, key))
        self._level.add(timestamp, z, key, self._profile)
        horizon = self._settings.season_days * DAY
        while _expired(self._history[0][0], timestamp, horizon):
            self._history.popleft()


def infer_bucket(timestamps: list[datetime]) -> timedelta | None:
    """The median spacing of ``timestamps`` (in time order); None with fewer than two."""
    spacings = sorted(b - a for a, b in pairwise(timestamps))
    return spacings[len(spacings) // 2] if spacings else None


def merge_buckets(series: Iterable[tuple[datetime, float]]) -> list[tuple[datetime, float]]:
    """A series as the detector takes it: in time order, one count per timestamp.

    The rows of a series may come in any order (an export sorted by volume, two exports
    concatenated): they are sorted by time, and the counts of rows with the same time
    (the same instant, for aware timestamps, which come back in UTC) are added up, as
    two partial counts of one bucket. Raises ValueError for a negative or non-finite
    count, a total too large for a float, or a mix of aware and naive timestamps.
    """
    totals: dict[datetime, float] = {}
    for at, value in series:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"count must be finite and >= 0, got {value!r} at {at}")
        key = _in_utc(at)
        totals[key] = totals.get(key, 0.0) + value
    if len({at.tzinfo is None for at in totals}) > 1:
        raise ValueError("the series mixes timezone-aware and naive timestamps")
    for at, total in totals.items():
        if not math.isfinite(total):
            raise ValueError(f"the counts at {at} add up to more than a float holds")
    return sorted(totals.items())


def detect(
    series: Iterable[tuple[datetime, float]], settings: SpikeSettings = SpikeSettings()
) -> list[Spike]:
    """The spike onsets of a whole series, in time order.

    The series is first put in order and its rows at the same time added up
    (:func:`merge_buckets`); the onsets are then exactly those a streaming detector
    reports over it, so each is one of the series' timestamps. The bucket is the
    median spacing. Raises ValueError as :func:`merge_buckets` does.
    """
    rows = merge_buckets(series)
    detector = SpikeDetector(settings, bucket=infer_bucket([at for at, _ in rows]))
    return [spike for at, value in rows if (spike := detector.update(at, value)) is not None]


def read_series_csv(path: Path) -> list[tuple[datetime, float]]:
    """Read a ``timestamp,value`` CSV (ISO 8601 timestamps, counts) in file order
    (:func:`detect` sorts the rows and adds up those of one timestamp).

    Aware timestamps are converted to UTC. Raises ValueError naming the file and line
    for a wrong header, a malformed row, a negative or non-finite count, or a mix of
    aware and naive timestamps.
    """
    data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[datetime, float]] = []
    try:
        header = next(reader, None)
        if header is None or [cell.strip().lower() for cell in header] != ["timestamp", "value"]:
            raise ValueError(
                f"{path}:1: expected the header 'timestamp,value', got {_cut(repr(header))}"
            )
        for row in reader:
            if row:
                first = rows[0][0] if rows else None
                rows.append(_parse_row(row, first, f"{path}:{reader.line_num}"))
    except csv.Error as exc:
        raise ValueError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None
    return rows


def _parse_row(row: list[str], first: datetime | None, where: str) -> tuple[datetime, float]:
    if len(row) != 2:
        raise ValueError(f"{where}: expected 2 fields, got {len(row)}")
    try:
        at = datetime.fromisoformat(row[0].strip())
        value = float(row[1])
    except ValueError as exc:
        raise ValueError(f"{where}: {_cut(str(exc))}") from exc
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"{where}: the count must be finite and >= 0, got {_cut(row[1].strip())!r}"
        )
    if first is not None and (first.tzinfo is None) != (at.tzinfo is None):
        raise ValueError(f"{where}: mixes timezone-aware and naive timestamps")
    try:
        return _in_utc(at), value
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _cut(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters, for messages quoting a file."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
