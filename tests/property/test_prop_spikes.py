"""The spike detector and ``pantau complaints detect --csv`` on any non-negative series.

What a series may hold: gaps, zeros, huge counts, a single point, all-equal counts, and
rows out of order or repeated. Rows are sorted by time and the counts of one timestamp
added up (``merge_buckets``): a CSV may be two exports concatenated, or sorted by volume.

Properties: no crash; every onset is one of the input timestamps, reported once (never
in two consecutive buckets), with the bucket's (summed) count, and a finite,
non-negative expected count and a finite score above the bar; the streaming detector
agrees with the batch one.
"""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prop_support import examples

from monitor.social.spikes import (
    Spike,
    SpikeDetector,
    SpikeSettings,
    detect,
    merge_buckets,
    read_series_csv,
)

START = datetime(2026, 9, 14)  # a Monday
BUCKET = timedelta(minutes=5)
LAST = datetime(9999, 12, 31)
Series = list[tuple[datetime, float]]

counts = st.one_of(
    st.integers(0, 30).map(float),
    st.just(0.0),
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
    st.floats(min_value=1e6, max_value=1e300),  # huge, yet a few of them still add up
    st.sampled_from([0.0, 5e-324, 1.0, 1e300]),
)
#: Steps between rows, in buckets, per kind of series: 0 repeats a bucket, negatives go
#: back in time, larger ones leave gaps (up to days).
STEPS = {
    "regular": (1,),
    "messy": (1, 1, 1, 1, 0, -1, -3, 2),
    "gappy": (1, 1, 1, 1, 1, 1, 7, 60, 600, 288 * 3),
    "shuffled": (1, 1, 1, 1, 1, 1, 1, 1, -1, 0, 3, 12, -40),
}
zones = st.sampled_from(
    [None, UTC, timezone(timedelta(hours=7)), timezone(timedelta(hours=-9, minutes=-30))]
)


@st.composite
def series(draw: st.DrawFn, *, max_size: int = 300) -> Series:
    """A series around a calm level with bursts, in any order, with repeated rows.

    Hypothesis draws its shape (start, zone, level, length, bursts, kind of disorder);
    a seeded generator draws the rows, which keeps long series cheap to generate.
    """
    zone = draw(zones)
    # The calendar's first and last days are there too: the windows reach past them.
    start = draw(
        st.sampled_from(
            [START, datetime(1, 1, 2), datetime(9999, 12, 20), datetime(2024, 2, 29, 23, 57)]
        )
    )
    level = draw(st.sampled_from([0.0, 1.0, 10.0, 500.0, 1e9]))
    bursts = draw(st.lists(counts, min_size=1, max_size=6))
    burst_rate = draw(st.sampled_from([0.0, 0.01, 0.03, 0.1, 0.5]))
    steps = STEPS[draw(st.sampled_from(sorted(STEPS)))]
    size = draw(st.integers(1, max_size))
    rng = Random(draw(st.integers(0, 2**32)))
    rows: Series = []
    at = start
    for _ in range(size):
        value = rng.choice(bursts) if rng.random() < burst_rate else level
        rows.append((at if zone is None else at.replace(tzinfo=zone), value))
        try:
            at = max(start, at + rng.choice(steps) * BUCKET)
        except OverflowError:
            break
        if at >= LAST:  # later, an offset may carry UTC past the calendar's end
            break
    return rows


def _instant(at: datetime) -> datetime:
    return at.astimezone(UTC) if at.tzinfo is not None else at


