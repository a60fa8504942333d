"""Roles and leadership, step by step on a manual clock: probe workers write results and
their region's check states only; the leading coordinator decides components across
regions (a silent region leaves the quorum after its grace); one process leads at a time
on PostgreSQL (an advisory lock on its own connection) and on a SQLite file (a file
lock); deliveries left ``sending`` by a process that died are sent again, unless their
group has moved on."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from engine_support import make_config
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from checks.base import ErrorClass, ProbeResult
from monitor.alerts import DeliveryReport, Notifier, deliver_pending
from monitor.clock import ManualClock
from monitor.cluster import leader_of, node_health, region_health
from monitor.config import Settings, parse_settings
from monitor.fields import Secret
from monitor.leader import FileLeadership, PgLeadership, leadership_for
from monitor.runtime import Engine
from monitor.store import AlertDeliveryRow, AlertGroupRow, Store

# -- roles ---------------------------------------------------------------------------------


class _Recorder:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, target: Secret, *, title: str, body: str) -> None:
        self.sent.append(title)


def _settings(**detection: object) -> Settings:
    config = make_config(
        notify=["json://127.0.0.1:9/alerts"],
        detection={"failures_to_down": 1, "passes_to_recover": 1, **detection},
    )
    return parse_settings(config)


def _engine(store: Store, clock: ManualClock, settings: Settings, role: str, region: str) -> Engine:
    settings = settings.model_copy(
        update={"probe": settings.probe.model_copy(update={"region": region})}
    )
    notifier: Notifier = _Recorder()
    return Engine(settings, store, clock=clock, client=None, notifier=notifier, role=role)  # type: ignore[arg-type]


def _result(clock: ManualClock, region: str, *, ok: bool) -> ProbeResult:
    return ProbeResult(
        check_id="otp-page",
        component_id="otp",
        started_at=clock.now(),
        ok=ok,
        latency_ms=10.0,
        error=None if ok else ErrorClass.HTTP_STATUS,
        detail="" if ok else "HTTP 503",
        region=region,
    )


async def _write(engine: Engine, result: ProbeResult) -> None:
    await engine._record(result)


async def test_probe_workers_write_results_and_the_coordinator_decides(
    store: Store, clock: ManualClock
) -> None:
    settings = _settings()
    jakarta = _engine(store, clock, settings, "probe", "jakarta")
    medan = _engine(store, clock, settings, "probe", "medan")
    coordinator = _engine(store, clock, settings, "coordinator", "default")
    assert (jakarta.probes, jakarta.coordinates) == (True, False)
    assert (coordinator.probes, coordinator.coordinates) == (False, True)

    await _write(jakarta, _result(clock, "jakarta", ok=False))
    await _write(medan, _result(clock, "medan", ok=False))
    with store.read() as tx:
        states = {(s.check_id, s.region): s.status for s in tx.check_states()}
        assert states == {("otp-page", "jakarta"): "down", ("otp-page", "medan"): "down"}
        assert tx.component_states() == {}  # probe workers decide no component
        assert tx.incidents() == []

    (event,) = coordinator.detect()
    assert event.event == "opened" and event.components == ("otp",)
    assert coordinator.detect() == []  # nothing changed: nothing twice
    with store.read() as tx:
        assert tx.component_states()["otp"].status == "major_outage"
        (incident,) = tx.incidents()
        assert incident.resolved_at is None

    clock.advance(1)
    await _write(jakarta, _result(clock, "jakarta", ok=True))
    await _write(medan, _result(clock, "medan", ok=True))
    (event,) = coordinator.detect()
    assert event.event == "resolved"


async def test_a_silent_region_leaves_the_quorum_after_its_grace(
    store: Store, clock: ManualClock
) -> None:
    settings = _settings(region_grace="10s")
    jakarta = _engine(store, clock, settings, "probe", "jakarta")
    medan = _engine(store, clock, settings, "probe", "medan")
    coordinator = _engine(store, clock, settings, "coordinator", "default")
    await _write(medan, _result(clock, "medan", ok=True))  # then Medan falls silent
    for _ in range(9):
        clock.advance(1)
        await _write(jakarta, _result(clock, "jakarta", ok=False))
        coordinator.detect()
        with store.read() as tx:  # a majority of two regions is both: not down yet
            assert tx.component_states().get("otp") is None or (
                tx.component_states()["otp"].status == "operational"
            )
    with store.read() as tx:
        regions = {
            r.region: r.silent for r in region_health(tx.check_states(), settings, now=clock.now())
        }
    assert regions == {"jakarta": False, "medan": False}
    clock.advance(2)  # Medan's last result is now 11 s old: past its grace
    await _write(jakarta, _result(clock, "jakarta", ok=False))
    (event,) = coordinator.detect()
    assert event.event == "opened"
    with store.read() as tx:
        regions = {
            r.region: r.silent for r in region_health(tx.check_states(), settings, now=clock.now())
        }
        assert tx.component_states()["otp"].status == "major_outage"
    assert regions == {"jakarta": False, "medan": True}


async def test_a_coordinator_that_does_not_lead_does_nothing_and_says_so(
    store: Store, clock: ManualClock, tmp_path: Path
) -> None:
    settings = _settings()
    url = store.url
    first = Engine(
        settings,
        store,
        clock=clock,
        client=None,
        notifier=_Recorder(),  # type: ignore[arg-type]
        role="coordinator",
        leadership=leadership_for(url),
    )
    second = Engine(
        settings,
        store,
        clock=clock,
        client=None,
        notifier=_Recorder(),  # type: ignore[arg-type]
        role="coordinator",
        leadership=leadership_for(url),
    )
    try:
        assert first.lead() is True
        assert second.lead() is False
        with store.read() as tx:
            health = node_health(tx.nodes(), now=clock.now())
        leader = leader_of(health)
        assert leader is not None and leader.node.id == first.node_id
        assert {h.node.id: h.alive for h in health} == {first.node_id: True, second.node_id: True}
        first.leadership.release()  # a clean stop hands over at once
        assert second.lead() is True
        assert first.lead() is False  # and the first one is a standby now
        clock.advance(60)
        with store.read() as tx:
            assert {h.node.id: h.alive for h in node_health(tx.nodes(), now=clock.now())} == {
                first.node_id: False,
                second.node_id: False,
            }
    finally:
        first.leadership.release()
        second.leadership.release()


# -- leadership ----------------------------------------------------------------------------


def test_a_file_lock_elects_one_and_frees_on_release(tmp_path: Path) -> None:
    path = tmp_path / "pantau.db.leader"
    one, two = FileLeadership(path), FileLeadership(path)
    assert one.step() and one.is_leader
    assert not two.step() and not two.is_leader
    one.release()
    assert two.step()
    two.release()


@pytest.mark.postgres
def test_an_advisory_lock_elects_one_and_survives_a_lost_connection(pg_store_url: str) -> None:
    Store(pg_store_url).close()
    one, two = PgLeadership(pg_store_url), PgLeadership(pg_store_url)
    admin = create_engine(pg_store_url, poolclass=NullPool)
    try:
        assert one.step() is True
        assert two.step() is False
        assert one.step() is True  # still alive, still leading
        # The leader's session is cut (a network failure, a server restart): it notices
        # at its next step; the lock is free and the standby takes it.
        with admin.connect() as conn:
            ended = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()"
                )
            ).all()
            conn.commit()
        assert ended == [(True,)]
        assert one.step() is False and not one.is_leader
        assert two.step() is True
        assert one.step() is False  # reconnected, a standby now
        two.release()
        assert one.step() is True  # and leads again once the other lets go
    finally:
        one.release()
        two.release()
        admin.dispose()


# -- deliveries left sending ---------------------------------------------------------------


def _delivery(store: Store, clock: ManualClock, *, seq: int, claimer: str | None) -> int:
    with store.tx() as tx:
        group = tx.session.get(AlertGroupRow, 1) or tx.add_group(
            AlertGroupRow(created_at=clock.now(), send_after=clock.now())
        )
        row = AlertDeliveryRow(
            group_id=group.id,  # type: ignore[arg-type]
            seq=seq,
            kind="firing" if seq == 0 else "resolved",
            target_index=0,
            target_label="json://127.0.0.1:9/alerts",
            title=f"message {seq}",
            body="",
            next_attempt_at=clock.now(),
            created_at=clock.now(),
        )
        tx.session.add(row)
        tx.session.flush()
        assert row.id is not None
        if claimer is not None:
            assert tx.claim_delivery(row.id, clock.now(), claimer=claimer)
        return row.id


def _statuses(store: Store) -> dict[int, str]:
    with store.read() as tx:
        return {d.id: d.status for d in tx.deliveries()}  # type: ignore[misc]


def test_a_delivery_left_sending_by_a_dead_process_is_not_resent_after_a_later_one(
    store: Store, clock: ManualClock, settings: Settings
) -> None:
    orphan = _delivery(store, clock, seq=0, claimer="host:1:dead")
    later = _delivery(store, clock, seq=1, claimer="host:2:alive")
    notifier = _Recorder()
    clock.advance(1)
    alive = {"host:2:alive"}
    # Within the send's timeout nothing is taken back: the sender may still be sending.
    report = deliver_pending(store, settings, notifier, now=clock.now(), claimer="me", alive=alive)
    assert report.reclaimed == [] and notifier.sent == []
    with store.tx() as tx:  # the later message (the RESOLVED) went out meanwhile
        row = tx.delivery(later)
        assert row is not None
        row.status = "sent"
    clock.advance(settings.alerts.timeout.total_seconds() + 10)
    report = deliver_pending(store, settings, notifier, now=clock.now(), claimer="me", alive=alive)
    # Its group moved on (a later message was sent): old news is not resent.
    assert report.reclaimed == [] and notifier.sent == []
    assert _statuses(store) == {orphan: "failed", later: "sent"}


def test_an_orphan_goes_out_before_the_later_message_still_pending(
    store: Store, clock: ManualClock, settings: Settings
) -> None:
    orphan = _delivery(store, clock, seq=0, claimer="host:1:dead")
    later = _delivery(store, clock, seq=1, claimer=None)  # pending
    notifier = _Recorder()
    clock.advance(settings.alerts.timeout.total_seconds() + 10)
    report = deliver_pending(store, settings, notifier, now=clock.now(), claimer="me", alive=set())
    assert report.reclaimed == [orphan]
    assert notifier.sent == ["message 0", "message 1"]  # in order, nothing lost
    assert _statuses(store) == {orphan: "sent", later: "sent"}


def test_the_last_message_left_sending_by_a_dead_process_is_sent_again(
    store: Store, clock: ManualClock, settings: Settings
) -> None:
    orphan = _delivery(store, clock, seq=0, claimer="host:1:dead")
    notifier = _Recorder()
    clock.advance(settings.alerts.timeout.total_seconds() + 10)
    report = deliver_pending(store, settings, notifier, now=clock.now(), claimer="me", alive=set())
    assert isinstance(report, DeliveryReport)
    assert report.reclaimed == [orphan] and report.sent == [orphan]
    assert notifier.sent == ["message 0"]
    assert _statuses(store) == {orphan: "sent"}


def test_heartbeats_are_kept_and_old_nodes_forgotten(store: Store, clock: ManualClock) -> None:
    settings = _settings()
    engine = _engine(store, clock, settings, "all", "jakarta")
    assert engine.lead() is True
    engine.heartbeat(clock.now(), stopped=True)
    with store.read() as tx:
        (node,) = tx.nodes()
        assert (node.role, node.region, node.stopped_at is not None) == ("all", "jakarta", True)
    clock.advance(timedelta(days=2).total_seconds())
    other = _engine(store, clock, settings, "all", "medan")
    other.lead()
    with store.read() as tx:
        assert [n.region for n in tx.nodes()] == ["medan"]


def test_the_leader_gauge_follows_leadership(store: Store, clock: ManualClock) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from monitor.metrics import Metrics

    settings = _settings()

    def gauge(engine: Engine) -> float:
        assert engine.metrics is not None
        for family in text_string_to_metric_families(engine.metrics.exposition().decode()):
            if family.name == "pantau_leader":
                return float(family.samples[0].value)
        raise AssertionError("no pantau_leader")

    engines = [
        Engine(
            settings,
            store,
            clock=clock,
            client=None,  # type: ignore[arg-type]
            notifier=_Recorder(),
            role=role,
            leadership=leadership_for(store.url),
            metrics=Metrics(settings),
        )
        for role in ("coordinator", "coordinator", "probe")
    ]
    try:
        for engine in engines:
            engine.lead()
        assert [gauge(e) for e in engines] == [1.0, 0.0, 0.0]
    finally:
        for engine in engines:
            engine.leadership.release()
