"""Helpers shared by the engine tests (importable, unlike conftest)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from checks.base import ErrorClass, ProbeResult
from monitor.alerts import AlertReport, evaluate_alerts
from monitor.clock import ManualClock
from monitor.config import Settings
from monitor.detect import record_result
from monitor.incidents import IncidentAutomation
from monitor.rules import evaluate as evaluate_rules
from monitor.statements import StatementLibrary
from monitor.store import AlertDeliveryRow, Store

COMPONENTS = [
    {"id": "home", "name": {"id": "Beranda", "en": "Home"}},
    {"id": "login", "name": {"id": "Masuk", "en": "Login"}},
    {"id": "signup", "name": {"id": "Pendaftaran", "en": "Signup"}},
    {"id": "otp", "name": {"id": "OTP", "en": "OTP"}},
]


def make_config(
    *, notify: list[str] | None = None, base_url: str = "http://127.0.0.1:9", **extra: Any
) -> dict[str, Any]:
    checks = [
        {"id": "home-page", "component": "home", "url": f"{base_url}/"},
        {"id": "login-page", "component": "login", "url": f"{base_url}/login"},
        {"id": "login-api", "component": "login", "url": f"{base_url}/api/login"},
        {"id": "signup-page", "component": "signup", "url": f"{base_url}/signup"},
        {"id": "otp-page", "component": "otp", "url": f"{base_url}/otp"},
    ]
    for check in checks:
        check.update(kind="http", interval="1s", timeout="1s", retries=0)
    return {
        "components": COMPONENTS,
        "checks": checks,
        "alerts": {
            "notify": notify or [],
            "backoff": "2s",
            "max_backoff": "30s",
            "max_attempts": 3,
        },
        **extra,
    }


ResultFactory = Callable[..., ProbeResult]


class Replay:
    """Replays probe results through detection, incidents and alert rules on a manual clock,
    as the engine does, without HTTP: ``replay.probe("login-page", ok=False)``."""

    def __init__(self, store: Store, settings: Settings, clock: ManualClock) -> None:
        self.store, self.settings, self.clock = store, settings, clock
        self.automation = IncidentAutomation(settings, StatementLibrary())
        self.components = {c.id: c.component for c in settings.checks}

    def probe(
        self,
        check_id: str,
        *,
        ok: bool,
        error: ErrorClass | None = None,
        latency_ms: float = 120.0,
        region: str = "default",
        attempt: int = 1,
    ) -> None:
        result = ProbeResult(
            check_id=check_id,
            component_id=self.components[check_id],
            started_at=self.clock.now(),
            ok=ok,
            latency_ms=latency_ms,
            error=None if ok else (error or ErrorClass.HTTP_STATUS),
            detail="" if ok else "HTTP 503",
            status_code=200 if ok else 503,
            region=region,
            attempt=attempt,
        )
        with self.store.tx() as tx:
            change = record_result(tx, self.settings, result)
            if change is not None:
                self.automation.handle(tx, change, now=self.clock.now())

    def round(self, failing: frozenset[str] | set[str] = frozenset(), **kwargs: Any) -> None:
        """One result for every check: those in ``failing`` fail."""
        for check_id in self.components:
            self.probe(check_id, ok=check_id not in failing, **kwargs)

    def evaluate(self) -> AlertReport:
        now = self.clock.now()
        with self.store.tx() as tx:
            return evaluate_alerts(
                tx, self.settings, evaluate_rules(tx, self.settings, now=now), now=now
            )

    def deliveries(self) -> list[AlertDeliveryRow]:
        with self.store.read() as tx:
            return tx.deliveries()

    def messages(self) -> list[tuple[int, str]]:
        """``(group, kind)`` of every message, once per message (not per target)."""
        return sorted({(d.group_id, d.kind) for d in self.deliveries()}, key=lambda m: m[0])

    def kinds(self) -> list[str]:
        seen: dict[tuple[int, int], str] = {}
        for d in self.deliveries():
            seen[(d.group_id, d.seq)] = d.kind
        return [seen[key] for key in sorted(seen)]