def assert_onsets_well_formed(rows: Series, spikes: list[Spike], settings: SpikeSettings) -> None:
    merged = merge_buckets(rows)
    index = {at: i for i, (at, _) in enumerate(merged)}
    positions = []
    for spike in spikes:
        assert spike.timestamp in index, spike  # one of the input timestamps
        positions.append(index[spike.timestamp])
        assert spike.value == merged[index[spike.timestamp]][1]
        assert math.isfinite(spike.value) and spike.value >= 0
        assert math.isfinite(spike.expected) and spike.expected >= 0
        assert math.isfinite(spike.score) and spike.score >= settings.threshold
        json.dumps(spike.as_json(), allow_nan=False)
    assert positions == sorted(set(positions))  # in order, each onset once
    assert all(b - a > 1 for a, b in itertools.pairwise(positions)), positions
    instants = {_instant(at) for at, _ in rows}
    assert {_instant(s.timestamp) for s in spikes} <= instants


@examples(150)
@given(series())
def test_any_series_gives_well_formed_onsets(rows: Series) -> None:
    settings = SpikeSettings()
    assert_onsets_well_formed(rows, detect(rows, settings), settings)


@examples(60)
@given(series(), st.sampled_from([None, 1.5]), st.sampled_from([5, 30, 120]))
def test_onsets_are_well_formed_under_other_settings(
    rows: Series, per_week: float | None, quiet_minutes: int
) -> None:
    settings = SpikeSettings(
        tail_per_week=per_week, quiet=timedelta(minutes=quiet_minutes), warmup=timedelta(0)
    )
    assert_onsets_well_formed(rows, detect(rows, settings), settings)


@examples(60)
@given(series())
def test_streaming_reports_what_detect_reports(rows: Series) -> None:
    merged = merge_buckets(rows)
    spacings = sorted(b[0] - a[0] for a, b in itertools.pairwise(merged))
    bucket = spacings[len(spacings) // 2] if spacings else None
    detector = SpikeDetector(bucket=bucket)
    streamed = [s for at, value in merged if (s := detector.update(at, value)) is not None]
    assert streamed == detect(rows)


@examples(60)
@given(series(max_size=120), st.randoms(use_true_random=False))
def test_row_order_does_not_matter(rows: Series, rng: Random) -> None:
    shuffled = list(rows)
    rng.shuffle(shuffled)
    merged, merged_shuffled = merge_buckets(rows), merge_buckets(shuffled)
    assert [at for at, _ in merged_shuffled] == [at for at, _ in merged]
    assert [v for _, v in merged_shuffled] == pytest.approx([v for _, v in merged], rel=1e-9)
    if len(merged) == len(rows):  # no repeated rows: no sums to round differently
        assert detect(shuffled) == detect(rows)


def test_repeated_and_unordered_rows_are_one_sorted_series() -> None:
    t = [START + i * BUCKET for i in range(3)]
    assert merge_buckets([(t[2], 1.0), (t[0], 2.0), (t[2], 3.0), (t[1], 0.0)]) == [
        (t[0], 2.0),
        (t[1], 0.0),
        (t[2], 4.0),
    ]
    jakarta = timezone(timedelta(hours=7))
    assert merge_buckets([(t[0].replace(tzinfo=UTC), 1.0), (t[0].replace(tzinfo=jakarta), 1.0)])


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([(START, 1e308), (START, 1e308)], "add up"),
        ([(START, -1.0)], "count"),
        ([(START, math.nan)], "count"),
        ([(START, 1.0), (START.replace(tzinfo=UTC), 1.0)], "mixes"),
        ([(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=7))), 1.0)], "out of range"),
    ],
)
def test_series_that_cannot_be_counted_are_refused(rows: Series, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        detect(rows)


@pytest.mark.parametrize("start", [datetime(1, 1, 1), datetime(1, 1, 1, tzinfo=UTC)])
def test_the_first_days_of_the_calendar_are_a_series_too(start: datetime) -> None:
    rows = [(start + i * BUCKET, 3.0) for i in range(50)] + [(start + 50 * BUCKET, 900.0)]
    assert [s.timestamp for s in detect(rows)] == [start + 50 * BUCKET]


# --- the CSV --------------------------------------------------------------------------------


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, Series]:
    """A series written the ways exports write it: BOM, CRLF, blank lines, spaces, offsets."""
    rows = draw(series(max_size=120))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    lines = [draw(st.sampled_from(["timestamp,value", "Timestamp , VALUE"]))]
    for at, value in rows:
        stamp = at.isoformat(sep=draw(st.sampled_from(["T", " "])))
        lines.append(f"{stamp},{draw(st.sampled_from(['', ' ']))}{value!r}")
        if draw(st.integers(0, 20)) == 0:
            lines.append("")
    text = newline.join(lines) + draw(st.sampled_from(["", newline]))
    bom = draw(st.sampled_from([b"", b"\xef\xbb\xbf"]))
    return bom + text.encode(), rows


