"""Alert rules, grouping, reminders, silences and maintenance, replayed on a manual clock.

Every sequence is fed through detection, incidents and the rules as the engine does
(``engine_support.Replay``); messages are counted from the delivery rows they create.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from engine_support import Replay, make_config

from checks.base import ErrorClass
from monitor.alerts import evaluate_alerts
from monitor.clock import ManualClock
from monitor.config import Settings, parse_settings
from monitor.rules import evaluate as evaluate_rules
from monitor.store import SilenceRow, Store

ALL_LOGIN = {"login-page", "login-api"}


def _settings(**alerts: Any) -> Settings:
    config = make_config(notify=["json://127.0.0.1:9/a", "json://127.0.0.1:9/b"])
    config["alerts"].update(alerts)
    events = config.pop("events", None)
    if events:
        config["events"] = events
    return parse_settings(config, env={})


def _run(replay: Replay, clock: ManualClock, rounds: int, failing: set[str], **kw: Any) -> None:
    """``rounds`` probe rounds one second apart, evaluating after each."""
    for _ in range(rounds):
        replay.round(failing=failing, **kw)
        replay.evaluate()
        clock.advance(1)


def test_flapping_never_alerts(store: Store, clock: ManualClock) -> None:
    replay = Replay(store, _settings(group_wait="2s"), clock)
    for i in range(40):
        _run(replay, clock, 1, ALL_LOGIN if i % 2 else set())
    assert replay.messages() == []


def test_a_sustained_failure_alerts_once_and_recovery_notifies_once(
    store: Store, clock: ManualClock
) -> None:
    replay = Replay(store, _settings(group_wait="3s", repeat_interval="1h"), clock)
    _run(replay, clock, 2, set())
    _run(replay, clock, 60, ALL_LOGIN)
    assert replay.kinds() == ["firing"]
    _run(replay, clock, 5, set())
    assert replay.kinds() == ["firing", "resolved"]
    _run(replay, clock, 30, set())
    assert replay.kinds() == ["firing", "resolved"]
    # one row per target and message
    assert len(replay.deliveries()) == 4


def test_the_first_message_waits_for_group_wait(store: Store, clock: ManualClock) -> None:
    replay = Replay(store, _settings(group_wait="10s"), clock)
    _run(replay, clock, 9, ALL_LOGIN)
    assert replay.kinds() == []
    _run(replay, clock, 3, ALL_LOGIN)
    assert replay.kinds() == ["firing"]


def test_an_outage_shorter_than_group_wait_sends_nothing(store: Store, clock: ManualClock) -> None:
    replay = Replay(store, _settings(group_wait="30s"), clock)
    _run(replay, clock, 5, ALL_LOGIN)
    _run(replay, clock, 40, set())
    assert replay.kinds() == []


def test_a_wave_breaking_four_components_sends_one_message(
    store: Store, clock: ManualClock
) -> None:
    replay = Replay(store, _settings(group_wait="5s"), clock)
    everything = {"home-page", "login-page", "login-api", "signup-page", "otp-page"}
    replay.round(failing={"home-page"})
    replay.evaluate()
    clock.advance(1)
    _run(replay, clock, 10, everything)
    deliveries = replay.deliveries()
    assert replay.kinds() == ["firing"]
    title = deliveries[0].title
    for name in ("Home", "Login", "Signup", "OTP"):
        assert name in title
    assert "(incident #1)" in title
    with store.read() as tx:
        assert len(tx.incidents()) == 1


def test_a_component_failing_later_is_told_in_one_update_per_group_interval(
    store: Store, clock: ManualClock
) -> None:
    replay = Replay(store, _settings(group_wait="2s", group_interval="30s"), clock)
    _run(replay, clock, 5, ALL_LOGIN)
    assert replay.kinds() == ["firing"]
    _run(replay, clock, 10, ALL_LOGIN | {"signup-page"})
    assert replay.kinds() == ["firing"]  # within group_interval of the first message
    _run(replay, clock, 25, ALL_LOGIN | {"signup-page", "otp-page"})
    assert replay.kinds() == ["firing", "update"]  # signup and otp told together
    update = replay.deliveries()[-1]
    assert "Signup" in update.title and "OTP" in update.title
    _run(replay, clock, 40, ALL_LOGIN | {"signup-page", "otp-page"})
    assert replay.kinds() == ["firing", "update"]


def test_reminders_every_repeat_interval_while_firing(store: Store, clock: ManualClock) -> None:
    replay = Replay(store, _settings(group_wait="1s", repeat_interval="20s"), clock)
    _run(replay, clock, 65, ALL_LOGIN)
    assert replay.kinds() == ["firing", "reminder", "reminder", "reminder"]
    assert replay.deliveries()[-1].title.startswith("[Pantau] STILL FIRING: Login")
    _run(replay, clock, 3, set())
    assert replay.kinds()[-1] == "resolved"


def test_error_rate_rule_with_for(store: Store, clock: ManualClock) -> None:
    rule = {
        "id": "login-errors",
        "kind": "error_rate",
        "check": "login-page",
        "above": "20%",
        "window": "20s",
        "for": "10s",
    }
    replay = Replay(store, _settings(rules=[rule], group_wait="1s"), clock)
    _run(replay, clock, 20, set())
    # one failing run in four: 25% > 20%, but never two in a row, so no incident either
    for i in range(30):
        _run(replay, clock, 1, {"login-page"} if i % 4 == 0 else set())
    kinds = replay.kinds()
    assert kinds == ["firing"]
    body = replay.deliveries()[0].body
    assert (
        "Login (login, check login-page) firing: error rate 2" in body and "> 20% over 20 s" in body
    )
    with store.read() as tx:
        assert tx.incidents() == []
        (alert,) = tx.live_alerts()
    assert alert.rule_id == "login-errors" and alert.subject == "login-page"
    assert json.loads(alert.evidence)["failing_checks"] == {"login-page": 5}


def test_error_rate_below_min_probes_does_not_fire(store: Store, clock: ManualClock) -> None:
    rule = {"id": "r", "kind": "error_rate", "above": 0.2, "window": "1m", "min_probes": 10}
    replay = Replay(store, _settings(rules=[rule], group_wait="1s"), clock)
    _run(replay, clock, 3, ALL_LOGIN)
    with store.read() as tx:
        assert tx.live_alerts() == []


def test_a_retried_dropped_response_is_not_an_error(store: Store, clock: ManualClock) -> None:
    rule = {"id": "r", "kind": "error_rate", "above": "10%", "window": "1m", "min_probes": 1}
    replay = Replay(store, _settings(rules=[rule], group_wait="1s"), clock)
    for _ in range(10):
        replay.probe("login-page", ok=False, error=ErrorClass.PROTOCOL)
        replay.probe("login-page", ok=True, attempt=2)
        replay.evaluate()
        clock.advance(3)
    with store.read() as tx:
        assert tx.live_alerts() == []


def test_latency_rule_fires_on_the_percentile(store: Store, clock: ManualClock) -> None:
    rule = {
        "id": "slow-login",
        "kind": "latency",
        "check": "login-page",
        "above": "2s",
        "window": "30s",
        "percentile": 95,
    }
    replay = Replay(store, _settings(rules=[rule], group_wait="1s"), clock)
    for i in range(30):
        replay.probe("login-page", ok=True, latency_ms=2500 if i == 25 else 300)
        replay.evaluate()
        clock.advance(1)
    assert replay.kinds() == []  # p95 of 20 runs with 2 slow is fast
    for _ in range(10):
        replay.probe("login-page", ok=True, latency_ms=4000)
        replay.evaluate()
        clock.advance(1)
    assert replay.kinds() == ["firing"]
    body = replay.deliveries()[0].body
    assert "Login (login, check login-page) firing: p95 latency" in body
    assert "> 2 s over 30 s" in body


def test_consecutive_rule_for_one_check_needs_its_count(store: Store, clock: ManualClock) -> None:
    rule = {"id": "api-down", "kind": "consecutive", "check": "login-api", "failures": 4}
    replay = Replay(store, _settings(rules=[rule], group_wait="1s"), clock)
    _run(replay, clock, 3, {"login-api"})
    _run(replay, clock, 1, set())
    _run(replay, clock, 3, {"login-api"})
    assert replay.kinds() == []
    _run(replay, clock, 3, {"login-api"})
    assert replay.kinds() == ["firing"]
    assert "consecutive failures (alerting at 4)" in replay.deliveries()[0].body


def test_consecutive_rule_needs_a_quorum_of_regions(store: Store, clock: ManualClock) -> None:
    replay = Replay(store, _settings(group_wait="1s"), clock)
    for _ in range(5):
        replay.round(failing=ALL_LOGIN, region="jakarta")
        replay.round(region="surabaya")
        replay.round(region="medan")
        replay.evaluate()
        clock.advance(1)
    assert replay.kinds() == []
    for _ in range(5):
        replay.round(failing=ALL_LOGIN, region="jakarta")
        replay.round(failing=ALL_LOGIN, region="surabaya")
        replay.round(region="medan")
        replay.evaluate()
        clock.advance(1)
    assert replay.kinds() == ["firing"]
    assert "regions failing: jakarta, surabaya (of 3 reporting)" in replay.deliveries()[0].body


def _silence(store: Store, clock: ManualClock, component: str, minutes: float) -> int:
    with store.tx() as tx:
        row = tx.add_silence(
            SilenceRow(
                component_id=component,
                starts_at=clock.now(),
                ends_at=clock.now() + timedelta(minutes=minutes),
                reason="deploying the login service",
                author="ops",
                created_at=clock.now(),
            )
        )
    assert row.id is not None
    return row.id


def test_a_silence_holds_alerts_back_and_they_are_told_when_it_ends(
    store: Store, clock: ManualClock
) -> None:
    replay = Replay(store, _settings(group_wait="2s"), clock)
    _silence(store, clock, "login", minutes=1)
    _run(replay, clock, 50, ALL_LOGIN)
    assert replay.kinds() == []
    with store.read() as tx:
        (alert,) = tx.live_alerts()
    assert alert.state == "firing"
    assert alert.suppressed_by == "silence #1: deploying the login service"
    _run(replay, clock, 15, ALL_LOGIN)
    assert replay.kinds() == ["firing"]


def test_an_outage_that_ends_inside_a_silence_is_never_told(
    store: Store, clock: ManualClock
) -> None:
    replay = Replay(store, _settings(group_wait="2s"), clock)
    _silence(store, clock, "login", minutes=10)
    _run(replay, clock, 30, ALL_LOGIN)
    _run(replay, clock, 30, set())
    assert replay.kinds() == []


def test_a_silence_of_one_component_does_not_hide_another(store: Store, clock: ManualClock) -> None:
    replay = Replay(store, _settings(group_wait="2s"), clock)
    _silence(store, clock, "login", minutes=10)
    _run(replay, clock, 10, ALL_LOGIN | {"signup-page"})
    (firing,) = [d for d in replay.deliveries() if d.target_index == 0]
    assert "Signup" in firing.title and "Login" not in firing.title


def test_a_maintenance_event_holds_alerts_back_during_its_window(
    store: Store, clock: ManualClock
) -> None:
    start = clock.now() + timedelta(seconds=5)
    config = make_config(notify=["json://127.0.0.1:9/a"])
    config["alerts"].update(group_wait="2s")
    config["events"] = [
        {
            "id": "db-upgrade",
            "kind": "maintenance",
            "name": "Pemeliharaan basis data",
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=1)).isoformat(),
            "components": ["login"],
        }
    ]
    replay = Replay(store, parse_settings(config, env={}), clock)
    _run(replay, clock, 5, set())
    _run(replay, clock, 50, ALL_LOGIN)
    assert replay.kinds() == []
    with store.read() as tx:
        (alert,) = tx.live_alerts()
        assert tx.incidents() == []  # planned work opens no incident
    assert alert.suppressed_by == "maintenance db-upgrade"
    _run(replay, clock, 15, ALL_LOGIN)  # the window is over and login still fails
    assert replay.kinds() == ["firing"]


def test_evaluating_again_after_a_restart_sends_nothing_twice(
    store_url: str, clock: ManualClock
) -> None:
    """On SQLite and PostgreSQL: a new process on the same database picks up where the
    last one stopped."""
    url = store_url
    settings = _settings(group_wait="2s", repeat_interval="1h")
    first = Store(url)
    replay = Replay(first, settings, clock)
    _run(replay, clock, 10, ALL_LOGIN)
    first.close()
    # a new process on the same database: same verdicts, no new message
    second = Store(url)
    again = Replay(second, settings, clock)
    _run(again, clock, 10, ALL_LOGIN)
    assert again.kinds() == ["firing"]
    _run(again, clock, 5, set())
    assert again.kinds() == ["firing", "resolved"]
    with second.read() as tx:
        events = [u.event for u in tx.updates(1)]
    assert events.count("opened") == 1 and events.count("resolved") == 1
    second.close()


def test_an_alert_whose_rule_was_removed_resolves(store: Store, clock: ManualClock) -> None:
    rule = {"id": "gone-soon", "kind": "consecutive", "component": "login"}
    replay = Replay(store, _settings(rules=[rule], group_wait="1s"), clock)
    _run(replay, clock, 5, ALL_LOGIN)
    assert replay.kinds() == ["firing"]
    other = _settings(rules=[{"id": "other", "kind": "consecutive", "component": "otp"}])
    now = clock.now()
    with store.tx() as tx:
        evaluate_alerts(tx, other, evaluate_rules(tx, other, now=now), now=now)
    assert replay.kinds() == ["firing", "resolved"]


def test_timeline_entries_carry_error_rate_classes_and_regions(
    store: Store, clock: ManualClock
) -> None:
    replay = Replay(store, _settings(), clock)
    _run(replay, clock, 3, set())
    _run(replay, clock, 3, ALL_LOGIN)
    with store.read() as tx:
        opened = tx.updates(1)[0]
    details = json.loads(opened.details or "{}")
    assert details["component"] == "login"
    assert details["error_classes"] == {"http_status": 3}  # when login-page went down
    assert details["regions_failing"] == ["default"]
    assert 0 < details["error_rate"] < 1


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"id": "a", "kind": "error_rate"}, "needs 'above'"),
        ({"id": "a", "kind": "error_rate", "above": 1.5}, "between 0 and 1"),
        ({"id": "a", "kind": "consecutive", "above": 2}, "use 'failures'"),
        ({"id": "a", "kind": "latency", "above": "2s", "for": "-1s"}, "invalid duration"),
        ({"id": "a", "kind": "consecutive", "component": "nope"}, "unknown component"),
        (
            {"id": "a", "kind": "consecutive", "check": "login-page", "component": "login"},
            "not both",
        ),
        ({"id": "a", "kind": "flood"}, "Input should be"),
    ],
)
def test_bad_rules_are_refused_with_their_key_path(rule: dict[str, Any], message: str) -> None:
    from monitor.config import ConfigError

    config = make_config()
    config["alerts"]["rules"] = [rule]
    with pytest.raises(ConfigError) as caught:
        parse_settings(config, env={})
    text = str(caught.value)
    assert "alerts.rules[0](a)" in text
    assert message in text


def test_failing_two_runs_in_three_is_one_alert_not_a_storm(
    store: Store, clock: ManualClock
) -> None:
    replay = Replay(store, _settings(group_wait="2s", repeat_interval="1h"), clock)
    for i in range(60):
        _run(replay, clock, 1, set() if i % 3 == 2 else ALL_LOGIN)
    assert replay.kinds() == ["firing"]
    _run(replay, clock, 3, set())
    assert replay.kinds() == ["firing", "resolved"]


def test_a_blind_spot_complaint_spike_alerts_engineers_once(
    store: Store, clock: ManualClock
) -> None:
    from monitor.store import ComplaintSpikeRow

    config = make_config(notify=["json://127.0.0.1:9/a"])
    config["alerts"].update(group_wait="2s")
    config["social"] = {"sources": ["file"], "file": "posts.jsonl"}
    settings = parse_settings(config, env={})
    assert [r.id for r in settings.alert_rules()] == ["check-failing", "public-reports"]
    replay = Replay(store, settings, clock)
    _run(replay, clock, 3, set())
    with store.tx() as tx:
        tx.add_spike(
            ComplaintSpikeRow(
                at=clock.now(),
                value=48,
                expected=6.2,
                score=7.5,
                topics="login,otp",
                label="blind_spot",
            )
        )
    _run(replay, clock, 5, set())
    assert replay.kinds() == ["firing"]
    message = replay.deliveries()[0]
    assert message.title == "[Pantau] FIRING: Login"
    assert "people report trouble the probes do not see: 48 complaints in 5 min" in message.body
    assert "topics: login, otp" in message.body
    clock.advance(31 * 60)
    _run(replay, clock, 2, set())
    assert replay.kinds() == ["firing", "resolved"]


def test_an_outage_seen_late_by_the_evaluation_still_alerts(
    store: Store, clock: ManualClock
) -> None:
    """No evaluation ran during most of a 30 s outage (the coordinator was restarting):
    the alert's group_wait counts from the first failure, not from the late evaluation,
    so the outage is told even though it ends soon after."""
    replay = Replay(store, _settings(group_wait="10s"), clock)
    for _ in range(30):
        replay.probe("login-page", ok=False)
        clock.advance(1)
    replay.evaluate()
    for _ in range(2):
        replay.probe("login-page", ok=True)
        clock.advance(1)
    for _ in range(3):
        replay.evaluate()
        clock.advance(5)
    assert replay.kinds() == ["firing", "resolved"]


def test_two_outages_with_no_evaluation_between_are_two_alerts(
    store: Store, clock: ManualClock
) -> None:
    """Login recovers and fails again while no evaluation runs (the coordinator was
    restarting): the first alert is resolved and the second outage gets its own."""
    replay = Replay(store, _settings(group_wait="1s"), clock)
    for _ in range(4):
        replay.probe("login-page", ok=False)
        replay.evaluate()
        clock.advance(1)
    assert replay.kinds() == ["firing"]
    for ok in (True, True, False, False):  # recovered, then down again: no evaluation
        replay.probe("login-page", ok=ok)
        clock.advance(1)
    for _ in range(3):
        replay.evaluate()
        clock.advance(1)
    assert replay.kinds() == ["firing", "resolved", "firing"]
    incidents = [d.incident_id for d in replay.deliveries() if d.target_index == 0]
    assert incidents == [1, 1, 2]
