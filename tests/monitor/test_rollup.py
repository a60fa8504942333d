"""Rollups against a brute-force count over the raw results: runs and re-probes, latency,
status and downtime from transitions, site-zone days, incremental and idempotent updates."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from engine_support import make_config
from sqlalchemy import delete, select

from checks.base import ErrorClass, ProbeResult
from monitor.alerts import AppriseNotifier
from monitor.clock import ManualClock, SystemClock
from monitor.config import Settings, parse_settings
from monitor.detect import SEVERITY
from monitor.rollup import (
    DAY,
    HOUR,
    LATENCY_BUCKETS_MS,
    backfilling,
    bucket_range,
    histogram_percentile,
    latency_bucket,
    retry_reach,
    rollup,
)
from monitor.rules import percentile, runs_of
from monitor.runtime import Engine
from monitor.store import ProbeResultRow, ResultRollupRow, Store

#: 14.05 WIB on the Thursday wave 9 opens.
NOW = datetime(2026, 9, 17, 7, 5, tzinfo=UTC)
#: The scenario's results begin here (22.00 WIB two days before).
START = datetime(2026, 9, 15, 15, 0, tzinfo=UTC)
#: WIB midnight between 16 and 17 September.
MIDNIGHT = datetime(2026, 9, 16, 17, 0, tzinfo=UTC)
DOWN = {"partial_outage", "major_outage"}

Key = tuple[str, str, datetime]


# -- the scenario ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    check_id: str
    component_id: str
    at: datetime
    ok: bool
    attempt: int = 1
    region: str = "default"
    degraded: bool = False
    latency_ms: float | None = 150.0

    def result(self) -> ProbeResult:
        return ProbeResult(
            check_id=self.check_id,
            component_id=self.component_id,
            started_at=self.at,
            ok=self.ok,
            latency_ms=self.latency_ms,
            error=None if self.ok else ErrorClass.TIMEOUT,
            region=self.region,
            attempt=self.attempt,
            degraded=self.degraded,
        )


#: (component, to status, at): whole seconds, so the brute force can count seconds.
TRANSITIONS = [
    ("signup", "degraded_performance", datetime(2026, 9, 16, 3, 10, 20, tzinfo=UTC)),
    ("signup", "partial_outage", datetime(2026, 9, 16, 3, 50, tzinfo=UTC)),
    ("signup", "operational", datetime(2026, 9, 16, 5, 20, 30, tzinfo=UTC)),
    ("login", "major_outage", MIDNIGHT - timedelta(minutes=30)),
    ("login", "operational", MIDNIGHT + timedelta(minutes=40)),
    ("otp", "under_maintenance", datetime(2026, 9, 17, 1, 0, tzinfo=UTC)),
    ("otp", "operational", datetime(2026, 9, 17, 2, 0, tzinfo=UTC)),
    ("login", "partial_outage", NOW - timedelta(minutes=25)),  # still going on
]


def scenario(settings: Settings, seed: int = 9) -> list[Attempt]:
    """Results every 3 minutes per check (login-api from two regions), some failing, some
    answered by re-probes, some degraded; plus a run across WIB midnight whose failed
    first attempt a re-probe answers after the midnight, and runs on the hour."""
    rng = random.Random(seed)
    attempts: list[Attempt] = []
    for check in settings.checks:
        regions = ["default", "sg"] if check.id == "login-api" else ["default"]
        for region in regions:
            at = START + timedelta(seconds=rng.randrange(180))
            while at < NOW:
                attempts += _run(rng, check.id, check.component, region, at)
                at += timedelta(minutes=3)
    attempts += [
        Attempt("login-page", "login", MIDNIGHT - timedelta(seconds=10), ok=False),
        Attempt("login-page", "login", MIDNIGHT + timedelta(seconds=5), ok=True, attempt=2),
        Attempt("otp-page", "otp", MIDNIGHT, ok=False),  # on the dot: the new day's
        Attempt("otp-page", "otp", MIDNIGHT + timedelta(hours=1), ok=True, latency_ms=5.0),
        Attempt("signup-page", "signup", datetime(2026, 9, 16, 4, tzinfo=UTC), ok=True),
    ]
    return sorted(attempts, key=lambda a: (a.at, a.attempt))


def _run(
    rng: random.Random, check_id: str, component: str, region: str, at: datetime
) -> list[Attempt]:
    latency = round(rng.lognormvariate(5, 0.8), 1)
    if rng.random() < 0.85:
        degraded = rng.random() < 0.1
        return [Attempt(check_id, component, at, True, 1, region, degraded, latency)]
    attempts = [Attempt(check_id, component, at, False, 1, region, latency_ms=None)]
    for number in (2, 3):
        if rng.random() < 0.5:
            break
        ok = rng.random() < 0.5
        moment = at + timedelta(seconds=20 * (number - 1))
        attempts.append(
            Attempt(check_id, component, moment, ok, number, region, latency_ms=latency)
        )
        if ok:
            break
    return attempts


def add(store: Store, attempts: list[Attempt]) -> None:
    with store.tx() as tx:
        for attempt in attempts:
            tx.add_result(attempt.result())


def add_transitions(store: Store, transitions: list[tuple[str, str, datetime]]) -> None:
    with store.tx() as tx:
        for component, status, at in transitions:
            tx.set_component_status(component, status, at=at, cause="test")


def roll(store: Store, settings: Settings, now: datetime, **kwargs: Any) -> int:
    with store.tx() as tx:
        return rollup(tx, settings, now=now, **kwargs)


def stored(store: Store) -> dict[Key, dict[str, Any]]:
    """Every rollup row as a dict of its columns."""
    table = ResultRollupRow.__table__  # type: ignore[attr-defined]
    with store.read() as tx:
        rows = tx.session.connection().execute(select(table)).mappings().all()
    return {(r["component_id"], r["period"], r["start"]): dict(r) for r in rows}


# -- the brute force ---------------------------------------------------------------------------


def hour_of(moment: datetime, zone: ZoneInfo) -> datetime:
    local = moment.astimezone(zone)
    return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)


def day_of(moment: datetime, zone: ZoneInfo) -> datetime:
    local = moment.astimezone(zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def naive_runs(rows: list[ProbeResultRow]) -> list[tuple[str, datetime, bool, bool, float | None]]:
    """``(component, started_at, ok, degraded, latency)`` per run, checked against runs_of."""
    runs = []
    for key in sorted({(r.check_id, r.region) for r in rows}):
        series = sorted(
            (r for r in rows if (r.check_id, r.region) == key),
            key=lambda r: (r.started_at, r.attempt),
        )
        groups: list[list[ProbeResultRow]] = []
        for row in series:
            if row.attempt == 1 or not groups:
                groups.append([])
            groups[-1].append(row)
        runs += [
            (g[0].component_id, g[0].started_at, g[-1].ok, g[-1].degraded, g[-1].latency_ms)
            for g in groups
        ]
    reference = sorted((r.component_id, r.started_at, r.ok, r.latency_ms) for r in runs_of(rows))
    assert sorted((c, at, ok, lat) for c, at, ok, _, lat in runs) == reference
    return runs


def brute_force(store: Store, settings: Settings, now: datetime) -> dict[Key, dict[str, Any]]:
    """Every hour and day row recomputed from all raw results and transitions, second by
    second for the status."""
    zone = settings.site.zone
    with store.read() as tx:
        rows = tx.results(newest_first=False)
        transitions = sorted(tx.transitions(limit=100_000), key=lambda t: (t.at, t.id or 0))
    by_hour: dict[tuple[str, datetime], list[Any]] = {}
    for run in naive_runs(rows):
        by_hour.setdefault((run[0], hour_of(run[1], zone)), []).append(run)
    first = min([r.started_at for r in rows] + [t.at for t in transitions])
    components = sorted({c.id for c in settings.components})
    expected: dict[Key, dict[str, Any]] = {}
    hour = hour_of(first, zone)
    while hour < now:
        for component in components:
            hour_runs = by_hour.get((component, hour), [])
            row = _expected_hour(component, hour, now, hour_runs, transitions)
            if row is not None:
                expected[(component, HOUR, hour)] = row
        hour += timedelta(hours=1)
    for (component, _, start), row in list(expected.items()):
        day = expected.setdefault((component, DAY, day_of(start, zone)), _empty())
        for name in (
            "runs",
            "failures",
            "degraded",
            "latency_count",
            "latency_sum_ms",
            "observed_seconds",
            "downtime_seconds",
        ):
            day[name] += row[name]
        day["histogram"] = day["histogram"] + row["histogram"]
        day["latencies"] = day["latencies"] + row["latencies"]
        day["worst_status"] = _worst(day["worst_status"], row["worst_status"])
    return expected


def _empty() -> dict[str, Any]:
    names = (
        "runs",
        "failures",
        "degraded",
        "latency_count",
        "latency_sum_ms",
        "observed_seconds",
        "downtime_seconds",
    )
    return {
        **dict.fromkeys(names, 0),
        "histogram": Counter(),
        "latencies": [],
        "worst_status": None,
    }


def _worst(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    return max(a, b, key=SEVERITY.__getitem__)


def _bucket(latency: float) -> str:
    for bound in LATENCY_BUCKETS_MS:
        if latency <= bound:
            return "inf" if bound == float("inf") else f"{bound:g}"
    raise AssertionError


def _expected_hour(
    component: str, hour: datetime, now: datetime, runs: list[Any], transitions: list[Any]
) -> dict[str, Any] | None:
    row = _empty()
    for run_component, at, ok, degraded, latency in runs:
        if run_component == component and hour <= at < hour + timedelta(hours=1):
            row["runs"] += 1
            row["failures"] += not ok
            row["degraded"] += ok and degraded
            if ok and latency is not None:
                row["latency_count"] += 1
                row["latency_sum_ms"] += latency
                row["latencies"].append(latency)
                row["histogram"][_bucket(latency)] += 1
    timeline = [(t.at, t.to_status) for t in transitions if t.component_id == component]
    unknown, index, status = 0, 0, None
    second = hour
    while second < min(hour + timedelta(hours=1), now):
        while index < len(timeline) and timeline[index][0] <= second:
            status, index = timeline[index][1], index + 1
        if status is None:
            unknown += 1
        else:
            row["observed_seconds"] += 1
            row["downtime_seconds"] += status in DOWN
            row["worst_status"] = _worst(row["worst_status"], status)
        second += timedelta(seconds=1)
    before = [ok for _, at, ok, _, _ in runs if not timeline or at < timeline[0][0]]
    if before:  # runs before the first transition tell that time's uptime
        row["worst_status"] = _worst(row["worst_status"], "operational")
        row["observed_seconds"] += unknown
        row["downtime_seconds"] += unknown * before.count(False) / len(before)
    if not row["runs"] and row["worst_status"] is None:
        return None
    return row


def assert_matches(actual: dict[Key, dict[str, Any]], expected: dict[Key, dict[str, Any]]) -> None:
    assert sorted(actual) == sorted(expected)
    for key, want in expected.items():
        got = actual[key]
        for name in ("runs", "failures", "degraded", "latency_count", "worst_status"):
            assert got[name] == want[name], (key, name)
        for name in ("latency_sum_ms", "observed_seconds", "downtime_seconds"):
            assert got[name] == pytest.approx(want[name]), (key, name)
        assert Counter(json.loads(got["latency_histogram"])) == want["histogram"], key
        assert got["latency_max_ms"] == (max(want["latencies"]) if want["latencies"] else None)


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def settings() -> Settings:
    return parse_settings(make_config())


@pytest.fixture
def any_store(store_url: str) -> Iterator[Store]:
    store = Store(store_url)
    yield store
    store.close()


# -- correctness -------------------------------------------------------------------------------


def test_rollup_matches_a_brute_force_count_over_the_raw_results(
    any_store: Store, settings: Settings
) -> None:
    add(any_store, scenario(settings))
    add_transitions(any_store, TRANSITIONS)
    assert roll(any_store, settings, NOW) > 0
    assert_matches(stored(any_store), brute_force(any_store, settings, NOW))


def test_rollup_step_by_step_as_results_arrive_matches_the_brute_force(
    store: Store, settings: Settings
) -> None:
    """Backfill up to 15.50 UTC, then every 7 minutes what arrived (re-probes of a run may
    arrive a step after it began; an outage goes on across the WIB midnight), then now."""
    attempts, transitions = scenario(settings), sorted(TRANSITIONS, key=lambda t: t[2])
    moment = MIDNIGHT - timedelta(hours=1, minutes=10)
    steps = [moment + timedelta(minutes=7 * n) for n in range(28)] + [NOW]
    done = 0
    for step in steps:
        arrived = [a for a in attempts if a.at < step]
        add(store, arrived[done:])
        done = len(arrived)
        add_transitions(store, [t for t in transitions if t[2] < step])
        transitions = [t for t in transitions if t[2] >= step]
        roll(store, settings, step)
    assert_matches(stored(store), brute_force(store, settings, NOW))


def test_rollup_is_idempotent(store: Store, settings: Settings) -> None:
    add(store, scenario(settings))
    add_transitions(store, TRANSITIONS)
    roll(store, settings, NOW)
    first = stored(store)
    roll(store, settings, NOW)
    assert stored(store) == first


def test_a_backfill_in_steps_equals_one_backfill(tmp_path: Path, settings: Settings) -> None:
    whole, stepped = (Store(f"sqlite:///{tmp_path}/{name}.db") for name in ("whole", "stepped"))
    for store in (whole, stepped):
        add(store, scenario(settings))
        add_transitions(store, TRANSITIONS)
    roll(whole, settings, NOW)
    calls = 0
    while True:
        calls += 1
        roll(stepped, settings, NOW, max_hours=5)
        with stepped.read() as tx:
            if not backfilling(tx):
                break
    assert calls == 9  # 40 hours and 5 minutes, 5 hours at a time
    assert stored(stepped) == stored(whole)


def test_a_new_result_updates_only_its_hour_and_day(store: Store, settings: Settings) -> None:
    add(store, scenario(settings))
    add_transitions(store, TRANSITIONS)
    roll(store, settings, NOW)
    before = stored(store)
    late = datetime(2026, 9, 16, 3, 20, 7, tzinfo=UTC)  # a region catching up
    add(store, [Attempt("signup-page", "signup", late, ok=True, region="jkt", latency_ms=99.0)])
    later = NOW + timedelta(seconds=30)
    roll(store, settings, later)
    after = stored(store)
    changed = {key for key in after if after[key] != before.get(key)}
    assert {(k[1], k[2]) for k in changed} == {
        (HOUR, datetime(2026, 9, 16, 3, tzinfo=UTC)),  # the late result's hour and WIB day
        (DAY, datetime(2026, 9, 15, 17, tzinfo=UTC)),
        (HOUR, datetime(2026, 9, 17, 7, tzinfo=UTC)),  # the open hour and day, as always
        (DAY, datetime(2026, 9, 16, 17, tzinfo=UTC)),
    }
    key = ("signup", HOUR, datetime(2026, 9, 16, 3, tzinfo=UTC))
    assert after[key]["runs"] == before[key]["runs"] + 1
    assert after[key]["latency_count"] == before[key]["latency_count"] + 1
    assert_matches(after, brute_force(store, settings, later))


def test_old_raw_results_are_never_read_again(store: Store, settings: Settings) -> None:
    """Once rolled up, old results may be deleted (retention): the rollups keep them."""
    add(store, scenario(settings))
    add_transitions(store, TRANSITIONS)
    roll(store, settings, NOW)
    before = stored(store)
    cutoff = NOW - timedelta(hours=2)
    with store.tx() as tx:
        tx.session.execute(delete(ProbeResultRow).where(ProbeResultRow.started_at < cutoff))  # type: ignore[arg-type]
    add(store, [Attempt("home-page", "home", NOW + timedelta(seconds=40), ok=True)])
    roll(store, settings, NOW + timedelta(minutes=1))
    after = stored(store)
    old = [key for key in before if key[1] == HOUR and key[2] < cutoff - timedelta(hours=1)]
    assert old and all(after[key] == before[key] for key in old)


@pytest.mark.parametrize(
    ("zone", "midnight", "hour_minute"),
    [
        ("Asia/Jakarta", datetime(2026, 9, 16, 17, 0, tzinfo=UTC), 0),  # WIB, UTC+7
        ("UTC", datetime(2026, 9, 17, 0, 0, tzinfo=UTC), 0),
        ("Asia/Kolkata", datetime(2026, 9, 16, 18, 30, tzinfo=UTC), 30),  # UTC+5:30
    ],
)
def test_days_and_hours_are_those_of_the_site_zone(
    store: Store, zone: str, midnight: datetime, hour_minute: int
) -> None:
    settings = parse_settings(make_config(site={"timezone": zone}))
    last_second, first_second = midnight - timedelta(seconds=1), midnight
    add(
        store,
        [
            Attempt("home-page", "home", last_second, ok=False),
            Attempt("home-page", "home", first_second, ok=True),
        ],
    )
    roll(store, settings, midnight + timedelta(hours=2))
    rows = stored(store)
    days = sorted(k[2] for k in rows if k[1] == DAY)
    assert days == [midnight - timedelta(days=1), midnight]
    assert rows[("home", DAY, days[0])]["failures"] == 1
    assert rows[("home", DAY, days[1])]["failures"] == 0
    assert {k[2].minute for k in rows if k[1] == HOUR} == {hour_minute}


def test_downtime_is_split_at_hour_and_day_boundaries(store: Store, settings: Settings) -> None:
    add_transitions(
        store,
        [
            ("login", "major_outage", MIDNIGHT - timedelta(minutes=30)),
            ("login", "operational", MIDNIGHT + timedelta(minutes=40)),
        ],
    )
    roll(store, settings, MIDNIGHT + timedelta(hours=2, minutes=15))
    rows = stored(store)

    def figures(period: str, start: datetime) -> tuple[str | None, float, float]:
        row = rows[("login", period, start)]
        return row["worst_status"], row["observed_seconds"], row["downtime_seconds"]

    assert figures(HOUR, MIDNIGHT - timedelta(hours=1)) == ("major_outage", 1800, 1800)
    assert figures(HOUR, MIDNIGHT) == ("major_outage", 3600, 2400)
    assert figures(HOUR, MIDNIGHT + timedelta(hours=1)) == ("operational", 3600, 0)
    assert figures(HOUR, MIDNIGHT + timedelta(hours=2)) == ("operational", 900, 0)  # open
    assert figures(DAY, MIDNIGHT - timedelta(days=1)) == ("major_outage", 1800, 1800)
    assert figures(DAY, MIDNIGHT) == ("major_outage", 8100, 2400)
    assert not any(k[0] != "login" for k in rows)  # no results, no transitions: no rows


def test_an_outage_that_goes_on_keeps_counting_with_no_new_results(
    store: Store, settings: Settings
) -> None:
    add_transitions(store, [("otp", "partial_outage", MIDNIGHT - timedelta(minutes=10))])
    roll(store, settings, MIDNIGHT)
    roll(store, settings, MIDNIGHT + timedelta(hours=3))  # nothing new arrived meanwhile
    rows = stored(store)
    hours = [
        rows[("otp", HOUR, MIDNIGHT + timedelta(hours=n))]["downtime_seconds"] for n in range(3)
    ]
    assert hours == [3600, 3600, 3600]
    assert rows[("otp", DAY, MIDNIGHT)]["downtime_seconds"] == 3 * 3600


def test_a_failed_attempt_answered_by_a_reprobe_is_not_a_failure(
    store: Store, settings: Settings
) -> None:
    """Even when the re-probe falls in the next hour and day, and arrives a rollup later."""
    add(
        store,
        [
            Attempt(
                "login-page", "login", MIDNIGHT - timedelta(seconds=3), ok=False, latency_ms=None
            )
        ],
    )
    roll(store, settings, MIDNIGHT)
    assert stored(store)[("login", HOUR, MIDNIGHT - timedelta(hours=1))]["failures"] == 1
    add(
        store,
        [
            Attempt(
                "login-page",
                "login",
                MIDNIGHT + timedelta(seconds=2),
                ok=True,
                attempt=2,
                latency_ms=321.0,
            )
        ],
    )
    roll(store, settings, MIDNIGHT + timedelta(minutes=1))
    rows = stored(store)
    before_midnight = rows[("login", HOUR, MIDNIGHT - timedelta(hours=1))]
    assert (before_midnight["runs"], before_midnight["failures"]) == (1, 0)
    assert before_midnight["latency_max_ms"] == 321.0
    assert rows[("login", DAY, MIDNIGHT - timedelta(days=1))]["failures"] == 0
    assert ("login", HOUR, MIDNIGHT) not in rows  # the run belongs to its first attempt


def test_a_new_zone_rebuilds_the_rollups(store: Store) -> None:
    add(
        store,
        [
            Attempt("home-page", "home", MIDNIGHT + timedelta(minutes=m), ok=True)
            for m in range(0, 120, 10)
        ],
    )
    roll(store, parse_settings(make_config()), MIDNIGHT + timedelta(hours=3))
    utc_settings = parse_settings(make_config(site={"timezone": "UTC"}))
    roll(store, utc_settings, MIDNIGHT + timedelta(hours=3))
    days = [k[2] for k in stored(store) if k[1] == DAY]
    assert days == [datetime(2026, 9, 16, tzinfo=UTC)]


def test_retry_reach_covers_the_slowest_check(settings: Settings) -> None:
    config = make_config()
    config["checks"][0].update(retries=5, retry_delay="60s", timeout="30s")
    assert retry_reach(parse_settings(config)) == 5 * timedelta(seconds=60 + 4 * 30)
    assert retry_reach(settings) == timedelta(minutes=10)


# -- latency histograms -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("q", [50, 95, 99])
def test_a_percentile_from_the_histogram_is_in_the_bucket_of_the_exact_one(
    seed: int, q: int
) -> None:
    rng = random.Random(seed)
    values = [round(rng.lognormvariate(5, 1.2), 1) for _ in range(rng.randrange(1, 400))]
    histogram = Counter(latency_bucket(v) for v in values)
    estimate = histogram_percentile(histogram, q, max_ms=max(values))
    exact = percentile(values, q)
    assert estimate is not None and exact is not None
    lower, upper = bucket_range(latency_bucket(exact))
    assert lower < estimate <= upper
    assert estimate <= max(values)


def test_an_empty_histogram_has_no_percentile() -> None:
    assert histogram_percentile({}, 95) is None


@pytest.mark.parametrize(
    ("latency", "key"),
    [(0.0, "5"), (5.0, "5"), (5.1, "10"), (59_999.0, "60000"), (61_000.0, "inf")],
)
def test_latency_buckets_hold_times_up_to_their_bound(latency: float, key: str) -> None:
    assert latency_bucket(latency) == key


# -- the service --------------------------------------------------------------------------------


async def test_the_engine_step_backfills_a_day_per_transaction(
    store: Store, settings: Settings
) -> None:
    add(store, scenario(settings))
    async with httpx.AsyncClient() as client:
        engine = Engine(
            settings,
            store,
            clock=ManualClock(NOW),
            client=client,
            notifier=AppriseNotifier(timeout=1),
        )
        assert engine.rollup() > 0
    with store.read() as tx:
        assert not backfilling(tx)
    assert_matches(stored(store), brute_force(store, settings, NOW))


async def test_the_service_rolls_up_before_its_last_publish(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    published: list[int] = []

    def publisher(s: Store, _settings: Settings, now: datetime) -> Path:
        with s.read() as tx:
            day = tx.rollups(DAY, since=now - timedelta(days=2), until=now + timedelta(days=1))
            published.append(sum(row.runs for row in day))
        return tmp_path

    async with httpx.AsyncClient() as client:
        engine = Engine(
            settings,
            store,
            clock=SystemClock(),
            client=client,
            notifier=AppriseNotifier(timeout=1),
            publisher=publisher,
        )
        await engine.run(duration=1.5)
    with store.read() as tx:
        runs = tx.count_results()
    assert runs and published[-1] == runs  # retries are 0 in this config: a run per result
