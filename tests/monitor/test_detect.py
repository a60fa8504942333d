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
    assert "home-page: http_status" in change.evidence
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
