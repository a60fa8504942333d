"""Complaint-spike detector on NAB realTweets: NAB score, window recall, false alerts.

Run from the project root::

    .venv/bin/python bench/spike_nab.py [--data DIR]

DIR holds NAB's ten ``Twitter_volume_*.csv`` series (5-minute mention counts) and
``combined_windows_realTweets.json`` (labelled anomaly windows); by default it is
``shared/data/nab-realtweets`` beside the project (see its README). Missing data exits 2.

In one run, three detectors see every series in time order:

1. **pantau**: ``monitor.social.spikes.detect`` with the default ``SpikeSettings``.
2. **rolling-mad**: a count's robust z-score against the median and MAD of the trailing
   day, alert above 3.5 (the MAD is floored at one count so flat zeros do not divide by 0).
3. **poisson-tod**: the upper Poisson tail of a count against the mean of the same
   5-minute time of day over the previous 7 days, alert below p = 1e-6.

The baselines alert at rising edges only (a bucket over the threshold after one that was
not), so a burst of over-threshold buckets is one alert, as Pantau's onsets are.

Figures, over the part of each file after NAB's probationary period (first 15%, at most
750 rows):

- **NAB**: NAB's standard profile (A_TP = 1, A_FP = -0.11, A_FN = -1, scaled sigmoid of the
  position in or past a window, only the first detection in a window counts), summed
  over the files and normalised so that never alerting scores 0 and one alert at the start
  of every window scores 100. The thresholds are fixed, not optimised per corpus as on
  NAB's scoreboard.
- **recall**: windows with at least one detection inside.
- **FA/series-week**: detections outside every window (after merging detections within
  one hour of each other, as the data's README defines false alerts), per week of scored
  data summed over the series.

The per-file table gives each file's own normalised NAB score, windows hit, false alerts
and all alerts; the summary adds the seconds each detector took over the ten files.

Benchmarks never fail CI: the script exits 0 and prints ``FAIL`` when Pantau misses the
target (NAB >= 65 with at most 1.5 false alerts per series-week).
"""

from __future__ import annotations

import argparse
import bisect
import csv
import json
import math
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from monitor.social.spikes import SpikeSettings, detect

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/nab-realtweets"
WINDOWS_FILE = "combined_windows_realTweets.json"
PROBATION_SHARE = 0.15
PROBATION_MAX_ROWS = 750
A_TP, A_FP, A_FN = 1.0, -0.11, -1.0
MERGE_ALERTS = timedelta(hours=1)
TARGET_SCORE, TARGET_FA_PER_WEEK = 65.0, 1.5
ROLLING_Z, ROLLING_WINDOW = 3.5, timedelta(days=1)
POISSON_P, POISSON_DAYS = 1e-6, 7

#: Indices of the rows a detector alerts on, given a series' timestamps and counts.
Detector = Callable[[list[datetime], list[float]], list[int]]


@dataclass(frozen=True, slots=True)
class LabelledSeries:
    """One NAB file: its rows and its anomaly windows as inclusive row ranges."""

    name: str
    timestamps: list[datetime]
    values: list[float]
    windows: list[tuple[int, int]]

    @property
    def probation(self) -> int:
        """Rows NAB ignores at the start: 15% of the file, at most 750."""
        return min(math.floor(PROBATION_SHARE * len(self.values)), PROBATION_MAX_ROWS)

    @property
    def scored_weeks(self) -> float:
        return (self.timestamps[-1] - self.timestamps[self.probation]) / timedelta(days=7)


@dataclass(frozen=True, slots=True)
class FileResult:
    """One detector on one file."""

    nab_raw: float
    windows_hit: int
    false_alerts: int
    detections: int


# --- the corpus ---------------------------------------------------------------------------


def load_corpus(data: Path) -> list[LabelledSeries]:
    """The labelled series in ``data``, sorted by name.

    Raises OSError for a missing file, and KeyError or ValueError for malformed ones.
    """
    windows = json.loads((data / WINDOWS_FILE).read_text(encoding="utf-8"))
    return [_load_series(data, key, spans) for key, spans in sorted(windows.items())]


