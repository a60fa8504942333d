"""Detection thresholds, stepped with an injected clock."""

from __future__ import annotations

import pytest
from engine_support import ResultFactory, make_config

from checks.base import ErrorClass
from monitor.clock import ManualClock
from monitor.config import Settings, parse_settings
from monitor.detect import MAJOR_OUTAGE, OPERATIONAL, PARTIAL_OUTAGE, ComponentChange, record_result
from monitor.store import Store


def _feed(
    store: Store,
    settings: Settings,
    clock: ManualClock,
    result: ResultFactory,
    check: str,
    oks: list[bool],
) -> list[ComponentChange | None]:
    changes = []
    for ok in oks:
        with store.tx() as tx:
            changes.append(record_result(tx, settings, result(check, ok=ok)))
        clock.advance(1)
    return changes


def _status(store: Store, component: str) -> str:
    with store.read() as tx:
        row = tx.component_states().get(component)
    return row.status if row else OPERATIONAL


def test_one_failure_is_not_an_outage(
    store: Store, settings: Settings, clock: ManualClock, result: ResultFactory
) -> None:
    changes = _feed(store, settings, clock, result, "home-page", [True, False, True, False])
    assert [c for c in changes if c] == []
    assert _status(store, "home") == OPERATIONAL


def test_down_exactly_at_the_second_consecutive_failure(
    store: Store, settings: Settings, clock: ManualClock, result: ResultFactory
) -> None:
    changes = _feed(store, settings, clock, result, "home-page", [True, False, False])
    assert changes[:2] == [None, None]
    change = changes[2]
    assert change is not None
    assert (change.from_status, change.to_status) == (OPERATIONAL, MAJOR_OUTAGE)
    assert "home-page@default down: http_status" in change.evidence
    with store.read() as tx:
        transitions = tx.transitions(component_id="home")
    assert [(t.from_status, t.to_status) for t in transitions] == [(OPERATIONAL, MAJOR_OUTAGE)]
    assert transitions[0].at == change.result.started_at


def test_recovers_exactly_at_the_second_consecutive_pass(
    store: Store, settings: Settings, clock: ManualClock, result: ResultFactory
) -> None:
    _feed(store, settings, clock, result, "home-page", [False, False])
    changes = _feed(store, settings, clock, result, "home-page", [True, False, True, True])
    assert changes[:3] == [None, None, None]
    assert changes[3] is not None and changes[3].to_status == OPERATIONAL
    assert _status(store, "home") == OPERATIONAL


def test_one_of_two_checks_down_is_a_partial_outage(
    store: Store, settings: Settings, clock: ManualClock, result: ResultFactory
) -> None:
    _feed(store, settings, clock, result, "login-api", [True])
    changes = _feed(store, settings, clock, result, "login-page", [False, False])
    assert changes[1] is not None and changes[1].to_status == PARTIAL_OUTAGE
    changes = _feed(store, settings, clock, result, "login-api", [False, False])
    assert changes[1] is not None and changes[1].to_status == MAJOR_OUTAGE


@pytest.mark.parametrize(("down", "up"), [(1, 1), (3, 2), (5, 3)])
def test_thresholds_are_configurable(
    tmp_path: object, clock: ManualClock, result: ResultFactory, down: int, up: int, store: Store
) -> None:
    settings = parse_settings(
        make_config(detection={"failures_to_down": down, "passes_to_recover": up})
    )
    changes = _feed(store, settings, clock, result, "otp-page", [False] * down)
    assert [c is not None for c in changes] == [False] * (down - 1) + [True]
    changes = _feed(store, settings, clock, result, "otp-page", [True] * up)
    assert [c is not None for c in changes] == [False] * (up - 1) + [True]


def test_every_result_is_stored_with_its_error_class(
    store: Store, settings: Settings, clock: ManualClock, result: ResultFactory
) -> None:
    with store.tx() as tx:
        record_result(tx, settings, result("signup-page", ok=False, error=ErrorClass.TIMEOUT))
    with store.read() as tx:
        rows = tx.results(check_id="signup-page")
    assert [(r.ok, r.error) for r in rows] == [(False, "timeout")]


