"""Contract tests of monitor/store.py, run on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from checks.base import ErrorClass, ProbeResult
from monitor.store import (
    AlertDeliveryRow,
    AlertGroupRow,
    IncidentRow,
    IncidentUpdateRow,
    ProbeResultRow,
    Store,
    StoreError,
)

T0 = datetime(2026, 9, 17, 7, 0, tzinfo=UTC)
WIB = timezone(timedelta(hours=7))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    store = Store(store_url)
    yield store
    store.close()


def probe(
    at: datetime, *, check_id: str = "login", component_id: str = "auth", ok: bool = True
) -> ProbeResult:
    return ProbeResult(
        check_id=check_id,
        component_id=component_id,
        started_at=at,
        ok=ok,
        latency_ms=120.5,
        error=None if ok else ErrorClass.HTTP_STATUS,
        detail="" if ok else "HTTP 503",
        status_code=200 if ok else 503,
    )


def incident(
    started_at: datetime, *, status: str = "investigating", title: str = "x"
) -> IncidentRow:
    return IncidentRow(
        title_id=f"Gangguan {title}",
        title_en=f"Outage {title}",
        status=status,
        started_at=started_at,
        updated_at=started_at,
        resolved_at=started_at + timedelta(hours=1) if status == "resolved" else None,
    )


def add_pending_delivery(store: Store, *, next_attempt_at: datetime = T0, target: int = 0) -> int:
    with store.tx() as tx:
        row = tx.add_incident(incident(T0), {"auth": "major_outage"})
        assert row.id is not None
        group = tx.add_group(AlertGroupRow(incident_id=row.id, created_at=T0, send_after=T0))
        assert group.id is not None
        delivery = tx.add_delivery(
            AlertDeliveryRow(
                group_id=group.id,
                incident_id=row.id,
                target_index=target,
                target_label="json://127.0.0.1/hook",
                title="Login down",
                body="Login fails",
                next_attempt_at=next_attempt_at,
                created_at=T0,
            )
        )
        assert delivery.id is not None
        return delivery.id


# -- timestamps -------------------------------------------------------------------------


def test_result_round_trips_as_the_same_instant_in_aware_utc(store_url: str) -> None:
    local = datetime(2026, 9, 17, 14, 0, 1, 123456, tzinfo=WIB)
    writer = Store(store_url)
    with writer.tx() as tx:
        tx.add_result(probe(local, ok=False))
    writer.close()

    reader = Store(store_url)  # a fresh engine: nothing comes from a session's memory
    with reader.read() as tx:
        [row] = tx.results()
        result = row.to_result()
    reader.close()

    assert result.started_at.tzinfo is not None
    assert result.started_at.utcoffset() == timedelta(0)
    assert result.started_at == datetime(2026, 9, 17, 7, 0, 1, 123456, tzinfo=UTC)
    assert result == probe(result.started_at, ok=False)
    assert result.error is ErrorClass.HTTP_STATUS


def test_every_timestamp_column_reads_back_aware_utc(store: Store) -> None:
    with store.tx() as tx:
        tx.set_component_status("auth", "major_outage", at=T0.astimezone(WIB), cause="login")
        row = tx.add_incident(incident(T0.astimezone(WIB), status="resolved"), {})
        incident_id = row.id
    with store.read() as tx:
        state = tx.component_states()["auth"]
        [transition] = tx.transitions()
        assert incident_id is not None
        stored = tx.incident(incident_id)
    assert stored is not None
    for value in (
        state.since,
        state.updated_at,
        transition.at,
        stored.started_at,
        stored.resolved_at,
    ):
        assert value is not None
        assert value.utcoffset() == timedelta(0)
    assert state.since == transition.at == stored.started_at == T0


@pytest.mark.parametrize("naive", [datetime(2026, 9, 17, 7, 0), datetime(2026, 1, 1)])
def test_naive_datetime_is_refused_and_nothing_is_stored(store: Store, naive: datetime) -> None:
    with pytest.raises(StoreError) as caught, store.tx() as tx:
        tx.add_result(probe(naive))
    assert "naive" in str(caught.value.__cause__)
    with store.read() as tx:
        assert tx.count_results() == 0


def test_naive_datetime_is_refused_in_a_query(store: Store) -> None:
    with pytest.raises(StoreError), store.tx() as tx:
        tx.results(since=datetime(2026, 9, 17, 7, 0))


# -- probe results ------------------------------------------------------------------------


@pytest.fixture
def filled(store: Store) -> Store:
    with store.tx() as tx:
        for minute in (3, 0, 2, 1):
            tx.add_result(probe(T0 + timedelta(minutes=minute)))
        tx.add_result(probe(T0 + timedelta(minutes=1), check_id="signup", component_id="signup"))
        tx.add_result(probe(T0 + timedelta(minutes=5), check_id="otp", component_id="auth"))
    return store


def minutes(rows: list[ProbeResultRow]) -> list[int]:
    return [int((row.started_at - T0).total_seconds() // 60) for row in rows]


def test_results_are_newest_first_by_default(filled: Store) -> None:
    with filled.read() as tx:
        assert minutes(tx.results(check_id="login")) == [3, 2, 1, 0]
        assert minutes(tx.results(check_id="login", newest_first=False)) == [0, 1, 2, 3]
        assert tx.count_results() == 6


def test_results_filter_by_check_and_component(filled: Store) -> None:
    with filled.read() as tx:
        assert {row.check_id for row in tx.results(component_id="auth")} == {"login", "otp"}
        assert [row.check_id for row in tx.results(check_id="signup")] == ["signup"]
        assert tx.results(check_id="nope") == []


def test_results_window_includes_since_and_excludes_until(filled: Store) -> None:
    # Bounds given in another zone compare as instants.
    since = (T0 + timedelta(minutes=1)).astimezone(WIB)
    until = (T0 + timedelta(minutes=3)).astimezone(WIB)
    with filled.read() as tx:
        assert minutes(tx.results(check_id="login", since=since, until=until)) == [2, 1]


def test_results_limit_keeps_the_newest(filled: Store) -> None:
    with filled.read() as tx:
        assert minutes(tx.results(check_id="login", limit=2)) == [3, 2]
        assert minutes(tx.results(check_id="login", limit=2, newest_first=False)) == [0, 1]


def test_results_at_the_same_instant_are_ordered_by_insertion(store: Store) -> None:
    with store.tx() as tx:
        rows = [tx.add_result(probe(T0)) for _ in range(3)]
    ids = [row.id for row in rows]  # assigned when the batch is inserted at commit
    assert None not in ids
    with store.read() as tx:
        assert [row.id for row in tx.results()] == ids[::-1]
        assert [row.id for row in tx.results(newest_first=False)] == ids


# -- component status ------------------------------------------------------------------------


def test_component_status_writes_a_transition_only_on_change(store: Store) -> None:
    steps = [
        ("operational", False),
        ("major_outage", True),
        ("major_outage", False),
        ("partial_outage", True),
        ("operational", True),
        ("operational", False),
    ]
    for minute, (status, changes) in enumerate(steps):
        with store.tx() as tx:
            at = T0 + timedelta(minutes=minute)
            transition = tx.set_component_status("auth", status, at=at, cause=f"step {minute}")
            assert (transition is not None) is changes
    with store.read() as tx:
        transitions = tx.transitions(component_id="auth")
        state = tx.component_states()["auth"]
    assert [(t.from_status, t.to_status) for t in transitions] == [
        ("partial_outage", "operational"),
        ("major_outage", "partial_outage"),
        ("operational", "major_outage"),
    ]
    assert [t.cause for t in transitions] == ["step 4", "step 3", "step 1"]
    assert state.status == "operational"
    assert state.since == T0 + timedelta(minutes=4)
    assert state.updated_at == T0 + timedelta(minutes=5)


def test_transitions_filter_by_component_and_limit(store: Store) -> None:
    with store.tx() as tx:
        tx.set_component_status("auth", "major_outage", at=T0, cause="a")
        tx.set_component_status("signup", "degraded_performance", at=T0, cause="b")
        tx.set_component_status("auth", "operational", at=T0 + timedelta(minutes=1), cause="c")
    with store.read() as tx:
        assert [t.cause for t in tx.transitions()] == ["c", "b", "a"]
        assert [t.cause for t in tx.transitions(component_id="signup")] == ["b"]
        assert [t.cause for t in tx.transitions(limit=1)] == ["c"]


def test_check_state_is_created_once_and_kept(store: Store) -> None:
    with store.tx() as tx:
        state = tx.check_state("login", "auth")
        state.status, state.consecutive_failures, state.since = "down", 3, T0
    with store.tx() as tx:
        again = tx.check_state("login", "auth")
        assert (again.status, again.consecutive_failures, again.since) == ("down", 3, T0)
    with store.read() as tx:
        assert [row.check_id for row in tx.check_states()] == ["login"]


# -- incidents ----------------------------------------------------------------------------


def test_incident_keeps_its_components_and_ordered_updates(store: Store) -> None:
    with store.tx() as tx:
        row = tx.add_incident(incident(T0), {"auth": "major_outage", "signup": "partial_outage"})
        incident_id = row.id
        assert incident_id is not None
        # Written out of order: the timeline is ordered by time, then by insertion.
        for minute, message in [(10, "resolved"), (0, "opened"), (5, "identified"), (5, "again")]:
            tx.add_update(
                IncidentUpdateRow(
                    incident_id=incident_id,
                    at=T0 + timedelta(minutes=minute),
                    status="investigating",
                    message_id=message,
                )
            )
    with store.tx() as tx:
        tx.set_incident_component(incident_id, "signup", "operational")
        tx.set_incident_component(incident_id, "otp", "degraded_performance")
    with store.read() as tx:
        updates = tx.updates(incident_id)
        components = tx.incident_components(incident_id)
    assert [u.message("id") for u in updates] == ["opened", "identified", "again", "resolved"]
    assert components == {
        "auth": "major_outage",
        "signup": "operational",
        "otp": "degraded_performance",
    }


def test_incidents_filter_and_order_newest_first(store: Store) -> None:
    with store.tx() as tx:
        tx.add_incident(incident(T0, status="resolved", title="a"), {})
        tx.add_incident(incident(T0 + timedelta(hours=2), title="b"), {})
        tx.add_incident(incident(T0 + timedelta(hours=1), status="monitoring", title="c"), {})
    with store.read() as tx:

        def titles(rows: list[IncidentRow]) -> list[str]:
            return [row.title("en") for row in rows]

        assert titles(tx.incidents()) == ["Outage b", "Outage c", "Outage a"]
        assert titles(tx.incidents(unresolved=True)) == ["Outage b", "Outage c"]
        assert titles(tx.incidents(unresolved=False)) == ["Outage a"]
        assert titles(tx.incidents(since=T0 + timedelta(hours=1))) == ["Outage b", "Outage c"]
        assert titles(tx.incidents(limit=1)) == ["Outage b"]
        assert tx.incident(999_999) is None


# -- alert deliveries ---------------------------------------------------------------------------


def test_due_deliveries_are_pending_and_due(store: Store) -> None:
    due = add_pending_delivery(store, next_attempt_at=T0)
    later = add_pending_delivery(store, next_attempt_at=T0 + timedelta(minutes=5))
    with store.read() as tx:
        assert [d.id for d in tx.due_deliveries(T0)] == [due]
        assert [d.id for d in tx.due_deliveries(T0 + timedelta(minutes=5))] == [due, later]


def test_claim_delivery_succeeds_once(store: Store) -> None:
    delivery_id = add_pending_delivery(store)
    now = T0 + timedelta(seconds=1)
    with store.tx() as tx:
        assert tx.claim_delivery(delivery_id, now) is True
    with store.tx() as tx:
        assert tx.claim_delivery(delivery_id, now) is False
    with store.read() as tx:
        claimed = tx.delivery(delivery_id)
        assert tx.due_deliveries(now) == []
        assert [d.id for d in tx.deliveries(status=["sending"])] == [delivery_id]
    assert claimed is not None
    assert (claimed.status, claimed.attempts, claimed.next_attempt_at) == ("sending", 1, now)


def test_two_stores_racing_claim_each_delivery_exactly_once(store_url: str) -> None:
    """Two engines, as two processes would have, claim the same pending deliveries at once."""
    setup = Store(store_url)
    ids = [add_pending_delivery(setup, target=index) for index in range(20)]
    setup.close()
    stores = [Store(store_url, create=False) for _ in range(2)]
    start = threading.Barrier(len(stores))
    wins: list[list[int]] = [[] for _ in stores]
    errors: list[BaseException] = []

    def claim_all(index: int) -> None:
        try:
            for delivery_id in ids:
                start.wait(timeout=30)  # both go for the same delivery at the same moment
                with stores[index].tx() as tx:
                    # Read first, as the alerter does, then claim in the same transaction.
                    if tx.due_deliveries(T0) and tx.claim_delivery(delivery_id, T0):
                        wins[index].append(delivery_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claim_all, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for store in stores:
        store.close()

    assert errors == []
    assert sorted(wins[0] + wins[1]) == ids
    check = Store(store_url, create=False)
    with check.read() as tx:
        assert {(d.status, d.attempts) for d in tx.deliveries()} == {("sending", 1)}
    check.close()


def test_deliveries_filter_by_status_and_incident(store: Store) -> None:
    first = add_pending_delivery(store)
    second = add_pending_delivery(store)
    with store.tx() as tx:
        tx.claim_delivery(first, T0)
    with store.read() as tx:
        incident_id = tx.delivery(second).incident_id  # type: ignore[union-attr]
        assert [d.id for d in tx.deliveries()] == [first, second]
        assert [d.id for d in tx.deliveries(status=["pending", "failed"])] == [second]
        assert [d.id for d in tx.deliveries(incident_id=incident_id)] == [second]


# -- transactions -------------------------------------------------------------------------------


def test_a_transaction_that_raises_leaves_nothing_behind(store: Store) -> None:
    with pytest.raises(RuntimeError, match="boom"), store.tx() as tx:
        tx.add_result(probe(T0))
        tx.set_component_status("auth", "major_outage", at=T0, cause="login")
        tx.add_incident(incident(T0), {"auth": "major_outage"})
        raise RuntimeError("boom")
    with store.read() as tx:
        assert tx.count_results() == 0
        assert tx.component_states() == {}
        assert tx.transitions() == []
        assert tx.incidents() == []


def test_a_database_error_is_a_store_error_and_rolls_back(store: Store) -> None:
    first = add_pending_delivery(store)
    with store.read() as tx:
        existing = tx.delivery(first)
    assert existing is not None
    fields = existing.model_dump(exclude={"id"})
    with pytest.raises(StoreError), store.tx() as tx:
        tx.add_result(probe(T0))
        tx.add_delivery(AlertDeliveryRow(**fields))  # same message and target: uq_delivery_target
    with store.read() as tx:
        assert tx.count_results() == 0
        assert len(tx.deliveries()) == 1


# -- SQLite specifics ---------------------------------------------------------------------------


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/pantau.db")
    try:
        with store.engine.connect() as connection:
            mode = connection.execute(text("PRAGMA journal_mode")).scalar_one()
            foreign_keys = connection.execute(text("PRAGMA foreign_keys")).scalar_one()
    finally:
        store.close()
    assert mode == "wal"
    assert foreign_keys == 1
