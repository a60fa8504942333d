"""Prometheus metrics of ``pantau run``, in a registry of their own.

Each :class:`Metrics` owns a ``CollectorRegistry`` (never prometheus_client's global
one), so tests and several engines in one process do not clash.

Series and their labels:

- ``pantau_probe_duration_seconds`` (histogram; check, component, region): the latency
  of every probe run that measured one, failed runs included.
- ``pantau_probe_results_total`` (counter; check, component, region, result,
  error_class): ``result`` is ``ok``, ``degraded`` or ``failed``; ``error_class`` is an
  :class:`~checks.base.ErrorClass` value, or ``none`` (:data:`NO_ERROR`) when the result
  names no error. ``none`` rather than an empty value, because Prometheus treats an
  empty label as an absent one.
- ``pantau_component_status`` (gauge; component, status): per configured component, 1
  for the status the probes see (the ``component_state`` row, ``operational`` before the
  first one) and 0 for the other four. Incident-declared statuses are not included.
- ``pantau_open_incidents``, ``pantau_alerts`` (state: pending, firing) and
  ``pantau_alert_deliveries_pending`` (gauges): read from the store by :meth:`Metrics.refresh`.
- ``pantau_alert_deliveries_total`` (counter; outcome: sent, retrying, failed).
- ``pantau_build_info`` (gauge, always 1; version).

Label values come only from the config (check, component and region ids) and from
fixed vocabularies, never from free text such as error details or URLs, so the
number of series is bounded by the config.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import monitor
from checks.base import ProbeResult
from monitor.alerts import DeliveryReport
from monitor.config import Settings
from monitor.detect import COMPONENT_STATUSES, OPERATIONAL
from monitor.store import StoreTx

log = logging.getLogger(__name__)

#: Histogram buckets in seconds, for web probes: fast pages up to the longest timeouts.
PROBE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0)
#: ``error_class`` of a result that names no error.
NO_ERROR = "none"
ALERT_STATES = ("pending", "firing")
DELIVERY_OUTCOMES = ("sent", "retrying", "failed")
_PROBE_LABELS = ("check", "component", "region")


def _version() -> str:
    return str(getattr(monitor, "__version__", "0.1.0"))


def result_label(result: ProbeResult) -> str:
    """``ok``, ``degraded`` or ``failed``: the ``result`` label of a probe result."""
    if not result.ok:
        return "failed"
    return "degraded" if result.degraded else "ok"


@dataclass(frozen=True, slots=True)
class StoreSnapshot:
    """What one :meth:`Metrics.refresh` read from the store."""

    #: Configured component id to its status, in config order.
    component_status: Mapping[str, str]
    open_incidents: int
    #: Live alerts per state (``pending``, ``firing``).
    alerts: Mapping[str, int]
    deliveries_pending: int


def read_snapshot(tx: StoreTx, components: tuple[str, ...]) -> StoreSnapshot:
    """Read the store-derived gauges for the configured ``components``."""
    rows = tx.component_states()
    live = [alert.state for alert in tx.live_alerts()]
    return StoreSnapshot(
        component_status={
            cid: rows[cid].status if cid in rows else OPERATIONAL for cid in components
        },
        open_incidents=len(tx.incidents(unresolved=True)),
        alerts={state: live.count(state) for state in ALERT_STATES},
        deliveries_pending=len(tx.deliveries(status=["pending"])),
    )


class _StoreGauges(Collector):
    """The gauges read from the store, exposed from one immutable snapshot.

    Swapping a whole snapshot (instead of setting gauges one by one) means a scrape
    never sees a component with two statuses, or none, halfway through a refresh.
    Before the first refresh the families have no samples: unknown is not zero.
    """

    def __init__(self) -> None:
        self.snapshot: StoreSnapshot | None = None

    def collect(self) -> Iterator[Metric]:
        snapshot = self.snapshot  # read once per scrape
        status = GaugeMetricFamily(
            "pantau_component_status",
            "1 for the status the probes see for a component, 0 for the others.",
            labels=["component", "status"],
        )
        incidents = GaugeMetricFamily("pantau_open_incidents", "Unresolved incidents.")
        alerts = GaugeMetricFamily("pantau_alerts", "Live alerts by state.", labels=["state"])
        pending = GaugeMetricFamily(
            "pantau_alert_deliveries_pending", "Alert deliveries waiting to be sent."
        )
        if snapshot is not None:
            for component, current in snapshot.component_status.items():
                for candidate in COMPONENT_STATUSES:
                    status.add_metric([component, candidate], float(candidate == current))
            incidents.add_metric([], snapshot.open_incidents)
            for state, count in snapshot.alerts.items():
                alerts.add_metric([state], count)
            pending.add_metric([], snapshot.deliveries_pending)
        yield from (status, incidents, alerts, pending)


class MetricsServer:
    """``/metrics`` served over HTTP from a daemon thread until :meth:`close`."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self._server, self._thread = start_http_server(port, host, registry=registry)
        #: The bound port (the one picked by the OS when asked for port 0).
        self.port: int = self._server.server_port
        self._lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        """Stop serving, release the port and join the thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        log.info("metrics server stopped port=%s", self.port)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Metrics:
    """Metrics of one process in its own CollectorRegistry (never the global one, so
    tests and several engines in one process do not clash)."""

    def __init__(self, settings: Settings) -> None:
        self.registry = CollectorRegistry()
        self._components = tuple(component.id for component in settings.components)
        self._durations = Histogram(
            "pantau_probe_duration_seconds",
            "Latency of probe runs.",
            _PROBE_LABELS,
            buckets=PROBE_BUCKETS,
            registry=self.registry,
        )
        self._results = Counter(
            "pantau_probe_results_total",
            "Probe runs by result (ok, degraded, failed) and error class (none when none).",
            (*_PROBE_LABELS, "result", "error_class"),
            registry=self.registry,
        )
        self._deliveries = Counter(
            "pantau_alert_deliveries_total",
            "Alert delivery attempts by outcome.",
            ("outcome",),
            registry=self.registry,
        )
        for outcome in DELIVERY_OUTCOMES:  # zero from the start, so rate() sees the first one
            self._deliveries.labels(outcome)
        build = Gauge(
            "pantau_build_info", "Pantau's version.", ("version",), registry=self.registry
        )
        build.labels(_version()).set(1)
        self._store_gauges = _StoreGauges()
        self.registry.register(self._store_gauges)
        self._leader = Gauge(
            "pantau_leader",
            "1 while this process leads the coordinators (evaluates, alerts, publishes).",
            registry=self.registry,
        )
        self._buffered = Gauge(
            "pantau_results_buffered",
            "Results kept in memory while the store cannot be written.",
            registry=self.registry,
        )
        self._dropped = Counter(
            "pantau_results_dropped_total",
            "Results dropped because the store was away and the buffer full.",
            registry=self.registry,
        )
        self._store_errors = Counter(
            "pantau_store_errors_total",
            "Results or steps that could not be written to the store.",
            registry=self.registry,
        )

    def set_buffered(self, count: int) -> None:
        self._buffered.set(count)

    def observe_dropped(self, count: int) -> None:
        if count:
            self._dropped.inc(count)

    def set_leader(self, leading: bool) -> None:
        self._leader.set(1 if leading else 0)

    def observe_store_error(self) -> None:
        self._store_errors.inc()

    def observe_result(self, result: ProbeResult) -> None:
        """Count a probe run and, when it measured one, observe its latency."""
        labels = (result.check_id, result.component_id, result.region)
        error = result.error.value if result.error is not None else NO_ERROR
        self._results.labels(*labels, result_label(result), error).inc()
        if result.latency_ms is not None:
            self._durations.labels(*labels).observe(result.latency_ms / 1000)

    def observe_deliveries(self, report: DeliveryReport) -> None:
        """Count what one pass of ``deliver_pending`` did."""
        for outcome, ids in (
            ("sent", report.sent),
            ("retrying", report.retrying),
            ("failed", report.failed),
        ):
            self._deliveries.labels(outcome).inc(len(ids))

    def refresh(self, tx: StoreTx) -> None:
        """Re-read the store-derived gauges; a scrape sees all of them from one refresh."""
        self._store_gauges.snapshot = read_snapshot(tx, self._components)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)

    def serve(self, host: str, port: int) -> MetricsServer:
        """Serve ``/metrics`` on exactly ``host``; port 0 picks a free port.

        Raises OSError when the address cannot be bound (in use, not local).
        """
        server = MetricsServer(self.registry, host, port)
        log.info("metrics served host=%s port=%s", host, server.port)
        return server
