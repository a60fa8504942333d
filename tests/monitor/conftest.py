"""Fixtures for engine tests: a Prakerja-shaped config, a real SQLite store, a manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_support import ResultFactory, make_config

from checks.base import ErrorClass, ProbeResult
from monitor.clock import ManualClock
from monitor.config import Settings, parse_settings
from monitor.demo.receiver import AlertReceiver
from monitor.store import Store


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def settings() -> Settings:
    return parse_settings(make_config(notify=["json://127.0.0.1:9/alerts"]))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'pantau.db'}")
    yield store
    store.close()


@pytest.fixture
def receiver() -> Iterator[AlertReceiver]:
    receiver = AlertReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def result(clock: ManualClock, settings: Settings) -> ResultFactory:
    """``result("login-page", ok=False)``: a result stamped with the clock's current time."""
    components = {c.id: c.component for c in settings.checks}

    def make(check_id: str, *, ok: bool, error: ErrorClass | None = None) -> ProbeResult:
        return ProbeResult(
            check_id=check_id,
            component_id=components[check_id],
            started_at=clock.now(),
            ok=ok,
            latency_ms=12.0,
            error=None if ok else (error or ErrorClass.HTTP_STATUS),
            detail="status 200" if ok else "status 503, expected 200-399",
            status_code=200 if ok else 503,
        )

    return make