def _degraded(result: ResultFactory, check: str) -> object:
    import dataclasses

    return dataclasses.replace(
        result(check, ok=True),
        degraded=True,
        error=ErrorClass.TOO_SLOW,
        detail="took 4000 ms, limit 2000 ms",
    )


def test_degraded_is_not_down(
    store: Store, settings: Settings, clock: ManualClock, result: ResultFactory
) -> None:
    _feed(store, settings, clock, result, "home-page", [True])
    changes = []
    for _ in range(2):
        with store.tx() as tx:
            changes.append(record_result(tx, settings, _degraded(result, "home-page")))  # type: ignore[arg-type]
        clock.advance(1)
    assert changes[0] is None  # one slow response does not flip the page
    assert changes[1] is not None
    assert changes[1].to_status == "degraded_performance"
    assert not changes[1].is_failure
    recovered = _feed(store, settings, clock, result, "home-page", [True, True])
    assert recovered[1] is not None
    assert recovered[1].to_status == OPERATIONAL


def test_a_first_degraded_result_shows_at_once(
    store: Store, settings: Settings, result: ResultFactory
) -> None:
    with store.tx() as tx:
        change = record_result(tx, settings, _degraded(result, "otp-page"))  # type: ignore[arg-type]
    assert change is not None
    assert change.to_status == "degraded_performance"


def _in(result: ResultFactory, check: str, region: str, *, ok: bool) -> object:
    import dataclasses

    return dataclasses.replace(result(check, ok=ok), region=region)


def test_two_regions_must_agree_before_a_check_fails(
    store: Store, settings: Settings, clock: ManualClock, result: ResultFactory
) -> None:
    def feed(region: str, ok: bool) -> object:
        with store.tx() as tx:
            return record_result(tx, settings, _in(result, "otp-page", region, ok=ok))  # type: ignore[arg-type]

    feed("jakarta", True)
    feed("medan", True)
    clock.advance(0.5)
    # Jakarta alone sees failures: one of two regions is not a majority.
    assert [feed("jakarta", False), feed("jakarta", False)] == [None, None]
    assert _status(store, "otp") == OPERATIONAL
    # Medan sees them too: two of two.
    assert feed("medan", False) is None
    change = feed("medan", False)
    assert change is not None
    assert change.to_status == MAJOR_OUTAGE
    assert "in 2 region(s) jakarta, medan" in change.evidence  # type: ignore[attr-defined]


def test_a_region_that_stopped_reporting_leaves_the_vote(
    store: Store, settings: Settings, clock: ManualClock, result: ResultFactory
) -> None:
    def feed(region: str, ok: bool) -> object:
        with store.tx() as tx:
            return record_result(tx, settings, _in(result, "otp-page", region, ok=ok))  # type: ignore[arg-type]

    feed("medan", True)
    clock.advance(5)  # medan's last result is now older than two intervals (2 s)
    feed("jakarta", False)
    change = feed("jakarta", False)
    assert change is not None
    assert change.to_status == MAJOR_OUTAGE


def test_a_configured_quorum_of_one_region_is_enough(
    store: Store, clock: ManualClock, result: ResultFactory
) -> None:
    settings = parse_settings(make_config(detection={"quorum": 1}))
    for region in ("jakarta", "medan", "surabaya"):
        with store.tx() as tx:
            record_result(tx, settings, _in(result, "otp-page", region, ok=True))  # type: ignore[arg-type]
    changes = []
    for _ in range(2):
        with store.tx() as tx:
            changes.append(
                record_result(tx, settings, _in(result, "otp-page", "surabaya", ok=False))
            )  # type: ignore[arg-type]
    assert changes[1] is not None
    assert changes[1].to_status == MAJOR_OUTAGE
