"""The service: a thin apscheduler wrapper around small steps.

The steps (:meth:`Engine.probe_once`, :meth:`Engine.deliver_pending`,
:meth:`Engine.publish`) return what they did and are called directly by tests;
:meth:`Engine.run` only schedules them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import random
import secrets
import signal
import socket
import ssl
import zlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path

import certifi
import httpx
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from checks import Check, CheckSettings, ProbeContext, ProbeResult, build_check
from checks.http import USER_AGENT
from monitor.alerts import AlertReport, DeliveryReport, Notifier, deliver_pending, evaluate_alerts
from monitor.clock import Clock
from monitor.config import EventSettings, Settings
from monitor.detect import ComponentChange, reconcile, record_result
from monitor.incidents import IncidentAutomation, IncidentEvent
from monitor.leader import AlwaysLeader, Leadership, leadership_for
from monitor.metrics import Metrics, MetricsServer
from monitor.rollup import catch_up
from monitor.rules import evaluate as evaluate_rules
from monitor.social.listen import ListenReport, SocialListener
from monitor.statements import StatementLibrary
from monitor.store import NodeRow, Store, StoreError

log = logging.getLogger(__name__)

#: Checks started per second, at most, when the service starts (their phase stays).
START_RATE = 50.0
#: Results written in one transaction at most.
MAX_BATCH = 200
#: How often due alert deliveries are looked for.
DELIVERY_INTERVAL = timedelta(seconds=1)
#: How often the hourly and daily rollups the page reads are brought up to date, and how
#: many hours a first rollup (a backfill) does per transaction.
ROLLUP_INTERVAL = timedelta(minutes=1)
#: What a ``pantau run`` process does: ``probe`` workers probe and write results (and
#: their region's check states); ``coordinator``s decide components across regions,
#: open and resolve incidents, alert, listen to the public, roll up and publish, and
#: only the leader among them does; ``all`` is both, on one machine.
ROLES = ("all", "probe", "coordinator")
#: How often a process writes its heartbeat (``pantau status`` lists the processes).
HEARTBEAT = timedelta(seconds=5)
#: A process that missed this many heartbeats is taken for gone.
MISSED_BEATS = 3
#: Nodes silent this long are forgotten by the leader.
FORGET_NODES = timedelta(days=1)
#: Transaction locks of the leader-only steps (PostgreSQL): two processes that both
#: believe they lead for a moment still decide and alert one after the other.
DETECT_LOCK = "pantau-detect"
EVALUATE_LOCK = "pantau-evaluate"


def effective_interval(
    check: CheckSettings, events: Iterable[EventSettings], now: datetime
) -> timedelta:
    """How often ``check`` runs at ``now``: faster while a surge event covers its component."""
    surging = any(
        event.kind == "surge" and event.active(now) and event.covers(check.component)
        for event in events
    )
    if not surging:
        return check.interval
    return check.surge_interval or check.interval / 3


def make_client(
    settings: Settings,
    *,
    fresh: bool = False,
    ssl_context: ssl.SSLContext | None = None,
    max_connections: int | None = None,
) -> httpx.AsyncClient:
    """The one shared HTTP client of a process (an SSL context costs ~20 ms of CPU to build,
    so pass the shared client's ``ssl_context`` when making the ``fresh`` one).

    It keeps no cookies: each probe starts as a new visitor, and a session cookie from
    one target never reaches another probe. The ``fresh`` client keeps no connections
    alive, for checks with ``fresh_connection`` that measure connect and TLS time.
    """
    connections = max_connections or settings.probe.concurrency * 2
    limits = httpx.Limits(
        max_connections=connections,
        max_keepalive_connections=0 if fresh else min(connections, 20),
    )
    return httpx.AsyncClient(
        headers={"User-Agent": USER_AGENT},
        limits=limits,
        follow_redirects=False,
        trust_env=False,
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        verify=ssl_context or ssl.create_default_context(cafile=certifi.where()),
    )


@dataclass(frozen=True, slots=True)
class ProbeClients:
    """The HTTP clients of a process: a few shards sharing one SSL context, and the
    fresh-connection client when some check needs it.

    httpcore's pool scans every connection it holds for each request, so one pool of
    100 connections costs about three times the CPU per probe of ten pools of ten
    (measured by ``bench/probe_throughput.py``). Each check always uses the same shard.
    """

    shards: tuple[httpx.AsyncClient, ...]
    fresh: httpx.AsyncClient | None = None

    def for_check(self, check_id: str) -> httpx.AsyncClient:
        return self.shards[zlib.crc32(check_id.encode()) % len(self.shards)]


#: Connections per client shard.
SHARD_CONNECTIONS = 10


@contextlib.asynccontextmanager
async def probe_clients(settings: Settings) -> AsyncIterator[ProbeClients]:
    """Open the process's :class:`ProbeClients` (one SSL context for all); closed on exit."""
    context = ssl.create_default_context(cafile=certifi.where())
    connections = settings.probe.concurrency * 2
    count = max(1, min(math.ceil(connections / SHARD_CONNECTIONS), 32))
    per_shard = max(SHARD_CONNECTIONS, math.ceil(connections / count))
    async with contextlib.AsyncExitStack() as stack:
        shards = [
            await stack.enter_async_context(
                make_client(settings, ssl_context=context, max_connections=per_shard)
            )
            for _ in range(count)
        ]
        fresh = None
        if needs_fresh_client(settings):
            fresh = await stack.enter_async_context(
                make_client(settings, fresh=True, ssl_context=context)
            )
        yield ProbeClients(tuple(shards), fresh)


def needs_fresh_client(settings: Settings) -> bool:
    """True when some check asks for a new connection on every probe."""
    return any(getattr(check, "fresh_connection", False) for check in settings.checks)


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """What :meth:`Engine.probe_once` did."""

    result: ProbeResult
    change: ComponentChange | None = None
    incident: IncidentEvent | None = None
    #: The check's status in this region after the result: unknown, up, degraded or down.
    check_status: str = "unknown"
    #: False when the store was unavailable: the result waits in memory (:class:`StoreHealth`).
    stored: bool = True


@dataclass(slots=True)
class StoreHealth:
    """Results kept in memory while the store cannot be written (disk full, read only,
    locked beyond the busy timeout, server away), oldest first, up to ``capacity``; older
    ones are dropped beyond it, and counted. Written, in order, when the store returns."""

    capacity: int
    backlog: deque[ProbeResult] = field(default_factory=deque)
    #: Results dropped because the backlog was full; written late from it; failed writes.
    dropped: int = 0
    written_late: int = 0
    errors: int = 0
    #: Since when the store has failed (None while it works), and its last error.
    down_since: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None

    def keep(self, results: Iterable[ProbeResult]) -> int:
        """Buffer ``results``; how many older ones were dropped to make room."""
        dropped = 0
        for result in results:
            if len(self.backlog) >= self.capacity:
                self.backlog.popleft()
                dropped += 1
            self.backlog.append(result)
        self.dropped += dropped
        return dropped


@dataclass(slots=True)
class EngineListener:
    """Optional callbacks for the CLI and the demo to narrate what happens."""

    on_outcome: Callable[[ProbeOutcome], None] | None = None
    on_delivery: Callable[[DeliveryReport], None] | None = None
    on_publish: Callable[[Path], None] | None = None
    on_alerts: Callable[[AlertReport], None] | None = None
    on_social: Callable[[ListenReport], None] | None = None


@dataclass(slots=True)
class _Counters:
    probes: int = 0
    store_errors: int = 0
    publishes: int = 0
    events: list[IncidentEvent] = field(default_factory=list)


class Engine:
    """Probes, detection, incidents, alerts and publishing for one process."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        clock: Clock,
        client: httpx.AsyncClient | ProbeClients,
        notifier: Notifier,
        publisher: Callable[[Store, Settings, datetime], Path] | None = None,
        listener: EngineListener | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        fresh_client: httpx.AsyncClient | None = None,
        metrics: Metrics | None = None,
        social: SocialListener | None = None,
        role: str = "all",
        leadership: Leadership | None = None,
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        self.settings = settings
        self.store = store
        self.clock = clock
        self.clients = (
            client if isinstance(client, ProbeClients) else ProbeClients((client,), fresh_client)
        )
        self.notifier = notifier
        self.publisher = publisher
        self.listener = listener or EngineListener()
        #: Waits between re-probes; tests inject one that steps their clock.
        self.sleep = sleep
        self._queue: list[tuple[ProbeResult, asyncio.Future[ProbeOutcome]]] = []
        #: Results waiting in memory for the store to come back.
        self.health = StoreHealth(capacity=settings.storage.buffer)
        self._writer: asyncio.Task[None] | None = None
        self.checks: dict[str, Check] = {c.id: build_check(c) for c in settings.checks}
        self.automation = IncidentAutomation(
            settings, StatementLibrary(extra_dir=self._templates_dir())
        )
        self.counters = _Counters()
        self.publish_requested = asyncio.Event()
        #: Prometheus metrics, served by :meth:`run` when ``[metrics] listen`` is set.
        self.metrics = metrics
        #: The public signal (``[social] sources``), polled by :meth:`run`.
        self.social = social
        self.role = role
        self.leadership: Leadership = leadership or AlwaysLeader()
        #: This process in the ``node`` table.
        self.node_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.started_at = clock.now()
        self._beat_at: datetime | None = None
        self._beat_leading: bool | None = None

    @property
    def probes(self) -> bool:
        """Whether this process probes (roles ``all`` and ``probe``)."""
        return self.role != "coordinator"

    @property
    def coordinates(self) -> bool:
        """Whether this process contends to lead (roles ``all`` and ``coordinator``)."""
        return self.role != "probe"

    @property
    def leading(self) -> bool:
        """Whether this process runs the leader-only steps now."""
        return self.coordinates and self.leadership.is_leader

    def _templates_dir(self) -> Path | None:
        folder = self.settings.incidents.templates_dir
        return self.settings.resolve_path(folder) if folder else None

    # -- steps -------------------------------------------------------------
    async def probe_once(self, check_id: str) -> ProbeOutcome:
        """Run one check and record it; after a failure, re-probe up to ``retries`` times
        ``retry_delay`` apart until it passes or is confirmed down. Every attempt is stored
        (and counted by detection) in its own transaction; returns the last attempt's outcome.
        """
        check = self.checks[check_id]
        ctx = ProbeContext(
            client=self.clients.for_check(check_id),
            clock=self.clock,
            region=self.settings.probe.region,
            fresh_client=self.clients.fresh,
        )
        attempt = 1
        while True:
            result = await check.run(ctx)
            if attempt > 1:
                result = dataclasses.replace(result, attempt=attempt)
            outcome = await self._record(result)
            done = result.ok or outcome.check_status == "down"
            if done or attempt > check.settings.retries:
                return outcome
            attempt += 1
            await self.sleep(check.settings.retry_delay.total_seconds())

    async def _record(self, result: ProbeResult) -> ProbeOutcome:
        """Commit ``result`` (with detection and incidents) and return what it changed.

        Results are written in batches by group commit: while one batch is being written,
        results arriving meanwhile queue up and go together in the next transaction, so
        under load there are few commits and with a single probe there is no waiting.
        """
        future: asyncio.Future[ProbeOutcome] = asyncio.get_running_loop().create_future()
        self._queue.append((result, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_queued())
        outcome = await future
        self.counters.probes += 1
        if self.metrics is not None:
            self.metrics.observe_result(result)
        if outcome.change is not None:
            self.publish_requested.set()
        if outcome.incident is not None:
            self.counters.events.append(outcome.incident)
        if self.listener.on_outcome:
            self.listener.on_outcome(outcome)
        return outcome

    async def _write_queued(self) -> None:
        """Write queued results in batches until the queue is empty.

        While the store cannot be written, results go to the bounded backlog of
        :attr:`health` (probing goes on); each later batch first tries to write the
        backlog, oldest first, so results reach the store in the order they were taken.
        """
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            results = [r for r, _ in batch]
            if self.health.backlog:
                await self.flush_backlog()
            outcomes: list[ProbeOutcome] | None = None
            if not self.health.backlog:
                try:
                    outcomes = await asyncio.to_thread(self._commit, results)
                except StoreError as exc:
                    self._store_failed(exc)
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                else:
                    self._store_works()
            if outcomes is None:
                self._buffer(results)
                outcomes = [ProbeOutcome(r, stored=False) for r in results]
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)

    async def flush_backlog(self) -> int:
        """Write buffered results, oldest first, until none is left or the store fails
        again; how many were written."""
        written = 0
        while self.health.backlog:
            chunk = [
                self.health.backlog[i] for i in range(min(MAX_BATCH, len(self.health.backlog)))
            ]
            try:
                outcomes = await asyncio.to_thread(self._commit, chunk)
            except StoreError as exc:
                self._store_failed(exc)
                return written
            for _ in chunk:
                self.health.backlog.popleft()
            written += len(chunk)
            self.health.written_late += len(chunk)
            for outcome in outcomes:
                if outcome.change is not None:
                    self.publish_requested.set()
                if outcome.incident is not None:
                    self.counters.events.append(outcome.incident)
        if written:
            self._store_works()
        if self.metrics is not None:
            self.metrics.set_buffered(len(self.health.backlog))
        return written

    async def retry_backlog(self) -> None:
        """Try the buffered results again when no write is under way (the writer task
        alone writes, so a result is never written twice)."""
        if not self.health.backlog:
            return
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._flush_only())
        await asyncio.wait({self._writer})

    async def _flush_only(self) -> None:
        await self.flush_backlog()
        if self._queue:
            await self._write_queued()

    def _buffer(self, results: list[ProbeResult]) -> None:
        dropped = self.health.keep(results)
        if self.metrics is not None:
            self.metrics.set_buffered(len(self.health.backlog))
            self.metrics.observe_dropped(dropped)
        if dropped and self.health.dropped == dropped:  # said once, when it starts
            log.error(
                "result buffer full (%s): the oldest results are being dropped",
                self.health.capacity,
            )

    def count_store_error(self) -> None:
        """Count a write or step the store refused (the counters and ``/metrics``)."""
        self.counters.store_errors += 1
        if self.metrics is not None:
            self.metrics.observe_store_error()

    def _store_failed(self, exc: StoreError) -> None:
        health = self.health
        now = self.clock.now()
        health.errors += 1
        health.last_error, health.last_error_at = str(exc), now
        self.count_store_error()
        if health.down_since is None:  # logged once per outage, not once per write
            health.down_since = now
            log.error(
                "the store cannot be written (%s): probing goes on, results are kept in "
                "memory (up to %s) and written when it returns",
                exc,
                health.capacity,
            )

    def _store_works(self) -> None:
        health = self.health
        if health.down_since is None or health.backlog:
            return
        seconds = (self.clock.now() - health.down_since).total_seconds()
        log.warning(
            "the store works again after %.0f s: %s buffered results written, %s dropped",
            seconds,
            health.written_late,
            health.dropped,
        )
        health.down_since = None

    def _commit(self, results: list[ProbeResult]) -> list[ProbeOutcome]:
        """Record ``results`` in order in one transaction."""
        now = self.clock.now()
        outcomes = []
        decide = self.role != "probe"  # probe workers leave components to the coordinator
        with self.store.tx() as tx:
            if decide:
                tx.serialize(DETECT_LOCK)
            for result in results:
                change = record_result(tx, self.settings, result, components=decide)
                event = self.automation.handle(tx, change, now=now) if change else None
                state = tx.check_state(result.check_id, result.component_id, result.region)
                outcomes.append(ProbeOutcome(result, change, event, check_status=state.status))
        for outcome in outcomes:
            if log.isEnabledFor(logging.DEBUG):  # what is durable now (for chaos runs)
                result = outcome.result
                log.debug(
                    "result committed check=%s region=%s started_at=%s attempt=%s",
                    result.check_id,
                    result.region,
                    result.started_at.isoformat(),
                    result.attempt,
                )
            _log_outcome(outcome)
        return outcomes

    def lead(self) -> bool:
        """Contend for leadership (coordinators) and write this process's heartbeat when
        due; whether this process leads now (blocking; never raises for the store)."""
        was = self.leading
        if self.coordinates:
            self.leadership.step()
        leading = self.leading
        if leading != was and not leading:
            log.warning("this coordinator no longer leads")
        if self.metrics is not None:
            self.metrics.set_leader(leading)
        now = self.clock.now()
        due = self._beat_at is None or now - self._beat_at >= HEARTBEAT
        if due or leading != self._beat_leading:
            try:
                self.heartbeat(now)
            except StoreError as exc:
                if self.health.down_since is None:
                    log.error("heartbeat not written: %s", exc)
                else:  # the store's outage is logged already
                    log.debug("heartbeat not written: %s", exc)
        return leading

    def heartbeat(self, now: datetime, *, stopped: bool = False) -> None:
        """Write this process's row in the ``node`` table (blocking)."""
        leading = self.leading and not stopped
        health = self.health
        node = NodeRow(
            buffered=len(health.backlog),
            dropped=health.dropped,
            store_errors=health.errors,
            last_store_error=health.last_error,
            last_store_error_at=health.last_error_at,
            id=self.node_id,
            role=self.role,
            region=self.settings.probe.region,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=self.started_at,
            heartbeat_at=now,
            leader=leading,
            stopped_at=now if stopped else None,
        )
        with self.store.tx() as tx:
            tx.heartbeat(node)
            if leading:
                tx.forget_nodes(before=now - FORGET_NODES)
        self._beat_at, self._beat_leading = now, leading

    def detect(self) -> list[IncidentEvent]:
        """Decide every component from the check states of all regions now, and open or
        resolve incidents accordingly (blocking; the leader's step)."""
        now = self.clock.now()
        events = []
        with self.store.tx() as tx:
            tx.serialize(DETECT_LOCK)
            for change in reconcile(tx, self.settings, now=now):
                log.info(
                    "component changed component=%s from=%s to=%s (across regions)",
                    change.component_id,
                    change.from_status,
                    change.to_status,
                )
                event = self.automation.handle(tx, change, now=now)
                if event is not None:
                    events.append(event)
        for event in events:
            _log_outcome_event(event)
        self.counters.events.extend(events)
        return events

    def evaluate_alerts(self) -> AlertReport:
        """Evaluate the alert rules now and step alerts and their groups (blocking)."""
        now = self.clock.now()
        with self.store.tx() as tx:
            tx.serialize(EVALUATE_LOCK)
            conditions = evaluate_rules(tx, self.settings, now=now)
            report = evaluate_alerts(tx, self.settings, conditions, now=now)
            if self.metrics is not None:
                self.metrics.refresh(tx)
        if self.listener.on_alerts and (report.fired or report.resolved or report.messages):
            self.listener.on_alerts(report)
        return report

    def listen(self) -> ListenReport | None:
        """Poll the social sources and detect complaint spikes (blocking)."""
        if self.social is None:
            return None
        report = self.social.poll_once()
        if report.spikes:
            self.publish_requested.set()
        if self.listener.on_social:
            self.listener.on_social(report)
        return report

    def deliver_pending(self) -> DeliveryReport:
        """Send due alerts (blocking; the runtime calls it in a worker thread)."""
        now = self.clock.now()
        with self.store.read() as tx:
            alive = {
                node.id
                for node in tx.nodes(since=now - HEARTBEAT * MISSED_BEATS)
                if node.stopped_at is None
            }
        report = deliver_pending(
            self.store, self.settings, self.notifier, now=now, claimer=self.node_id, alive=alive
        )
        if self.metrics is not None:
            self.metrics.observe_deliveries(report)
        if self.listener.on_delivery and (report.sent or report.failed or report.retrying):
            self.listener.on_delivery(report)
        return report

    def rollup(self) -> int:
        """Bring the hourly and daily rollups up to now (blocking); return rows written."""
        return catch_up(self.store, self.settings, now=self.clock.now)

    def publish(self) -> Path | None:
        """Render the status page (blocking). None when no publisher is configured."""
        if self.publisher is None:
            return None
        path = self.publisher(self.store, self.settings, self.clock.now())
        self.counters.publishes += 1
        if self.listener.on_publish:
            self.listener.on_publish(path)
        return path

    # -- the service ---------------------------------------------------------
    async def run(
        self, *, duration: float | None = None, stop: asyncio.Event | None = None
    ) -> None:
        """Run until ``stop`` is set, a signal arrives, or ``duration`` seconds pass.

        On the way out: no new probes start, in-flight ones finish and are committed,
        due alerts are delivered and the site is published once more.
        """
        stop = stop or asyncio.Event()
        runner = _Runner(self, stop)
        try:
            await runner.serve(duration)
        finally:
            await asyncio.to_thread(self.leadership.release)


def _log_outcome(outcome: ProbeOutcome) -> None:
    change, event = outcome.change, outcome.incident
    if change is not None:
        log.info(
            "component changed component=%s from=%s to=%s",
            change.component_id,
            change.from_status,
            change.to_status,
        )
    if event is not None:
        _log_outcome_event(event)


def _log_outcome_event(event: IncidentEvent) -> None:
    log.info(
        "incident %s id=%s components=%s",
        event.event,
        event.incident_id,
        ",".join(event.components),
    )


def service_engine(
    settings: Settings,
    store: Store,
    *,
    clients: ProbeClients,
    listener: EngineListener | None = None,
    role: str = "all",
) -> Engine:
    """The engine as ``pantau run`` (and the demo) runs it: the system clock, Apprise,
    the status page published to ``[site] output_dir``, and leadership contended for
    on the store (coordinators)."""
    from monitor.alerts import AppriseNotifier
    from monitor.clock import SystemClock
    from monitor.publish import publish_site

    clock = SystemClock()
    return Engine(
        settings,
        store,
        clock=clock,
        client=clients,
        notifier=AppriseNotifier(timeout=settings.alerts.timeout.total_seconds()),
        publisher=lambda s, c, now: publish_site(s, c, now=now),
        listener=listener,
        metrics=Metrics(settings) if settings.metrics.listen else None,
        social=(
            SocialListener(settings, store, clock=clock)
            if settings.social.sources and role != "probe"
            else None
        ),
        role=role,
        leadership=leadership_for(store.url, pool=store.pool) if role != "probe" else None,
    )


class _Runner:
    """Owns the scheduler and the in-flight bookkeeping of :meth:`Engine.run`."""

    def __init__(self, engine: Engine, stop: asyncio.Event) -> None:
        self.engine = engine
        self.stop = stop
        self.inflight: set[asyncio.Task[object]] = set()
        self.semaphore = asyncio.Semaphore(engine.settings.probe.concurrency)
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self.intervals: dict[str, timedelta] = {}

    async def serve(self, duration: float | None) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop.set)
        server = self._serve_metrics()
        await self._node_job()  # a coordinator alone leads from its first evaluation
        self._schedule()
        self.scheduler.start()
        publisher = asyncio.create_task(self._publish_loop())
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=duration)
        finally:
            self.stop.set()
            # Pause, let running jobs finish, then shut down: shutting down first would
            # cancel a delivery pass mid-send.
            self.scheduler.pause()
            await self._drain()
            self.scheduler.shutdown(wait=False)
            self.engine.publish_requested.set()  # wake the publisher so it sees stop
            await asyncio.wait({publisher}, timeout=60)
            if not publisher.done():
                publisher.cancel()
            await self.engine.retry_backlog()
            if self.engine.health.backlog:
                log.error(
                    "stopping with %s results the store never took: they are lost",
                    len(self.engine.health.backlog),
                )
            await self._final_steps()
            await self._in_thread(self._stopped, "the last heartbeat")
            if server is not None:
                server.close()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)

    def _serve_metrics(self) -> MetricsServer | None:
        settings, metrics = self.engine.settings, self.engine.metrics
        if metrics is None or settings.metrics.listen is None:
            return None
        host, port = settings.metrics.address
        try:
            server = metrics.serve(host, port)
        except OSError as exc:  # probing matters more than its metrics: go on without them
            log.error("cannot serve metrics on %s: %s", settings.metrics.listen, exc.strerror)
            return None
        log.info("metrics on http://%s:%s/metrics", host, server.port)
        return server

    def _schedule(self) -> None:
        settings = self.engine.settings
        now = datetime.now(UTC)
        # First runs are spread so that many checks never start in the same second (and
        # then wait on the concurrency limit) every interval; a few checks start at once.
        spread = max(settings.probe.jitter.total_seconds(), len(self.engine.checks) / START_RATE)
        node_interval = (
            settings.alerts.evaluation_interval / 2 if self.engine.coordinates else HEARTBEAT
        )
        self.scheduler.add_job(
            self._node_job,
            IntervalTrigger(seconds=node_interval.total_seconds()),
            id="node",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=5,
        )
        if self.engine.probes:
            self._schedule_probes(now, spread)
        if self.engine.coordinates:
            self._schedule_coordination(now)

    def _schedule_probes(self, now: datetime, spread: float) -> None:
        settings = self.engine.settings
        for check_id, check in self.engine.checks.items():
            interval = effective_interval(check.settings, settings.events, now)
            self.intervals[check_id] = interval
            window = min(spread, interval.total_seconds())
            first = now + timedelta(seconds=random.uniform(0, window))
            self.scheduler.add_job(
                self._probe_job,
                self._trigger(interval),
                args=[check_id],
                id=f"probe:{check_id}",
                next_run_time=first,
                max_instances=1,  # a slow target never piles up probes of itself
                coalesce=True,  # after a stall, run once, not once per missed slot
                misfire_grace_time=max(int(interval.total_seconds()), 1),
            )
        # Surges change the probing pace when they start and when they end.
        boundaries = {e.start for e in settings.events} | {e.end for e in settings.events}
        for moment in sorted(b for b in boundaries if b > now):
            self.scheduler.add_job(
                self._reschedule, DateTrigger(run_date=moment), misfire_grace_time=60
            )

    def _schedule_coordination(self, now: datetime) -> None:
        """The leader-only jobs (each returns at once while this process does not lead)."""
        settings = self.engine.settings
        self.scheduler.add_job(
            self._evaluation_job,
            IntervalTrigger(seconds=settings.alerts.evaluation_interval.total_seconds()),
            id="evaluate",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=5,
        )
        if self.engine.social is not None:
            self.scheduler.add_job(
                self._social_job,
                IntervalTrigger(seconds=settings.social.poll_interval.total_seconds()),
                id="social",
                next_run_time=now,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=30,
            )
        self.scheduler.add_job(
            self._delivery_job,
            IntervalTrigger(seconds=DELIVERY_INTERVAL.total_seconds()),
            id="deliver",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=5,
        )
        self.scheduler.add_job(
            self._rollup_job,
            IntervalTrigger(seconds=ROLLUP_INTERVAL.total_seconds()),
            id="rollup",
            next_run_time=now,  # a first backfill starts at once
            max_instances=1,
            coalesce=True,
            misfire_grace_time=30,
        )

    def _trigger(self, interval: timedelta) -> IntervalTrigger:
        jitter = min(
            self.engine.settings.probe.jitter.total_seconds(), interval.total_seconds() / 2
        )
        return IntervalTrigger(seconds=interval.total_seconds(), jitter=jitter or None)

    def _reschedule(self) -> None:
        """Apply the intervals in force now to every check whose pace changed."""
        now = datetime.now(UTC)
        for check_id, check in self.engine.checks.items():
            interval = effective_interval(check.settings, self.engine.settings.events, now)
            if interval != self.intervals.get(check_id):
                self.intervals[check_id] = interval
                self.scheduler.reschedule_job(f"probe:{check_id}", trigger=self._trigger(interval))
                log.info(
                    "probe pace changed check=%s interval=%ss", check_id, interval.total_seconds()
                )

    async def _probe_job(self, check_id: str) -> None:
        if self.stop.is_set():
            return
        task = asyncio.current_task()
        assert task is not None
        self.inflight.add(task)
        try:
            async with self.semaphore:
                await self.engine.probe_once(check_id)
        except StoreError as exc:
            self.engine.count_store_error()
            log.error("result not stored check=%s error=%s", check_id, exc)
        except Exception:
            log.exception("probe step failed check=%s", check_id)
        finally:
            self.inflight.discard(task)

    async def _in_thread(self, step: Callable[[], object], what: str) -> None:
        """Run a blocking step in a worker thread as an in-flight job; a failure is logged
        and never stops the service (probing above all)."""
        task = asyncio.current_task()
        if task is not None:
            self.inflight.add(task)
        try:
            await asyncio.to_thread(step)
        except StoreError as exc:  # the database is away: said in one line, tried again later
            self.engine.count_store_error()
            log.error("%s failed: %s", what, exc)
        except Exception:
            log.exception("%s failed", what)
        finally:
            if task is not None:
                self.inflight.discard(task)

    async def _node_job(self) -> None:
        """Contend for leadership and beat; a new leader publishes soon."""
        was = self.engine.leading
        task = asyncio.current_task()
        if task is not None:
            self.inflight.add(task)  # shutdown waits for it rather than cancel it mid-step
        try:
            leading = await asyncio.to_thread(self.engine.lead)
        except Exception:
            log.exception("leadership step failed")
            return
        finally:
            if task is not None:
                self.inflight.discard(task)
        if leading and not was:
            self.engine.publish_requested.set()
        await self.engine.retry_backlog()

    def _stopped(self) -> None:
        self.engine.heartbeat(self.engine.clock.now(), stopped=True)

    async def _evaluation_job(self) -> None:
        if not self.engine.leading:
            return
        events: list[IncidentEvent] = []
        await self._in_thread(lambda: events.extend(self.engine.detect()), "detection")
        if events:
            self.engine.publish_requested.set()
        await self._in_thread(self.engine.evaluate_alerts, "alert evaluation")

    async def _social_job(self) -> None:
        if self.engine.leading:
            await self._in_thread(self.engine.listen, "listening to the public")

    async def _delivery_job(self) -> None:
        if self.engine.leading:
            await self._in_thread(self.engine.deliver_pending, "alert delivery pass")

    async def _rollup_job(self) -> None:
        if self.engine.leading:
            await self._in_thread(self.engine.rollup, "rollup")

    async def _publish_loop(self) -> None:
        """Publish every ``publish_interval`` and soon after each state change, until stop.

        It ends by itself when ``stop`` is set (cancelling it instead could be swallowed
        by ``wait_for`` on Python 3.11 when the event fires at the same moment).
        """
        interval = self.engine.settings.site.publish_interval.total_seconds()
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.engine.publish_requested.wait(), timeout=interval)
            if self.stop.is_set():
                return
            self.engine.publish_requested.clear()
            await self._publish_safely()

    async def _publish_safely(self) -> None:
        if not self.engine.leading:
            return
        try:
            await asyncio.to_thread(self.engine.publish)
        except StoreError as exc:
            log.error("publishing the status page failed: %s", exc)
        except Exception:
            log.exception("publishing the status page failed")

    async def _drain(self) -> None:
        probe_timeout = max(
            (c.settings.timeout.total_seconds() for c in self.engine.checks.values()), default=0
        )
        timeout = max(probe_timeout, self.engine.settings.alerts.timeout.total_seconds()) + 5
        pending = {t for t in self.inflight if not t.done()}
        if pending:
            log.info("waiting for in-flight jobs count=%s", len(pending))
            await asyncio.wait(pending, timeout=timeout)

    async def _final_steps(self) -> None:
        if not self.engine.leading:
            return
        await self._evaluation_job()
        await self._delivery_job()
        await self._rollup_job()  # the last page shows the last results
        await self._publish_safely()
