"""Retention: raw results older than ``[storage] raw_days`` are deleted once rolled up;
the rollups (and so the page's 90-day bars) keep the old days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from engine_support import make_config

from checks.base import ErrorClass, ProbeResult
from monitor.config import Settings, parse_settings
from monitor.publish import load_snapshot
from monitor.rollup import catch_up, prune
from monitor.store import Store

NOW = datetime(2026, 9, 17, 7, 0, tzinfo=UTC)


@pytest.fixture
def settings() -> Settings:
    return parse_settings({**make_config(), "storage": {"raw_days": 14}}, env={})


def _fill(store: Store, *, days: int, every: timedelta = timedelta(hours=1)) -> int:
    """Results of one check over the last ``days`` days; every tenth one failing."""
    count = 0
    moment = NOW - timedelta(days=days)
    with store.tx() as tx:
        while moment < NOW:
            failing = count % 10 == 0
            tx.add_result(
                ProbeResult(
                    check_id="home-page",
                    component_id="home",
                    started_at=moment,
                    ok=not failing,
                    latency_ms=100.0,
                    error=ErrorClass.TIMEOUT if failing else None,
                )
            )
            moment += every
            count += 1
    return count


def _oldest(store: Store) -> datetime | None:
    with store.read() as tx:
        return tx.first_result_at()


def test_old_raw_results_go_once_rolled_up_and_old_days_stay_on_the_page(
    store: Store, settings: Settings
) -> None:
    total = _fill(store, days=20)
    assert prune(store, settings, now=NOW) == 0  # nothing is rolled up yet: nothing goes
    catch_up(store, settings, now=lambda: NOW)
    oldest = _oldest(store)
    assert oldest is not None and oldest >= NOW - timedelta(days=14)
    with store.read() as tx:
        kept = tx.count_results()
    assert 13 * 24 <= kept <= 14 * 24 < total
    snapshot = load_snapshot(store, settings, now=NOW)
    home = snapshot.components[0]
    old_days = [d for d in home.days if d.day < (NOW - timedelta(days=15)).date()]
    known = [d for d in old_days if d.status != "no_data"]
    assert len(known) >= 4  # the days before the raw horizon are still shown, from rollups
    assert all(d.uptime is not None for d in known)


def test_a_late_result_is_kept_until_rolled_up(store: Store, settings: Settings) -> None:
    _fill(store, days=20)
    catch_up(store, settings, now=lambda: NOW)
    with store.tx() as tx:  # arrives after the rollup, stamped long ago
        tx.add_result(
            ProbeResult(
                check_id="home-page",
                component_id="home",
                started_at=NOW - timedelta(days=16),
                ok=True,
                latency_ms=90.0,
            )
        )
    assert prune(store, settings, now=NOW) == 0
    catch_up(store, settings, now=lambda: NOW + timedelta(minutes=1))
    oldest = _oldest(store)
    assert oldest is not None and oldest >= NOW - timedelta(days=14)


def test_raw_days_is_validated(tmp_path: Path) -> None:
    from monitor.config import ConfigError

    with pytest.raises(ConfigError, match=r"storage\.raw_days"):
        parse_settings({"storage": {"raw_days": 0}}, env={}, base_dir=tmp_path)
