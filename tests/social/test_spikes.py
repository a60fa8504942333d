"""The complaint-spike detector on synthetic counts with known spikes."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from monitor.social.spikes import (
    Spike,
    SpikeDetector,
    SpikeSettings,
    detect,
    gpd_level,
    read_series_csv,
)

START = datetime(2024, 3, 4)  # a Monday
FIVE_MINUTES = timedelta(minutes=5)
ONE_MINUTE = timedelta(minutes=1)
Series = list[tuple[datetime, float]]


def _poisson(rng: random.Random, mean: float) -> int:
    if mean >= 30:  # the normal approximation is plenty for test data
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _mean(at: datetime, level: float) -> float:
    """A strong daily cycle (peak at 15:00, 9x the trough) and quieter weekends."""
    hour = at.hour + at.minute / 60
    daily = 1.0 + 0.8 * math.sin(2 * math.pi * (hour - 9) / 24)
    return level * daily * (0.6 if at.weekday() >= 5 else 1.0)


def counts(
    seed: int,
    *,
    days: float,
    bucket: timedelta = FIVE_MINUTES,
    level: float = 20.0,
    size: float = 10.0,
    spikes: tuple[int, ...] = (),
    start: datetime = START,
) -> Series:
    """Gamma-Poisson (negative binomial) counts: variance mean + mean²/size.

    Each index in ``spikes`` starts a burst of 10x the level that fades over six buckets.
    """
    rng = random.Random(seed)
    per_bucket = level * (bucket / FIVE_MINUTES)
    values = []
    for i in range(int(timedelta(days=days) / bucket)):
        mean = _mean(start + i * bucket, per_bucket)
        values.append(float(_poisson(rng, rng.gammavariate(size, mean / size))))
    for onset in spikes:
        for j in range(6):
            values[onset + j] += round(10 * per_bucket * (1 - j / 6))
    return [(start + i * bucket, value) for i, value in enumerate(values)]


def near(spikes: list[Spike], onset: datetime, *, within: timedelta) -> list[Spike]:
    return [s for s in spikes if timedelta(0) <= s.timestamp - onset <= within]


def stream(series: Series) -> list[Spike]:
    detector = SpikeDetector()
    return [s for at, value in series if (s := detector.update(at, value)) is not None]


# --- spikes and no spikes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "bucket", "days"),
    [(0, FIVE_MINUTES, 21), (1, FIVE_MINUTES, 8), (2, FIVE_MINUTES, 8), (3, ONE_MINUTE, 7)],
)
def test_one_spike_per_injected_spike_at_its_onset(seed: int, bucket: timedelta, days: int) -> None:
    per_day = int(timedelta(days=1) / bucket)
    onsets = tuple(int(per_day * d) for d in (2.35, 3.7, 4.1, 6.8) if d < days)
    series = counts(seed, days=days, bucket=bucket, spikes=onsets)

    spikes = detect(series)

    for onset in onsets:
        found = near(spikes, series[onset][0], within=2 * bucket)
        assert len(found) == 1, f"spike at {series[onset][0]}: {found}"
        assert found[0].value > 3 * found[0].expected
    others = [
        s for s in spikes if all(not near([s], series[o][0], within=2 * bucket) for o in onsets)
    ]
    assert len(others) <= 1  # heavy noise may look like one spike in weeks, no more


@pytest.mark.parametrize("seed", range(3))
def test_no_spikes_on_a_seasonal_overdispersed_series(seed: int) -> None:
    series = counts(seed, days=21)  # variance up to 4.6x Poisson, 9x day/night swing

    # Over 20 seeds the noise alone makes 0.27 alerts a week (0 to 4 in three weeks).
    assert len(detect(series)) <= 2


def test_a_long_spike_is_one_onset_and_a_later_one_fires_again() -> None:
    series = counts(7, days=6)
    start = 4 * 288 + 150
    for i in range(start, start + 36):  # three hours at 6x the usual volume
        series[i] = (series[i][0], series[i][1] + 120.0)
    later = start + 36 + 24  # two hours of calm, then another burst
    for i in range(later, later + 3):
        series[i] = (series[i][0], series[i][1] + 200.0)

    spikes = [s for s in detect(series) if s.timestamp >= series[start][0]]

    assert [s.timestamp for s in spikes] == [series[start][0], series[later][0]]


@pytest.mark.parametrize(
    "when",
    [
        timedelta(days=14, hours=15),  # Monday afternoon, the daily peak
        timedelta(days=12, hours=15),  # Saturday afternoon: 40% lower
        timedelta(days=12, hours=3),  # Saturday night, the trough
    ],
)
def test_baseline_knows_time_of_day_and_weekday(when: timedelta) -> None:
    detector = SpikeDetector()
    for at, value in counts(5, days=16, size=1000.0):
        if at >= START + when:
            break
        detector.update(at, value)

    true_mean = _mean(START + when, 20.0)
    assert detector.expected(START + when) == pytest.approx(true_mean, rel=0.15, abs=1.0)


# --- short histories, gaps, zeros ---------------------------------------------------------


def test_a_few_hours_of_history_still_find_a_spike() -> None:
    series = counts(11, days=4 / 24, bucket=ONE_MINUTE, level=50.0, size=50.0)
    onset = 170
    series[onset] = (series[onset][0], series[onset][1] + 80.0)

    spikes = detect(series)

    assert [s.timestamp for s in spikes] == [series[onset][0]]
    assert SpikeDetector().expected(START) == 0.0


def test_no_spike_during_the_warmup() -> None:
    detector = SpikeDetector()
    reports = [detector.update(START + i * ONE_MINUTE, v) for i, v in enumerate([0, 0, 90, 0])]

    assert reports == [None] * 4


def test_gaps_are_missing_data_not_zeros() -> None:
    series = counts(13, days=10)
    onset = 7 * 288 + 100
    series[onset] = (series[onset][0], series[onset][1] + 250.0)
    # Six hours missing on day 3 and a whole day missing on day 5.
    holes = set(range(3 * 288 + 100, 3 * 288 + 172)) | set(range(5 * 288, 6 * 288))
    with_gaps = [row for i, row in enumerate(series) if i not in holes]

    spikes = detect(with_gaps)

    assert [s.timestamp for s in spikes if s.timestamp >= START + timedelta(days=3)] == [
        series[onset][0]
    ]
    assert spikes == stream(with_gaps)


@pytest.mark.parametrize("bucket", [ONE_MINUTE, FIVE_MINUTES])
def test_constant_zeros_never_spike_until_posts_appear(bucket: timedelta) -> None:
    series: Series = [(START + i * bucket, 0.0) for i in range(2000)]
    assert detect(series) == []

    series[1500] = (series[1500][0], 25.0)
    spikes = detect(series)

    assert [(s.timestamp, s.value, s.expected) for s in spikes] == [(series[1500][0], 25.0, 0.0)]


def test_streaming_and_detect_report_the_same_spikes() -> None:
    series = counts(17, days=14, spikes=(3 * 288 + 40, 9 * 288 + 200))
    series = series[:2000] + series[2100:]  # and a gap

    batch = detect(series)

    assert len(batch) >= 2
    assert stream(series) == batch


def test_timestamps_must_increase() -> None:
    detector = SpikeDetector()
    detector.update(START, 1.0)

    with pytest.raises(ValueError, match="not after"):
        detector.update(START, 2.0)


@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf])
def test_counts_must_be_finite_and_non_negative(value: float) -> None:
    with pytest.raises(ValueError, match="count"):
        SpikeDetector().update(START, value)


def test_aware_timestamps_come_back_in_utc_and_naive_stay_naive() -> None:
    jakarta = timezone(timedelta(hours=7))
    series = counts(19, days=3, spikes=(2 * 288,))
    aware = [(at.replace(tzinfo=jakarta), value) for at, value in series]

    naive_spikes, aware_spikes = detect(series), detect(aware)

    assert naive_spikes and all(s.timestamp.tzinfo is None for s in naive_spikes)
    assert [s.timestamp for s in aware_spikes] == [
        s.timestamp.replace(tzinfo=jakarta).astimezone(UTC) for s in naive_spikes
    ]
    assert all(s.timestamp.tzinfo is UTC for s in aware_spikes)


# --- the public shapes --------------------------------------------------------------------


def test_spike_as_json() -> None:
    spike = Spike(datetime(2024, 3, 4, 8, 30, tzinfo=UTC), 120.0, 14.5, 9.25)

    assert spike.as_json() == {
        "timestamp": "2024-03-04T08:30:00+00:00",
        "value": 120.0,
        "expected": 14.5,
        "score": 9.25,
    }


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"release": 5.0}, "release"),
        ({"tail_per_week": 0.0}, "tail_per_week"),
        ({"slot": timedelta(minutes=7)}, "slot"),
        ({"quiet": timedelta(0)}, "quiet"),
        ({"season_days": 0}, "season_days"),
    ],
)
def test_settings_reject_nonsense(bad: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SpikeSettings(**bad)  # type: ignore[arg-type]


def test_fixed_threshold_when_calibration_is_off() -> None:
    series = counts(23, days=7, spikes=(5 * 288,))

    assert detect(series, SpikeSettings(tail_per_week=None))


def test_gpd_level_of_an_exponential_sample() -> None:
    rng = random.Random(29)
    sample = [rng.expovariate(1.0) for _ in range(4000)]

    # Exponential tail: the share 1e-3 is exceeded above -ln(1e-3) = 6.9.
    assert gpd_level(sample, 1e-3) == pytest.approx(6.9, rel=0.15)
    assert gpd_level([0.0, 0.0, 0.0], 0.1) is None


# --- reading a CSV ------------------------------------------------------------------------


def test_read_series_csv(tmp_path: Path) -> None:
    path = tmp_path / "counts.csv"
    path.write_text(
        "timestamp,value\n2024-03-04T08:00:00+07:00,3\n\n2024-03-04T08:01:00+07:00,0\n",
        encoding="utf-8",
    )

    assert read_series_csv(path) == [
        (datetime(2024, 3, 4, 1, 0, tzinfo=UTC), 3.0),
        (datetime(2024, 3, 4, 1, 1, tzinfo=UTC), 0.0),
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("time,count\n2024-03-04 08:00,1\n", 1),
        ("", 1),
        ("timestamp,value\n2024-03-04 08:00,1\nyesterday,2\n", 3),
        ("timestamp,value\n2024-03-04 08:00,1\n2024-03-04 08:05,1\n2024-03-04 08:10,many\n", 4),
        ("timestamp,value\n2024-03-04 08:00,-4\n", 2),
        ("timestamp,value\n2024-03-04 08:00,nan\n", 2),
        ("timestamp,value\n2024-03-04 08:00\n", 2),
        ("timestamp,value\n2024-03-04 08:00,1\n\n2024-03-04T08:05:00+00:00,1\n", 4),
    ],
)
def test_read_series_csv_errors_name_the_line(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ValueError, match=rf"bad\.csv:{line}: "):
        read_series_csv(path)
