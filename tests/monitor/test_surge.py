"""Planned surges: checks of the affected components probe faster while a wave opens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from engine_support import make_config

from monitor.alerts import AppriseNotifier
from monitor.clock import SystemClock
from monitor.config import ConfigError, parse_settings
from monitor.demo.site import SimulatedSite
from monitor.runtime import Engine, effective_interval, make_client
from monitor.store import Store

WAVE = {
    "id": "wave-9",
    "kind": "surge",
    "name": {"id": "Pembukaan gelombang 9", "en": "Wave 9 opens"},
    "start": datetime(2026, 9, 17, 14, 0),  # no offset: Asia/Jakarta
    "end": datetime(2026, 9, 17, 18, 0),
    "components": ["login", "signup"],
}


def test_surge_times_without_offset_are_in_the_site_zone() -> None:
    settings = parse_settings(make_config(events=[WAVE]))
    (event,) = settings.events
    assert event.start == datetime(2026, 9, 17, 7, 0, tzinfo=UTC)
    assert event.end - event.start == timedelta(hours=4)


@pytest.mark.parametrize(
    ("at", "check", "expected"),
    [
        (datetime(2026, 9, 17, 6, 59, 59, tzinfo=UTC), "login-page", 30),  # before
        (datetime(2026, 9, 17, 7, 0, tzinfo=UTC), "login-page", 10),  # starts: a third
        (datetime(2026, 9, 17, 7, 0, tzinfo=UTC), "signup-page", 5),  # its own surge_interval
        (datetime(2026, 9, 17, 7, 0, tzinfo=UTC), "home-page", 30),  # not covered
        (datetime(2026, 9, 17, 11, 0, tzinfo=UTC), "login-page", 30),  # ended
    ],
)
def test_checks_probe_faster_during_a_surge(at: datetime, check: str, expected: float) -> None:
    config = make_config(events=[WAVE])
    for item in config["checks"]:
        item["interval"] = "30s"
        if item["id"] == "signup-page":
            item["surge_interval"] = "5s"
    settings = parse_settings(config)
    check_settings = next(c for c in settings.checks if c.id == check)
    assert effective_interval(check_settings, settings.events, at) == timedelta(seconds=expected)


def test_bad_events_are_refused_with_their_key_path() -> None:
    bad = {**WAVE, "end": WAVE["start"], "components": ["login", "nope"]}
    with pytest.raises(ConfigError) as info:
        parse_settings(make_config(events=[bad]))
    errors = dict(info.value.errors)
    assert "end must be after start" in errors["events[0](wave-9)"]
    assert "unknown component 'nope'" in errors["events[0](wave-9).components"]


async def test_the_engine_speeds_up_when_a_surge_starts(tmp_path: Path) -> None:
    site = SimulatedSite(wave_opens=3600, recovers=7200).start()  # healthy throughout
    now = datetime.now(UTC)
    surge = {**WAVE, "start": now + timedelta(seconds=1.5), "end": now + timedelta(hours=1)}
    config = make_config(base_url=site.base_url, events=[surge])
    config["checks"] = [c for c in config["checks"] if c["id"] in ("home-page", "login-page")]
    for item in config["checks"]:
        item.update(interval="10s", surge_interval="500ms")
    settings = parse_settings(config)
    store = Store(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        async with make_client(settings) as client:
            engine = Engine(
                settings, store, clock=SystemClock(), client=client, notifier=AppriseNotifier()
            )
            await engine.run(duration=4)
        with store.read() as tx:
            login = len(tx.results(check_id="login-page"))
            home = len(tx.results(check_id="home-page"))
    finally:
        store.close()
        site.stop()
    assert home == 1  # outside the surge: once per 10 s (first run within the start spread)
    assert login >= 4  # inside it: every 500 ms once the wave opened