def _load_series(data: Path, key: str, spans: list[list[str]]) -> LabelledSeries:
    with (data / Path(key).name).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    timestamps = [datetime.fromisoformat(row["timestamp"]) for row in rows]
    index = {at: i for i, at in enumerate(timestamps)}
    windows = [
        (index[datetime.fromisoformat(a)], index[datetime.fromisoformat(b)]) for a, b in spans
    ]
    return LabelledSeries(
        Path(key).stem, timestamps, [float(row["value"]) for row in rows], windows
    )


# --- detectors ----------------------------------------------------------------------------


def pantau(timestamps: list[datetime], values: list[float]) -> list[int]:
    """Pantau's detector with its default settings."""
    index = {at: i for i, at in enumerate(timestamps)}
    return [index[spike.timestamp] for spike in detect(zip(timestamps, values, strict=True))]


def rolling_mad(timestamps: list[datetime], values: list[float]) -> list[int]:
    """Robust z-score against the trailing day's median and MAD (MAD floored at 1)."""
    window: deque[tuple[datetime, float]] = deque()
    ordered: list[float] = []
    flags = []
    for at, value in zip(timestamps, values, strict=True):
        flag = False
        if len(ordered) >= 12:
            median = ordered[len(ordered) // 2]
            mad = statistics.median(abs(v - median) for v in ordered)
            flag = (value - median) / (1.4826 * max(mad, 1.0)) > ROLLING_Z
        flags.append(flag)
        window.append((at, value))
        bisect.insort(ordered, value)
        while window[0][0] <= at - ROLLING_WINDOW:
            del ordered[bisect.bisect_left(ordered, window.popleft()[1])]
    return rising_edges(flags)


def poisson_time_of_day(timestamps: list[datetime], values: list[float]) -> list[int]:
    """Poisson upper tail against the mean of the same time of day on the previous 7 days."""
    seen: dict[datetime, float] = {}
    flags = []
    for at, value in zip(timestamps, values, strict=True):
        earlier = [
            seen[d] for k in range(1, POISSON_DAYS + 1) if (d := at - k * timedelta(days=1)) in seen
        ]
        flags.append(
            bool(earlier) and poisson_upper_tail(value, statistics.fmean(earlier)) < POISSON_P
        )
        seen[at] = value
    return rising_edges(flags)


def poisson_upper_tail(count: float, mean: float) -> float:
    """P(X >= count) for X ~ Poisson(mean), with the mean floored at 0.1."""
    mean, k = max(mean, 0.1), int(count)
    if k <= mean:
        return 1.0
    log_term = k * math.log(mean) - mean - math.lgamma(k + 1)
    total, term = 0.0, 1.0
    while term > 1e-12 * total or total == 0.0:
        total += term
        k += 1
        term *= mean / k
    return math.exp(log_term) * total


def rising_edges(flags: Sequence[bool]) -> list[int]:
    """Indices where a flag is set and the previous one was not."""
    return [i for i, flag in enumerate(flags) if flag and (i == 0 or not flags[i - 1])]


# --- scoring ------------------------------------------------------------------------------


def scaled_sigmoid(position: float) -> float:
    """NAB's reward curve: about 1 at a window's start, 0 at its end, -1 far past it."""
    return -1.0 if position >= 3.0 else 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def score_file(series: LabelledSeries, detections: list[int]) -> FileResult:
    """NAB standard-profile raw score, windows hit and merged false alerts for one file."""
    scored = sorted(i for i in detections if i >= series.probation)
    credit: dict[int, float] = {}
    false_cost = 0.0
    for i in scored:
        inside = _window_of(series.windows, i)
        if inside is not None:
            start, end = series.windows[inside]
            credit.setdefault(
                inside,
                A_TP * scaled_sigmoid(-(end - i + 1) / (end - start + 1)) / scaled_sigmoid(-1.0),
            )
        else:
            false_cost += _false_positive_cost(series.windows, i)
    missed = len(series.windows) - len(credit)
    outside = [series.timestamps[i] for i in scored if _window_of(series.windows, i) is None]
    return FileResult(
        sum(credit.values()) + false_cost + A_FN * missed,
        len(credit),
        len(merge_alerts(outside)),
        len(scored),
    )


def _window_of(windows: list[tuple[int, int]], i: int) -> int | None:
    return next((w for w, (start, end) in enumerate(windows) if start <= i <= end), None)


def _false_positive_cost(windows: list[tuple[int, int]], i: int) -> float:
    """A_FP scaled by how far past the previous window's end ``i`` is (full cost if none)."""
    before = [(start, end) for start, end in windows if end < i]
    if not before:
        return -A_FP * scaled_sigmoid(3.0)
    start, end = max(before, key=lambda w: w[1])
    return -A_FP * scaled_sigmoid((i - end) / (end - start))


def merge_alerts(times: list[datetime]) -> list[datetime]:
    """Alerts left after dropping those within MERGE_ALERTS of the previous kept one."""
    kept: list[datetime] = []
    for at in sorted(times):
        if not kept or at - kept[-1] > MERGE_ALERTS:
            kept.append(at)
    return kept


def normalised(raw: float, windows: int) -> float:
    """100 × (S − S_null) / (S_perfect − S_null): never alerting 0, perfect 100."""
    null, perfect = A_FN * windows, A_TP * windows
    return 100.0 * (raw - null) / (perfect - null)


# --- the run ------------------------------------------------------------------------------

DETECTORS: dict[str, Detector] = {
    "pantau": pantau,
    "rolling-mad": rolling_mad,
    "poisson-tod": poisson_time_of_day,
}


def run(corpus: list[LabelledSeries]) -> dict[str, tuple[list[FileResult], float]]:
    """Every detector over every series: per-file results and seconds taken."""
    results = {}
    for name, detector in DETECTORS.items():
        started = time.perf_counter()
        per_file = [score_file(s, detector(s.timestamps, s.values)) for s in corpus]
        results[name] = (per_file, time.perf_counter() - started)
    return results


def print_report(
    corpus: list[LabelledSeries], results: dict[str, tuple[list[FileResult], float]]
) -> None:
    """The per-file table, the summary per detector and the verdict on the target."""
    windows = sum(len(s.windows) for s in corpus)
    weeks = sum(s.scored_weeks for s in corpus)
    print(
        f"NAB realTweets: {len(corpus)} series, {windows} windows, {weeks:.1f} scored series-weeks"
    )
    print(f"pantau: {SpikeSettings()}")
    print("\nper file: NAB score of the file alone, windows hit, false alerts, all alerts")
    print(f"{'file':<12}" + "".join(f" | {name:<25}" for name in results))
    for k, series in enumerate(corpus):
        cells = [_file_cell(series, per_file[k]) for per_file, _ in results.values()]
        print(
            f"{series.name.removeprefix('Twitter_volume_'):<12}"
            + "".join(f" | {c:<25}" for c in cells)
        )
    print(
        f"\n{'detector':<12} {'NAB':>6} {'recall':>12} {'FA/series-week':>15} {'alerts':>7} {'seconds':>8}"
    )
    for name, (per_file, seconds) in results.items():
        score = normalised(sum(r.nab_raw for r in per_file), windows)
        hit = sum(r.windows_hit for r in per_file)
        fa = sum(r.false_alerts for r in per_file) / weeks
        alerts = sum(r.detections for r in per_file)
        recall = f"{hit}/{windows} {hit / windows:4.0%}"
        print(f"{name:<12} {score:6.1f} {recall:>12} {fa:15.2f} {alerts:7d} {seconds:8.1f}")
    per_file, _ = results["pantau"]
    score = normalised(sum(r.nab_raw for r in per_file), windows)
    fa = sum(r.false_alerts for r in per_file) / weeks
    verdict = "PASS" if score >= TARGET_SCORE and fa <= TARGET_FA_PER_WEEK else "FAIL"
    print(
        f"\ntarget NAB >= {TARGET_SCORE:g} with FA/series-week <= {TARGET_FA_PER_WEEK:g}: {verdict}"
    )


def _file_cell(series: LabelledSeries, result: FileResult) -> str:
    score = normalised(result.nab_raw, len(series.windows))
    hit = f"{result.windows_hit}/{len(series.windows)}"
    return f"{score:6.1f} {hit:>4} FA {result.false_alerts:3d} of {result.detections:3d}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the NAB realTweets folder")
    args = parser.parse_args(argv)
    try:
        corpus = load_corpus(args.data)
    except (OSError, KeyError, ValueError) as exc:
        print(f"spike_nab: no usable NAB realTweets data in {args.data}: {exc}", file=sys.stderr)
        print("spike_nab: pass the folder with --data (see its README)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    results = run(corpus)
    print_report(corpus, results)
    print(f"time taken: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
