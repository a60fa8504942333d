"""Resource faults, on a real SQLite store: the disk fills up (SQLite's own "database or
disk is full", through ``max_page_count``), the database turns read only
(``query_only``), another process holds the write lock. Probing goes on, the failure is
logged once, results wait in a bounded buffer and are written in order when the store
returns, what the buffer could not hold is counted and shown in ``pantau status``'s
data. A clock stepped forwards or backwards never opens or resolves an incident."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_support import make_config
from sqlalchemy import event

from checks.base import ErrorClass, ProbeResult
from monitor.alerts import Notifier
from monitor.clock import ManualClock
from monitor.cluster import node_health
from monitor.config import Settings, parse_settings
from monitor.fields import Secret
from monitor.runtime import Engine
from monitor.store import Store


class _Recorder:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, target: Secret, *, title: str, body: str) -> None:
        self.sent.append(title)


class Fault:
    """Turns a real SQLite failure on and off for every connection of ``store``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.pragma: str | None = None
        event.listen(store.engine, "connect", self._apply)

    def _apply(self, dbapi_connection: Any, _record: Any) -> None:
        if self.pragma is not None:
            dbapi_connection.execute(self.pragma)

    def set(self, pragma: str | None) -> None:
        self.pragma = pragma
        self.store.engine.dispose()  # pooled connections reconnect with the pragma

    def disk_full(self) -> None:
        pages = sqlite3.connect(self.store.url.removeprefix("sqlite:///"))
        try:
            count = pages.execute("PRAGMA page_count").fetchone()[0]
        finally:
            pages.close()
        self.set(f"PRAGMA max_page_count = {count}")

    def read_only(self) -> None:
        self.set("PRAGMA query_only = 1")

    def clear(self) -> None:
        self.set(None)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'pantau.db'}")
    yield store
    store.close()


def _settings(**storage: Any) -> Settings:
    config = make_config(
        notify=["json://127.0.0.1:9/alerts"],
        detection={"failures_to_down": 2, "passes_to_recover": 2},
        storage={"url": "sqlite://", **storage},
    )
    return parse_settings(config)


def _engine(store: Store, clock: ManualClock, settings: Settings) -> Engine:
    notifier: Notifier = _Recorder()
    return Engine(settings, store, clock=clock, client=None, notifier=notifier)  # type: ignore[arg-type]


def _result(clock: ManualClock, *, ok: bool, check_id: str = "login-page") -> ProbeResult:
    return ProbeResult(
        check_id=check_id,
        component_id="login",
        started_at=clock.now(),
        ok=ok,
        latency_ms=10.0,
        error=None if ok else ErrorClass.HTTP_STATUS,
        # A large detail makes each row need a new page, so a full disk shows at once.
        detail=("HTTP 503 " if not ok else "passed ") + "x" * 5000,
        region="default",
    )


def _stored(store: Store) -> list[tuple[str, Any]]:
    with store.read() as tx:
        return [(r.check_id, r.started_at) for r in tx.results(newest_first=False)]


@pytest.mark.parametrize("fault", ["disk_full", "read_only"])
async def test_results_wait_in_memory_while_the_store_cannot_be_written(
    store: Store, clock: ManualClock, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    engine = _engine(store, clock, _settings())
    faults = Fault(store)
    await engine._record(_result(clock, ok=True))
    getattr(faults, fault)()
    caplog.set_level(logging.INFO, logger="monitor")
    taken = []
    for _ in range(30):  # probing goes on: 30 results while the store refuses them
        clock.advance(1)
        result = _result(clock, ok=clock.monotonic() % 2 == 0)
        taken.append((result.check_id, result.started_at))
        outcome = await engine._record(result)
        assert outcome.stored is False
    assert len(engine.health.backlog) == 30
    failures = [r for r in caplog.records if "cannot be written" in r.getMessage()]
    assert len(failures) == 1, "the outage is logged once, not once per result"
    assert engine.health.down_since is not None

    faults.clear()
    clock.advance(1)
    last = _result(clock, ok=True)
    outcome = await engine._record(last)
    assert outcome.stored is True
    stored = _stored(store)
    assert stored[1:] == [*taken, (last.check_id, last.started_at)]  # all, in order
    assert engine.health.backlog == deque_empty()
    assert engine.health.dropped == 0 and engine.health.written_late == 30
    assert any("works again" in r.getMessage() for r in caplog.records)
    engine.heartbeat(clock.now())
    with store.read() as tx:
        (node,) = node_health(tx.nodes(), now=clock.now())
    assert node.node.store_errors >= 1 and node.node.dropped == 0
    assert "failed writes" in node.store_text()


def deque_empty() -> Any:
    from collections import deque

    return deque()


async def test_a_full_buffer_drops_the_oldest_and_counts_them(
    store: Store, clock: ManualClock
) -> None:
    engine = _engine(store, clock, _settings(buffer=5))
    faults = Fault(store)
    faults.read_only()
    taken = []
    for _ in range(8):
        clock.advance(1)
        result = _result(clock, ok=True)
        taken.append((result.check_id, result.started_at))
        await engine._record(result)
    assert len(engine.health.backlog) == 5 and engine.health.dropped == 3
    faults.clear()
    await engine.retry_backlog()  # what the service does every heartbeat
    assert _stored(store) == taken[3:]  # the newest five; the three oldest were dropped
    engine.heartbeat(clock.now())
    with store.read() as tx:
        (node,) = tx.nodes()
    assert (node.dropped, node.buffered) == (3, 0)
    assert "3 dropped" in node_health([node], now=clock.now())[0].store_text()


async def test_a_write_lock_held_by_another_process_only_delays_results(
    store: Store, clock: ManualClock
) -> None:
    engine = _engine(store, clock, _settings())
    await engine._record(_result(clock, ok=True))
    other = sqlite3.connect(store.url.removeprefix("sqlite:///"), check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(1.0, other.commit)
    release.start()
    started = time.monotonic()
    try:
        clock.advance(1)
        outcome = await engine._record(_result(clock, ok=False))
    finally:
        release.join()
        other.close()
    assert outcome.stored is True  # waited for the lock (busy timeout), then written
    assert time.monotonic() - started >= 0.5
    assert len(_stored(store)) == 2 and engine.health.errors == 0


@pytest.mark.parametrize("step", [3600, -3600, 86400])
async def test_a_stepped_clock_never_opens_or_resolves_an_incident(
    store: Store, clock: ManualClock, step: int
) -> None:
    settings = _settings()
    engine = _engine(store, clock, settings)
    for _ in range(2):
        await engine._record(_result(clock, ok=False))
        engine.evaluate_alerts()
        clock.advance(1)
    with store.read() as tx:
        (incident,) = tx.incidents()
    assert incident.resolved_at is None
    clock.advance(step)  # NTP steps the clock; no result arrives meanwhile
    for _ in range(3):
        engine.detect()
        report = engine.evaluate_alerts()
        assert not report.resolved
        clock.advance(1)
    with store.read() as tx:
        (incident,) = tx.incidents()
        assert incident.resolved_at is None
        assert tx.component_states()["login"].status != "operational"
    # A quiet healthy system does not open one when its clock jumps either.
    clock.advance(-step)
    for _ in range(2):
        await engine._record(_result(clock, ok=True))
        clock.advance(1)
    with store.read() as tx:
        (incident,) = tx.incidents()
        assert incident.resolved_at is not None  # the real recovery resolves it
    clock.advance(step)
    engine.detect()
    engine.evaluate_alerts()
    with store.read() as tx:
        assert len(tx.incidents()) == 1
