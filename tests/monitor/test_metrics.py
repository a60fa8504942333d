"""Prometheus metrics: what a scrape of ``pantau run`` shows, parsed as Prometheus would."""

from __future__ import annotations

import math
import socket

import httpx
import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from checks.base import ErrorClass, ProbeResult
from monitor import __version__
from monitor.alerts import DeliveryReport
from monitor.clock import ManualClock
from monitor.config import Settings
from monitor.detect import COMPONENT_STATUSES
from monitor.metrics import PROBE_BUCKETS, Metrics
from monitor.store import AlertDeliveryRow, AlertGroupRow, AlertRow, IncidentRow, Store


def _samples(text: bytes | str) -> list[Sample]:
    if isinstance(text, bytes):
        text = text.decode()
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def _find(samples: list[Sample], name: str, **labels: str) -> list[Sample]:
    """Samples named ``name`` whose labels include ``labels``."""
    return [
        s
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    found = _find(samples, name, **labels)
    assert len(found) == 1, f"{name}{labels}: {found}"
    return found[0].value


def _result(
    clock: ManualClock,
    check_id: str = "login-page",
    *,
    ok: bool = True,
    degraded: bool = False,
    error: ErrorClass | None = None,
    latency_ms: float | None = 120.0,
    region: str = "jakarta",
    detail: str = "",
) -> ProbeResult:
    component = check_id.split("-")[0]
    return ProbeResult(
        check_id=check_id,
        component_id=component,
        started_at=clock.now(),
        ok=ok,
        latency_ms=latency_ms,
        error=error,
        detail=detail,
        region=region,
        degraded=degraded,
    )


# -- probe results --------------------------------------------------------------


@pytest.mark.parametrize(
    ("ok", "degraded", "error", "result", "error_class"),
    [
        (True, False, None, "ok", "none"),
        (True, True, ErrorClass.TOO_SLOW, "degraded", "too_slow"),
        (True, True, ErrorClass.ASSERTION, "degraded", "assertion"),
        (False, False, ErrorClass.TIMEOUT, "failed", "timeout"),
        (False, False, ErrorClass.HTTP_STATUS, "failed", "http_status"),
        (False, False, ErrorClass.DNS, "failed", "dns"),
    ],
)
def test_a_probe_run_is_counted_by_result_and_error_class(
    settings: Settings,
    clock: ManualClock,
    ok: bool,
    degraded: bool,
    error: ErrorClass | None,
    result: str,
    error_class: str,
) -> None:
    metrics = Metrics(settings)
    metrics.observe_result(_result(clock, ok=ok, degraded=degraded, error=error))

    counted = _find(_samples(metrics.exposition()), "pantau_probe_results_total")
    assert [(s.labels, s.value) for s in counted] == [
        (
            {
                "check": "login-page",
                "component": "login",
                "region": "jakarta",
                "result": result,
                "error_class": error_class,
            },
            1.0,
        )
    ]


def test_runs_add_up_per_check_region_and_outcome(settings: Settings, clock: ManualClock) -> None:
    metrics = Metrics(settings)
    for _ in range(3):
        metrics.observe_result(_result(clock, region="jakarta"))
    metrics.observe_result(_result(clock, region="surabaya"))
    metrics.observe_result(_result(clock, ok=False, error=ErrorClass.CONNECT, region="jakarta"))
    metrics.observe_result(_result(clock, "home-page", region="jakarta"))

    samples = _samples(metrics.exposition())
    name = "pantau_probe_results_total"
    assert _value(samples, name, check="login-page", region="jakarta", result="ok") == 3
    assert _value(samples, name, check="login-page", region="surabaya", result="ok") == 1
    assert _value(samples, name, check="login-page", region="jakarta", error_class="connect") == 1
    assert _value(samples, name, check="home-page", component="home", result="ok") == 1
    assert len(_find(samples, name)) == 4


def test_latencies_fill_the_histogram_buckets_in_seconds(
    settings: Settings, clock: ManualClock
) -> None:
    metrics = Metrics(settings)
    for latency_ms in (30.0, 200.0, 1200.0, 45_000.0):
        metrics.observe_result(_result(clock, latency_ms=latency_ms, region="jakarta"))
    metrics.observe_result(_result(clock, latency_ms=80.0, region="surabaya"))

    samples = _samples(metrics.exposition())
    name = "pantau_probe_duration_seconds"
    buckets = {
        float(s.labels["le"]): s.value
        for s in _find(samples, f"{name}_bucket", check="login-page", region="jakarta")
    }
    assert list(buckets) == [*PROBE_BUCKETS, math.inf]
    assert PROBE_BUCKETS[0] == 0.05 and PROBE_BUCKETS[-1] == 30.0
    assert buckets[0.05] == 1  # 30 ms
    assert buckets[0.25] == 2  # and 200 ms
    assert buckets[1.5] == 3  # and 1.2 s
    assert buckets[30.0] == 3  # 45 s is past every finite bucket
    assert buckets[math.inf] == 4
    assert _value(samples, f"{name}_count", region="jakarta") == 4
    assert _value(samples, f"{name}_sum", region="jakarta") == pytest.approx(46.43)
    assert _value(samples, f"{name}_count", region="surabaya", component="login") == 1


def test_a_run_without_a_latency_is_counted_but_not_timed(
    settings: Settings, clock: ManualClock
) -> None:
    metrics = Metrics(settings)
    metrics.observe_result(_result(clock, ok=False, error=ErrorClass.DNS, latency_ms=None))

    samples = _samples(metrics.exposition())
    assert _value(samples, "pantau_probe_results_total", error_class="dns") == 1
    assert _find(samples, "pantau_probe_duration_seconds_count") == []


def test_labels_hold_only_ids_and_fixed_words_never_free_text(
    settings: Settings, clock: ManualClock
) -> None:
    metrics = Metrics(settings)
    detail = "status 503 from https://prakerja.example/login?token=abc"
    metrics.observe_result(
        _result(clock, ok=False, error=ErrorClass.HTTP_STATUS, detail=detail, region="jakarta")
    )

    samples = _samples(metrics.exposition())
    values = {v for s in samples for k, v in s.labels.items() if k != "le"}
    allowed = {
        *(c.id for c in settings.components),
        *(c.id for c in settings.checks),
        "jakarta",
        *(e.value for e in ErrorClass),
        *("none", "ok", "degraded", "failed", "sent", "retrying"),
        __version__,
    }
    assert values <= allowed
    assert not any(detail in v or "https://" in v for v in values)


# -- alert deliveries and build info -------------------------------------------------


def test_deliveries_are_counted_by_outcome_from_zero(settings: Settings) -> None:
    metrics = Metrics(settings)
    before = _samples(metrics.exposition())
    assert {
        s.labels["outcome"]: s.value for s in _find(before, "pantau_alert_deliveries_total")
    } == {"sent": 0, "retrying": 0, "failed": 0}

    metrics.observe_deliveries(DeliveryReport(sent=[1, 2], retrying=[3]))
    metrics.observe_deliveries(DeliveryReport(sent=[4], retrying=[3], failed=[5]))
    metrics.observe_deliveries(DeliveryReport())

    after = _samples(metrics.exposition())
    assert {
        s.labels["outcome"]: s.value for s in _find(after, "pantau_alert_deliveries_total")
    } == {"sent": 3, "retrying": 2, "failed": 1}


def test_build_info_is_one_with_the_version(settings: Settings) -> None:
    samples = _samples(Metrics(settings).exposition())
    assert _value(samples, "pantau_build_info", version=__version__) == 1


# -- gauges read from the store -------------------------------------------------------


def _fill_store(store: Store, clock: ManualClock) -> None:
    now = clock.now()
    with store.tx() as tx:
        tx.set_component_status("login", "major_outage", at=now, cause="login-page down")
        tx.set_component_status("signup", "degraded_performance", at=now, cause="slow")
        tx.set_component_status("otp", "operational", at=now, cause="recovered")
        # "home" has no row yet: it counts as operational, as in `pantau status`.
        tx.set_component_status("retired", "major_outage", at=now, cause="not configured")
        for status in ("investigating", "identified", "resolved"):
            tx.add_incident(
                IncidentRow(
                    title_id="Gangguan",
                    title_en="Disruption",
                    status=status,
                    started_at=now,
                    updated_at=now,
                ),
                {"login": "major_outage"},
            )
        for state in ("firing", "firing", "pending", "resolved"):
            tx.add_alert(
                AlertRow(
                    rule_id="login-errors",
                    subject="login",
                    component_id="login",
                    state=state,
                    active_since=now,
                    evaluated_at=now,
                )
            )
        group = tx.add_group(AlertGroupRow(created_at=now, send_after=now))
        assert group.id is not None
        for seq, status in enumerate(("pending", "pending", "sending", "sent", "failed")):
            tx.add_delivery(
                AlertDeliveryRow(
                    group_id=group.id,
                    seq=seq,
                    target_index=0,
                    target_label="json://127.0.0.1:9/alerts",
                    title="t",
                    body="b",
                    status=status,
                    next_attempt_at=now,
                    created_at=now,
                )
            )


def test_refresh_reads_statuses_incidents_alerts_and_pending_deliveries(
    settings: Settings, store: Store, clock: ManualClock
) -> None:
    _fill_store(store, clock)
    metrics = Metrics(settings)
    with store.read() as tx:
        metrics.refresh(tx)

    samples = _samples(metrics.exposition())
    statuses = {
        (s.labels["component"], s.labels["status"]): s.value
        for s in _find(samples, "pantau_component_status")
    }
    current = {"home": "operational", "login": "major_outage"}
    current |= {"signup": "degraded_performance", "otp": "operational"}
    assert statuses == {
        (component, status): float(current[component] == status)
        for component in current
        for status in COMPONENT_STATUSES
    }
    assert _value(samples, "pantau_open_incidents") == 2
    assert _value(samples, "pantau_alerts", state="firing") == 2
    assert _value(samples, "pantau_alerts", state="pending") == 1
    assert len(_find(samples, "pantau_alerts")) == 2
    assert _value(samples, "pantau_alert_deliveries_pending") == 2


def test_an_empty_store_reads_as_zeros_and_operational(settings: Settings, store: Store) -> None:
    metrics = Metrics(settings)
    with store.read() as tx:
        metrics.refresh(tx)

    samples = _samples(metrics.exposition())
    assert {
        s.labels["component"]
        for s in _find(samples, "pantau_component_status", status="operational")
    } == {c.id for c in settings.components}
    assert sum(s.value for s in _find(samples, "pantau_component_status")) == 4
    assert _value(samples, "pantau_open_incidents") == 0
    assert _value(samples, "pantau_alerts", state="firing") == 0
    assert _value(samples, "pantau_alerts", state="pending") == 0
    assert _value(samples, "pantau_alert_deliveries_pending") == 0


def test_store_gauges_have_no_samples_before_the_first_refresh(settings: Settings) -> None:
    samples = _samples(Metrics(settings).exposition())
    for name in (
        "pantau_component_status",
        "pantau_open_incidents",
        "pantau_alerts",
        "pantau_alert_deliveries_pending",
    ):
        assert _find(samples, name) == []


def test_a_later_refresh_moves_the_one_to_the_new_status(
    settings: Settings, store: Store, clock: ManualClock
) -> None:
    metrics = Metrics(settings)
    with store.tx() as tx:
        tx.set_component_status("login", "major_outage", at=clock.now(), cause="down")
    with store.read() as tx:
        metrics.refresh(tx)
    with store.tx() as tx:
        tx.set_component_status("login", "operational", at=clock.advance(60), cause="up")
    with store.read() as tx:
        metrics.refresh(tx)

    samples = _samples(metrics.exposition())
    login = {
        s.labels["status"]: s.value
        for s in _find(samples, "pantau_component_status", component="login")
    }
    assert login == {status: float(status == "operational") for status in COMPONENT_STATUSES}


# -- isolation ----------------------------------------------------------------------


def test_two_instances_in_one_process_do_not_clash(settings: Settings, clock: ManualClock) -> None:
    first, second = Metrics(settings), Metrics(settings)
    first.observe_result(_result(clock))
    first.observe_deliveries(DeliveryReport(sent=[1]))

    assert first.registry is not second.registry
    assert _find(_samples(first.exposition()), "pantau_probe_results_total") != []
    assert _find(_samples(second.exposition()), "pantau_probe_results_total") == []
    assert (
        _value(_samples(second.exposition()), "pantau_alert_deliveries_total", outcome="sent") == 0
    )
    global_names = {s.name for s in _samples(generate_latest(REGISTRY))}
    assert not any(name.startswith("pantau_") for name in global_names)


# -- serving -----------------------------------------------------------------------------


def test_metrics_are_served_over_http_and_the_port_is_released_on_close(
    settings: Settings, clock: ManualClock
) -> None:
    metrics = Metrics(settings)
    metrics.observe_result(_result(clock, ok=False, error=ErrorClass.TIMEOUT))
    server = metrics.serve("127.0.0.1", 0)
    try:
        assert server.port > 0
        response = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
    finally:
        server.close()
    server.close()  # idempotent

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    assert _value(samples, "pantau_probe_results_total", error_class="timeout") == 1
    assert _value(samples, "pantau_build_info", version=__version__) == 1

    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
    # The port is free again: a restarted engine can bind it.
    with Metrics(settings).serve("127.0.0.1", server.port) as again:
        assert again.port == server.port


def test_serving_binds_only_the_given_host(settings: Settings) -> None:
    with Metrics(settings).serve("127.0.0.1", 0) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5):
            pass
        # Linux routes all of 127/8 to loopback; a wildcard bind would accept this.
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection(("127.0.0.2", server.port), timeout=5),
        ):
            pass


def test_a_port_in_use_raises_oserror(settings: Settings) -> None:
    with Metrics(settings).serve("127.0.0.1", 0) as server, pytest.raises(OSError, match="in use"):
        Metrics(settings).serve("127.0.0.1", server.port)