@examples(60)
@given(csv_files())
def test_a_written_series_reads_back_and_is_detected(
    tmp_path_factory: pytest.TempPathFactory, written: tuple[bytes, Series]
) -> None:
    data, rows = written
    path = tmp_path_factory.mktemp("csv") / "series.csv"
    path.write_bytes(data)
    read = read_series_csv(path)
    assert [(_instant(at), v) for at, v in read] == [(_instant(at), v) for at, v in rows]
    assert_onsets_well_formed(read, detect(read), SpikeSettings())


#: Lines that are not a row of a series.
BAD_LINES = (
    "yesterday,3",
    "2026-09-14T00:00:00,-1",
    "2026-09-14T00:00:00,nan",
    "2026-09-14T00:00:00,inf",
    "2026-09-14T00:00:00,1e999",
    "2026-09-14T00:00:00",
    "2026-09-14T00:00:00,1,2",
    '2026-09-14T00:00:00,"1',
    '"2026-09-14T00:00:00,1',
    "0001-01-01T00:00:00+01:00,1",
    "2026-09-14T00:00:00+00:00,1",  # aware after naive
    "\x00,\x00",
    "2026-02-30T00:00:00,1",
    "2026-09-14T00:00:00," + "1" * 5000,
    '2026-09-14T00:00:00,"' + "9" * 200_000 + '"',
)


@examples(80)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(BAD_LINES),
            st.text(max_size=30),
            st.just("2026-09-14T00:05:00,4"),
        ),
        max_size=6,
    ),
    st.one_of(st.binary(max_size=6), st.just(b"")),
)
def test_a_broken_csv_is_read_or_refused_naming_its_line(
    tmp_path_factory: pytest.TempPathFactory, lines: list[str], tail: bytes
) -> None:
    path = tmp_path_factory.mktemp("csv") / "broken.csv"
    path.write_bytes(
        ("timestamp,value\n2026-09-14T00:00:00,1\n" + "\n".join(lines)).encode() + tail
    )
    try:
        rows = read_series_csv(path)
    except ValueError as exc:
        message = str(exc)
    else:
        detect(rows)
        return
    assert message.startswith(f"{path}:"), message
    line = int(message.removeprefix(f"{path}:").split(":", 1)[0])
    assert 1 <= line <= len(lines) + 3
    assert len(message) < len(str(path)) + 300


def test_pantau_detect_sorts_and_adds_up_rows(tmp_path: Path) -> None:
    """Through the command: a series written backwards with every row split in two gives
    the same onset as the series in order, printed as finite JSON numbers."""
    rows = [(START + i * BUCKET, 10.0) for i in range(400)]
    rows[300] = (rows[300][0], 400.0)
    lines = ["timestamp,value"]
    for at, value in reversed(rows):
        lines += [f"{at.isoformat()},{value / 2}"] * 2
    path = tmp_path / "backwards.csv"
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8-sig")
    pantau = Path(sys.executable).with_name("pantau")
    proc = subprocess.run(
        [
            str(pantau),
            "-c",
            str(tmp_path / "none.toml"),
            "complaints",
            "detect",
            "--csv",
            str(path),
        ],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    printed = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(p["timestamp"], p["value"]) for p in printed] == [(rows[300][0].isoformat(), 400.0)]
    assert printed == [spike.as_json() for spike in detect(rows)]
