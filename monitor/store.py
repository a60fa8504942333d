"""The store: one API over SQLModel for SQLite (default) and PostgreSQL.

Rows are plain SQLModel tables. Every write that belongs together goes through
one :class:`StoreTx` (one database transaction), so a state change is durable
with its cause. Timestamps are stored in UTC and always read back aware.
Detection and incident logic live in the engine, not here.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Index, UniqueConstraint, delete, event, func, text, update
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import DateTime, TypeDecorator
from sqlmodel import Field, Session, SQLModel, col, create_engine, select

from checks.base import ProbeResult

log = logging.getLogger(__name__)


class StoreError(Exception):
    """The database could not be reached or refused an operation."""


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone, so we store naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(*, index: bool = False, nullable: bool = False) -> Any:
    return Field(sa_type=UTCDateTime, index=index, nullable=nullable)


class ProbeResultRow(SQLModel, table=True):
    """One run of one check, as stored."""

    __tablename__ = "probe_result"
    __table_args__ = (Index("ix_probe_result_check_time", "check_id", "started_at"),)

    id: int | None = Field(default=None, primary_key=True)
    check_id: str = Field(max_length=64)
    component_id: str = Field(max_length=64, index=True)
    region: str = Field(max_length=64)
    started_at: datetime = _ts(index=True)
    ok: bool
    error: str | None = Field(default=None, max_length=32)
    detail: str = ""
    status_code: int | None = None
    latency_ms: float | None = None
    step: str | None = Field(default=None, max_length=128)
    attempt: int = 1
    degraded: bool = False
    #: Each step of a flow as JSON: ``[{"name", "ok", "latency_ms", "status_code", "error"}]``.
    steps: str | None = None

    def to_result(self) -> ProbeResult:
        from checks.base import ErrorClass, StepResult

        steps = tuple(
            StepResult(
                name=item["name"],
                ok=item["ok"],
                latency_ms=item["latency_ms"],
                status_code=item["status_code"],
                error=ErrorClass(item["error"]) if item["error"] else None,
            )
            for item in json.loads(self.steps or "[]")
        )
        return ProbeResult(
            check_id=self.check_id,
            component_id=self.component_id,
            started_at=self.started_at,
            ok=self.ok,
            latency_ms=self.latency_ms,
            error=ErrorClass(self.error) if self.error else None,
            detail=self.detail,
            status_code=self.status_code,
            step=self.step,
            region=self.region,
            attempt=self.attempt,
            degraded=self.degraded,
            steps=steps,
        )


class CheckStateRow(SQLModel, table=True):
    """The running state of one check: consecutive counts drive detection."""

    __tablename__ = "check_state"

    check_id: str = Field(primary_key=True, max_length=64)
    #: The region whose probes this state counts (each region keeps its own).
    region: str = Field(default="default", primary_key=True, max_length=64)
    component_id: str = Field(max_length=64)
    status: str = Field(default="unknown", max_length=16)  # unknown | up | degraded | down
    consecutive_failures: int = 0
    consecutive_passes: int = 0
    #: Within the current run of passes: consecutive degraded ones and clean ones.
    consecutive_degraded: int = 0
    consecutive_clean: int = 0
    last_result_at: datetime | None = _ts(nullable=True)
    last_error: str | None = None
    last_detail: str = ""
    since: datetime | None = _ts(nullable=True)


class ComponentStateRow(SQLModel, table=True):
    """A component's current public status (Statuspage words)."""

    __tablename__ = "component_state"

    component_id: str = Field(primary_key=True, max_length=64)
    status: str = Field(default="operational", max_length=32)
    since: datetime = _ts()
    updated_at: datetime = _ts()


class TransitionRow(SQLModel, table=True):
    """A component changed status; written in the same transaction as its cause."""

    __tablename__ = "component_transition"

    id: int | None = Field(default=None, primary_key=True)
    component_id: str = Field(max_length=64, index=True)
    from_status: str = Field(max_length=32)
    to_status: str = Field(max_length=32)
    at: datetime = _ts(index=True)
    cause: str = ""
    incident_id: int | None = Field(default=None, foreign_key="incident.id")


class IncidentRow(SQLModel, table=True):
    """An incident: opened automatically or by the comms team."""

    __tablename__ = "incident"

    id: int | None = Field(default=None, primary_key=True)
    title_id: str
    title_en: str
    status: str = Field(max_length=16, index=True)
    impact: str = Field(default="major", max_length=16)
    automatic: bool = False
    started_at: datetime = _ts(index=True)
    updated_at: datetime = _ts()
    resolved_at: datetime | None = _ts(nullable=True)

    def title(self, lang: str) -> str:
        return (self.title_en if lang == "en" else self.title_id) or self.title_id or self.title_en


class IncidentComponentRow(SQLModel, table=True):
    """A component affected by an incident, with its status within the incident."""

    __tablename__ = "incident_component"

    incident_id: int = Field(foreign_key="incident.id", primary_key=True)
    component_id: str = Field(primary_key=True, max_length=64)
    status: str = Field(max_length=32)


class IncidentUpdateRow(SQLModel, table=True):
    """One timeline entry of an incident (automatic event or human statement)."""

    __tablename__ = "incident_update"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    at: datetime = _ts()
    status: str = Field(max_length=16)
    author: str = Field(default="pantau", max_length=128)
    message_id: str = ""
    message_en: str = ""
    automatic: bool = False
    #: What happened: opened, joined, recovered, degraded, update, resolved, reopened.
    event: str = Field(default="update", max_length=16)
    #: For automatic entries, the evidence as JSON (error rate, error classes with
    #: counts, regions, latency): for engineers and reports, never for the public page.
    details: str | None = None

    def message(self, lang: str) -> str:
        return (
            (self.message_en if lang == "en" else self.message_id)
            or self.message_id
            or self.message_en
        )


class SilenceRow(SQLModel, table=True):
    """Alerts for a component are held back between ``starts_at`` and ``ends_at``."""

    __tablename__ = "silence"

    id: int | None = Field(default=None, primary_key=True)
    component_id: str = Field(max_length=64, index=True)
    starts_at: datetime = _ts()
    ends_at: datetime = _ts(index=True)
    reason: str
    author: str = Field(max_length=128)
    created_at: datetime = _ts()
    #: Set when removed early (``pantau silence remove``); the row stays for the record.
    removed_at: datetime | None = _ts(nullable=True)

    def active(self, now: datetime) -> bool:
        return self.removed_at is None and self.starts_at <= now < self.ends_at


class AlertGroupRow(SQLModel, table=True):
    """The alerts that are told together: one message when the group starts firing
    (after ``group_wait``), updates and reminders while it fires, one when it resolves."""

    __tablename__ = "alert_group"

    id: int | None = Field(default=None, primary_key=True)
    #: The incident its alerts belong to, once there is one.
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)
    status: str = Field(default="open", max_length=16, index=True)  # open | resolved
    created_at: datetime = _ts()
    #: The first message waits until then for other alerts to join.
    send_after: datetime = _ts()
    #: Messages enqueued so far; the next one gets this number (``seq``).
    messages: int = 0
    last_message_at: datetime | None = _ts(nullable=True)
    resolved_at: datetime | None = _ts(nullable=True)


class AlertRow(SQLModel, table=True):
    """One alert: a rule's condition on one subject (a component or a check).

    ``pending`` while the condition holds for less than the rule's ``for``; ``firing``
    after; ``resolved`` once it no longer holds (a new alert starts the next time).
    """

    __tablename__ = "alert"
    __table_args__ = (Index("ix_alert_rule_subject", "rule_id", "subject", "state"),)

    id: int | None = Field(default=None, primary_key=True)
    rule_id: str = Field(max_length=64)
    subject: str = Field(max_length=64)
    component_id: str = Field(max_length=64)
    state: str = Field(max_length=16, index=True)  # pending | firing | resolved
    active_since: datetime = _ts()
    fired_at: datetime | None = _ts(nullable=True)
    resolved_at: datetime | None = _ts(nullable=True)
    evaluated_at: datetime = _ts()
    #: The measured value (a ratio, seconds, or a count) and its evidence as JSON.
    value: float = 0.0
    evidence: str = "{}"
    group_id: int | None = Field(default=None, foreign_key="alert_group.id", index=True)
    #: Told in a message of its group already (so it is not announced as new again).
    notified: bool = False
    #: Held back by a silence or a maintenance event at the last evaluation.
    suppressed_by: str | None = Field(default=None, max_length=128)


class AlertDeliveryRow(SQLModel, table=True):
    """One message of an alert group to one target; claimed once, so never sent twice."""

    __tablename__ = "alert_delivery"
    __table_args__ = (
        UniqueConstraint("group_id", "seq", "target_index", name="uq_delivery_target"),
    )

    id: int | None = Field(default=None, primary_key=True)
    group_id: int = Field(foreign_key="alert_group.id", index=True)
    #: The message's number in its group, and what it says: firing, update, reminder, resolved.
    seq: int = 0
    kind: str = Field(default="firing", max_length=16)
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)
    target_index: int
    #: The target with every secret left as its ``${VAR}`` reference.
    target_label: str
    title: str
    body: str
    status: str = Field(default="pending", max_length=16, index=True)  # pending|sending|sent|failed
    #: The process (``node.id``) that claimed it last; a ``sending`` row whose claimer is
    #: gone is sent again (:meth:`StoreTx.reclaim_orphaned_deliveries`).
    claimed_by: str | None = Field(default=None, max_length=128)
    attempts: int = 0
    next_attempt_at: datetime = _ts()
    last_error: str | None = None
    created_at: datetime = _ts()
    sent_at: datetime | None = _ts(nullable=True)


class XPostRow(SQLModel, table=True):
    """A statement posted (or being posted) to X as a thread of one or more posts."""

    __tablename__ = "x_post"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    update_id: int = Field(foreign_key="incident_update.id", index=True)
    #: The thread's texts as JSON (a list), and the ids of the posts made so far (JSON).
    parts: str
    post_ids: str = "[]"
    status: str = Field(default="pending", max_length=16)  # pending | posted | failed
    error: str | None = None
    attempts: int = 0
    created_at: datetime = _ts()
    posted_at: datetime | None = _ts(nullable=True)


class ComplaintPostRow(SQLModel, table=True):
    """A public post from a social source, classified. Text and author stay internal:
    they never reach the public site (which shows aggregates only)."""

    __tablename__ = "complaint_post"

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=32)
    #: ``source:id`` when the source gives ids, else a hash of the text and its time.
    dedupe_key: str = Field(max_length=200, unique=True)
    external_id: str | None = Field(default=None, max_length=128)
    text: str
    created_at: datetime = _ts(index=True)
    lang: str | None = Field(default=None, max_length=16)
    url: str | None = Field(default=None, max_length=500)
    author: str | None = Field(default=None, max_length=128)
    complaint: bool = False
    #: The classifier's topics, comma-separated in TOPICS order ("" for none).
    topics: str = ""
    imported_at: datetime = _ts()


class ComplaintCountRow(SQLModel, table=True):
    """How many complaints a source saw in one minute (X's counts, or classified posts)."""

    __tablename__ = "complaint_count"

    source: str = Field(primary_key=True, max_length=32)
    minute: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    count: int = 0


class SocialSourceRow(SQLModel, table=True):
    """The health of one social source, for ``pantau status`` and backoff."""

    __tablename__ = "social_source"

    source: str = Field(primary_key=True, max_length=32)
    status: str = Field(default="unknown", max_length=16)  # ok | unavailable | rate_limited
    last_success_at: datetime | None = _ts(nullable=True)
    last_error: str | None = None
    #: Do not call the source before this (a rate limit's reset, or backoff).
    retry_after: datetime | None = _ts(nullable=True)
    failures: int = 0
    #: Where a source resumes: the newest minute counted, or a file's byte offset.
    cursor: str | None = None
    updated_at: datetime | None = _ts(nullable=True)


class ComplaintSpikeRow(SQLModel, table=True):
    """A complaint-volume spike (its onset), and what Pantau made of it."""

    __tablename__ = "complaint_spike"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _ts(index=True)
    value: float
    expected: float
    score: float
    #: The bucket's length in seconds (counts are per bucket).
    bucket_seconds: int = 300
    #: Topics of the complaint posts in the bucket, most frequent first, comma-separated.
    topics: str = ""
    #: confirmed (an incident was open) or blind_spot (every probe green).
    label: str = Field(default="", max_length=16)
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)


class ResultRollupRow(SQLModel, table=True):
    """One component's probe runs and status summed over one hour or one day of the site's
    zone; kept by :func:`monitor.rollup.rollup` so that publishing never reads raw results."""

    __tablename__ = "result_rollup"

    component_id: str = Field(primary_key=True, max_length=64)
    #: ``hour`` or ``day``: hours and days begin at whole hours and midnights of the zone.
    period: str = Field(primary_key=True, max_length=8)
    start: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    #: Runs (a first attempt and its quick re-probes) that began in the period; those whose
    #: last attempt failed; those that passed but degraded.
    runs: int = 0
    failures: int = 0
    degraded: int = 0
    #: Response times (last attempt) of the runs that passed: count, sum, maximum, and the
    #: counts per bucket as JSON ``{"<bucket's upper bound in ms>": count}``.
    latency_count: int = 0
    latency_sum_ms: float = 0.0
    latency_max_ms: float | None = None
    latency_histogram: str = "{}"
    #: The worst status during the period; None when nothing is known of it.
    worst_status: str | None = Field(default=None, max_length=32)
    #: Seconds of the period (up to the last rollup) the component was watched, and of
    #: those, seconds in partial or major outage (see :mod:`monitor.rollup`).
    observed_seconds: float = 0.0
    downtime_seconds: float = 0.0
    updated_at: datetime = _ts()


class RollupMarkRow(SQLModel, table=True):
    """How far the rollups got (a single row): what was rolled up last, when, in which zone."""

    __tablename__ = "rollup_mark"

    id: int = Field(default=1, primary_key=True)
    #: The newest probe result and transition (by id) the rollups have taken in; when
    #: they last ran (None until the first rollup is done).
    result_id: int = 0
    transition_id: int = 0
    ran_at: datetime | None = _ts(nullable=True)
    #: Where the first rollup, done in steps, goes on from (None: not started, or done).
    backfill_at: datetime | None = _ts(nullable=True)
    #: The zone whose hours and days the rollups follow ("" before the first rollup).
    zone: str = Field(default="", max_length=64)


class NodeRow(SQLModel, table=True):
    """A running ``pantau run`` process: its role, region and heartbeat, and whether it
    led the coordinators at its last heartbeat (the lock decides; this row reports)."""

    __tablename__ = "node"

    id: str = Field(primary_key=True, max_length=128)
    role: str = Field(max_length=16)  # all | probe | coordinator
    region: str = Field(max_length=64)
    host: str = Field(max_length=255)
    pid: int
    started_at: datetime = _ts()
    heartbeat_at: datetime = _ts(index=True)
    leader: bool = False
    #: Set when the process stopped cleanly.
    stopped_at: datetime | None = _ts(nullable=True)
    #: The store as this process saw it: results waiting in memory, dropped for want of
    #: room, failed writes in all, and the last failure.
    buffered: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    dropped: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    store_errors: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    last_store_error: str | None = Field(default=None, max_length=500)
    last_store_error_at: datetime | None = _ts(nullable=True)


def advisory_key(name: str) -> int:
    """A stable signed 64-bit PostgreSQL advisory lock key for ``name``."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@dataclass(frozen=True, slots=True)
class PoolOptions:
    """PostgreSQL connection pooling (``[storage]``); SQLite ignores it."""

    size: int = 5
    max_overflow: int = 5
    #: Seconds a step waits for a free pooled connection.
    timeout: float = 10.0
    #: Seconds opening a connection may take.
    connect_timeout: float = 5.0


#: libpq TCP keepalives, so a server (or leader) that vanished without closing the
#: connection is noticed in about ten seconds, not the kernel's two hours.
PG_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}


def pg_connect_args(pool: PoolOptions) -> dict[str, Any]:
    return {"connect_timeout": max(int(pool.connect_timeout), 1), **PG_KEEPALIVES}


def make_engine(url: str, pool: PoolOptions | None = None) -> Engine:
    """Create a SQLAlchemy engine for ``url`` with the settings Pantau relies on.

    PostgreSQL connections are pre-pinged when taken from the pool, so after the server
    restarts the first use reconnects instead of failing on a dead socket."""
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 10},
            poolclass=StaticPool if memory else None,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    pool = pool or PoolOptions()
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool.size,
        max_overflow=pool.max_overflow,
        pool_timeout=pool.timeout,
        connect_args=pg_connect_args(pool) if url.startswith("postgresql") else {},
    )


class Store:
    """The store API. Create once per process and pass it where it is needed."""

    def __init__(self, url: str, *, create: bool = True, pool: PoolOptions | None = None) -> None:
        self.url = url
        self.pool = pool or PoolOptions()
        self.engine = make_engine(url, self.pool)
        if create:
            self.create_schema()

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def create_schema(self) -> None:
        """Create an empty database's schema, or check that the database's schema is this
        Pantau's: :func:`monitor.schema.ensure_current` (raises SchemaBehind, SchemaAhead,
        or StoreError)."""
        from monitor.schema import ensure_current  # monitor.schema imports this module

        try:
            ensure_current(self.engine)
        except StoreError:
            self.engine.dispose()  # when Store() raises, nobody else can close its pool
            raise

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def tx(self) -> Iterator[StoreTx]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield StoreTx(session)
                session.commit()
            except SQLAlchemyError as exc:
                session.rollback()
                raise StoreError(f"database operation failed: {type(exc).__name__}") from exc
            except BaseException:
                session.rollback()
                raise

    # Reads that need no transaction of their own are thin wrappers over StoreTx.
    def read(self) -> _ReadOnly:
        return _ReadOnly(self)


class _ReadOnly:
    """``with store.read() as tx`` for read paths (rolled back, never committed)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._session: Session | None = None

    def __enter__(self) -> StoreTx:
        self._session = Session(self._store.engine, expire_on_commit=False)
        return StoreTx(self._session)

    def __exit__(self, _type: object, exc: BaseException | None, _tb: object) -> None:
        assert self._session is not None
        # close() alone rolls the database transaction back and detaches the rows with
        # their loaded values; Session.rollback() would first expire them, so rows read
        # here would raise DetachedInstanceError once the block ends.
        try:
            self._session.close()
        except SQLAlchemyError:
            if exc is None:
                raise StoreError("database operation failed: closing a read") from None
        if isinstance(exc, SQLAlchemyError):  # the database is away: one error type for all
            raise StoreError(f"database operation failed: {type(exc).__name__}") from exc


class StoreTx:
    """Domain operations inside one database transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- probe results ---------------------------------------------------
    def add_result(self, result: ProbeResult) -> ProbeResultRow:
        """Add a result; it is inserted at the next flush or commit, batched with the others
        of this transaction (its ``id`` is set then)."""
        row = ProbeResultRow(
            check_id=result.check_id,
            component_id=result.component_id,
            region=result.region,
            started_at=result.started_at,
            ok=result.ok,
            error=result.error.value if result.error else None,
            detail=result.detail[:2000],
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            step=result.step,
            attempt=result.attempt,
            degraded=result.degraded,
            steps=json.dumps([step.as_json() for step in result.steps]) if result.steps else None,
        )
        self.session.add(row)
        return row

    def results(
        self,
        *,
        check_id: str | None = None,
        component_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        newest_first: bool = True,
    ) -> list[ProbeResultRow]:
        query = select(ProbeResultRow)
        if check_id is not None:
            query = query.where(ProbeResultRow.check_id == check_id)
        if component_id is not None:
            query = query.where(ProbeResultRow.component_id == component_id)
        if since is not None:
            query = query.where(col(ProbeResultRow.started_at) >= since)
        if until is not None:
            query = query.where(col(ProbeResultRow.started_at) < until)
        order = col(ProbeResultRow.started_at)
        query = query.order_by(
            order.desc() if newest_first else order.asc(),
            col(ProbeResultRow.id).desc() if newest_first else col(ProbeResultRow.id),
        )
        if limit is not None:
            query = query.limit(limit)
        return list(self.session.exec(query))

    def count_results(self) -> int:
        return int(self.session.exec(select(func.count()).select_from(ProbeResultRow)).one())

    # -- check and component state ----------------------------------------
    def check_state(
        self, check_id: str, component_id: str, region: str = "default"
    ) -> CheckStateRow:
        """The state of a check as seen from ``region`` (created when new)."""
        with self.session.no_autoflush:  # pending results are inserted together at commit
            row = self.session.get(CheckStateRow, (check_id, region))
        if row is None:
            row = CheckStateRow(check_id=check_id, region=region, component_id=component_id)
            self.session.add(row)
            self.session.flush()
        return row

    def check_states(self, *, component_id: str | None = None) -> list[CheckStateRow]:
        """Check states in every region, of one component or of all."""
        query = select(CheckStateRow)
        if component_id is not None:
            query = query.where(CheckStateRow.component_id == component_id)
        with self.session.no_autoflush:
            return list(self.session.exec(query))

    def component_states(self) -> dict[str, ComponentStateRow]:
        return {row.component_id: row for row in self.session.exec(select(ComponentStateRow))}

    def set_component_status(
        self,
        component_id: str,
        status: str,
        *,
        at: datetime,
        cause: str,
        incident_id: int | None = None,
    ) -> TransitionRow | None:
        """Set a component's status; write and return a transition row when it changed."""
        row = self.session.get(ComponentStateRow, component_id)
        if row is None:
            row = ComponentStateRow(
                component_id=component_id, status="operational", since=at, updated_at=at
            )
            self.session.add(row)
        row.updated_at = at
        if row.status == status:
            return None
        transition = TransitionRow(
            component_id=component_id,
            from_status=row.status,
            to_status=status,
            at=at,
            cause=cause[:2000],
            incident_id=incident_id,
        )
        row.status, row.since = status, at
        self.session.add(transition)
        self.session.flush()
        return transition

    def transitions(
        self, *, component_id: str | None = None, limit: int = 100
    ) -> list[TransitionRow]:
        query = select(TransitionRow)
        if component_id:
            query = query.where(TransitionRow.component_id == component_id)
        query = query.order_by(col(TransitionRow.at).desc(), col(TransitionRow.id).desc()).limit(
            limit
        )
        return list(self.session.exec(query))

    def transition_at(self, component_id: str, moment: datetime) -> TransitionRow | None:
        """The transition of ``component_id`` in effect at ``moment`` (one made at
        ``moment`` itself counts); None before its first."""
        query = (
            select(TransitionRow)
            .where(TransitionRow.component_id == component_id, col(TransitionRow.at) <= moment)
            .order_by(col(TransitionRow.at).desc(), col(TransitionRow.id).desc())
            .limit(1)
        )
        return self.session.exec(query).first()

    # -- nodes and coordination ---------------------------------------------
    def serialize(self, name: str) -> None:
        """Hold the transaction-level lock ``name`` until this transaction ends, so steps
        that must not run twice at once (detection, alert evaluation) queue up across
        processes on PostgreSQL. SQLite serialises writers by itself."""
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key(name)}
            )

    def heartbeat(self, node: NodeRow) -> NodeRow:
        """Insert or refresh ``node``'s row."""
        row = self.session.get(NodeRow, node.id)
        if row is None:
            self.session.add(node)
            self.session.flush()
            return node
        for name in (
            "heartbeat_at",
            "leader",
            "stopped_at",
            "role",
            "region",
            "buffered",
            "dropped",
            "store_errors",
            "last_store_error",
            "last_store_error_at",
        ):
            setattr(row, name, getattr(node, name))
        self.session.flush()
        return row

    def nodes(self, *, since: datetime | None = None) -> list[NodeRow]:
        """Nodes that beat at or after ``since`` (all when None), newest first."""
        query = select(NodeRow)
        if since is not None:
            query = query.where(col(NodeRow.heartbeat_at) >= since)
        return list(self.session.exec(query.order_by(col(NodeRow.heartbeat_at).desc())))

    def forget_nodes(self, *, before: datetime) -> int:
        """Delete nodes whose last heartbeat is older than ``before``."""
        result = self.session.execute(delete(NodeRow).where(col(NodeRow.heartbeat_at) < before))
        return int(getattr(result, "rowcount", 0) or 0)

    # -- incidents --------------------------------------------------------
    def add_incident(self, incident: IncidentRow, components: dict[str, str]) -> IncidentRow:
        self.session.add(incident)
        self.session.flush()
        assert incident.id is not None
        for component_id, status in components.items():
            self.session.add(
                IncidentComponentRow(
                    incident_id=incident.id, component_id=component_id, status=status
                )
            )
        self.session.flush()
        return incident

    def incident(self, incident_id: int) -> IncidentRow | None:
        return self.session.get(IncidentRow, incident_id)

    def incidents(
        self,
        *,
        unresolved: bool | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[IncidentRow]:
        query = select(IncidentRow)
        if unresolved is True:
            query = query.where(IncidentRow.status != "resolved")
        elif unresolved is False:
            query = query.where(IncidentRow.status == "resolved")
        if since is not None:
            query = query.where(col(IncidentRow.started_at) >= since)
        query = query.order_by(col(IncidentRow.started_at).desc(), col(IncidentRow.id).desc())
        if limit is not None:
            query = query.limit(limit)
        return list(self.session.exec(query))

    def incident_components(self, incident_id: int) -> dict[str, str]:
        rows = self.session.exec(
            select(IncidentComponentRow).where(IncidentComponentRow.incident_id == incident_id)
        )
        return {row.component_id: row.status for row in rows}

    def set_incident_component(self, incident_id: int, component_id: str, status: str) -> None:
        row = self.session.get(IncidentComponentRow, (incident_id, component_id))
        if row is None:
            self.session.add(
                IncidentComponentRow(
                    incident_id=incident_id, component_id=component_id, status=status
                )
            )
        else:
            row.status = status
        self.session.flush()

    def add_update(self, update_row: IncidentUpdateRow) -> IncidentUpdateRow:
        self.session.add(update_row)
        self.session.flush()
        return update_row

    def updates(self, incident_id: int) -> list[IncidentUpdateRow]:
        query = (
            select(IncidentUpdateRow)
            .where(IncidentUpdateRow.incident_id == incident_id)
            .order_by(col(IncidentUpdateRow.at), col(IncidentUpdateRow.id))
        )
        return list(self.session.exec(query))

    # -- alert deliveries --------------------------------------------------
    def add_delivery(self, delivery: AlertDeliveryRow) -> AlertDeliveryRow:
        self.session.add(delivery)
        self.session.flush()
        return delivery

    def due_deliveries(self, now: datetime, *, limit: int = 100) -> list[AlertDeliveryRow]:
        query = (
            select(AlertDeliveryRow)
            .where(
                AlertDeliveryRow.status == "pending", col(AlertDeliveryRow.next_attempt_at) <= now
            )
            .order_by(col(AlertDeliveryRow.id))
            .limit(limit)
        )
        return list(self.session.exec(query))

    def claim_delivery(self, delivery_id: int, now: datetime, *, claimer: str = "") -> bool:
        """Mark a pending delivery as being sent by ``claimer``. True for exactly one claimant."""
        result = self.session.execute(
            update(AlertDeliveryRow)
            .where(
                col(AlertDeliveryRow.id) == delivery_id, col(AlertDeliveryRow.status) == "pending"
            )
            .values(
                status="sending",
                attempts=AlertDeliveryRow.attempts + 1,
                next_attempt_at=now,
                claimed_by=claimer or None,
            )
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def reclaim_orphaned_deliveries(
        self, *, alive: set[str], claimed_before: datetime, now: datetime
    ) -> list[int]:
        """Put back to ``pending`` every delivery left ``sending`` since before
        ``claimed_before`` by a process not in ``alive`` (it died mid-send); their ids.

        The message may have reached the target just before its sender died, so it may
        arrive twice; without this it would never arrive at all.
        """
        query = select(AlertDeliveryRow).where(
            AlertDeliveryRow.status == "sending",
            col(AlertDeliveryRow.next_attempt_at) < claimed_before,
        )
        reclaimed = []
        for row in list(self.session.exec(query)):
            if row.claimed_by is not None and row.claimed_by in alive:
                continue
            assert row.id is not None
            later = select(AlertDeliveryRow.id).where(
                AlertDeliveryRow.group_id == row.group_id,
                AlertDeliveryRow.target_index == row.target_index,
                col(AlertDeliveryRow.seq) > row.seq,
                AlertDeliveryRow.status == "sent",
            )
            if self.session.exec(later.limit(1)).first() is not None:
                # Its group has moved on (a later message was sent): old news is not resent.
                # (A later one still pending goes after it: deliveries go out in id order.)
                row.status = "failed"
                row.last_error = "its sender stopped while sending; superseded, not resent"
                continue
            row.status, row.next_attempt_at = "pending", now
            row.last_error = "its sender stopped while sending; sent again"
            reclaimed.append(row.id)
        self.session.flush()
        return reclaimed

    def delivery(self, delivery_id: int) -> AlertDeliveryRow | None:
        return self.session.get(AlertDeliveryRow, delivery_id)

    def deliveries(
        self, *, status: Sequence[str] | None = None, incident_id: int | None = None
    ) -> list[AlertDeliveryRow]:
        query = select(AlertDeliveryRow)
        if status:
            query = query.where(col(AlertDeliveryRow.status).in_(list(status)))
        if incident_id is not None:
            query = query.where(AlertDeliveryRow.incident_id == incident_id)
        return list(self.session.exec(query.order_by(col(AlertDeliveryRow.id))))

    # -- silences ------------------------------------------------------------
    def add_silence(self, silence: SilenceRow) -> SilenceRow:
        self.session.add(silence)
        self.session.flush()
        return silence

    def silence(self, silence_id: int) -> SilenceRow | None:
        return self.session.get(SilenceRow, silence_id)

    def silences(self, *, now: datetime | None = None) -> list[SilenceRow]:
        """Every silence, or with ``now`` those not yet over and not removed."""
        query = select(SilenceRow)
        if now is not None:
            query = query.where(col(SilenceRow.ends_at) > now, col(SilenceRow.removed_at).is_(None))
        return list(
            self.session.exec(query.order_by(col(SilenceRow.starts_at), col(SilenceRow.id)))
        )

    # -- alerts and their groups ---------------------------------------------
    def live_alerts(self) -> list[AlertRow]:
        """Alerts that are pending or firing."""
        query = select(AlertRow).where(col(AlertRow.state).in_(["pending", "firing"]))
        return list(self.session.exec(query.order_by(col(AlertRow.id))))

    def add_alert(self, alert: AlertRow) -> AlertRow:
        self.session.add(alert)
        self.session.flush()
        return alert

    def alerts(self, *, group_id: int | None = None, limit: int = 200) -> list[AlertRow]:
        query = select(AlertRow)
        if group_id is not None:
            query = query.where(AlertRow.group_id == group_id)
        query = query.order_by(col(AlertRow.id).desc()).limit(limit)
        return list(self.session.exec(query))

    def add_group(self, group: AlertGroupRow) -> AlertGroupRow:
        self.session.add(group)
        self.session.flush()
        return group

    def group(self, group_id: int) -> AlertGroupRow | None:
        return self.session.get(AlertGroupRow, group_id)

    def open_groups(self) -> list[AlertGroupRow]:
        query = select(AlertGroupRow).where(AlertGroupRow.status == "open")
        return list(self.session.exec(query.order_by(col(AlertGroupRow.id))))

    # -- posts to X -----------------------------------------------------------
    def add_x_post(self, post: XPostRow) -> XPostRow:
        self.session.add(post)
        self.session.flush()
        return post

    def x_post(self, post_id: int) -> XPostRow | None:
        return self.session.get(XPostRow, post_id)

    def x_posts(self, *, incident_id: int | None = None) -> list[XPostRow]:
        query = select(XPostRow)
        if incident_id is not None:
            query = query.where(XPostRow.incident_id == incident_id)
        return list(self.session.exec(query.order_by(col(XPostRow.id))))

    # -- the public signal -----------------------------------------------------------
    def add_post(self, post: ComplaintPostRow) -> bool:
        """Add a post unless one with its ``dedupe_key`` exists; True when added."""
        exists = self.session.exec(
            select(ComplaintPostRow.id).where(ComplaintPostRow.dedupe_key == post.dedupe_key)
        ).first()
        if exists is not None:
            return False
        self.session.add(post)
        return True

    def posts(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        complaints_only: bool = False,
        limit: int | None = None,
    ) -> list[ComplaintPostRow]:
        """Posts, newest first."""
        query = select(ComplaintPostRow)
        if since is not None:
            query = query.where(col(ComplaintPostRow.created_at) >= since)
        if until is not None:
            query = query.where(col(ComplaintPostRow.created_at) < until)
        if complaints_only:
            query = query.where(col(ComplaintPostRow.complaint).is_(True))
        query = query.order_by(col(ComplaintPostRow.created_at).desc(), col(ComplaintPostRow.id))
        if limit is not None:
            query = query.limit(limit)
        return list(self.session.exec(query))

    def add_counts(self, source: str, counts: dict[datetime, int], *, replace: bool) -> None:
        """Store per-minute counts of ``source``; ``replace`` overwrites a minute (X's counts
        are final), otherwise counts are added (posts counted as they arrive)."""
        for minute, count in counts.items():
            row = self.session.get(ComplaintCountRow, (source, minute))
            if row is None:
                self.session.add(ComplaintCountRow(source=source, minute=minute, count=count))
            else:
                row.count = count if replace else row.count + count
        self.session.flush()

    def counts(
        self, *, since: datetime, until: datetime, source: str | None = None
    ) -> dict[datetime, int]:
        """Complaints per minute in ``[since, until)``, summed over sources (or one)."""
        query = select(ComplaintCountRow.minute, func.sum(ComplaintCountRow.count)).where(
            col(ComplaintCountRow.minute) >= since, col(ComplaintCountRow.minute) < until
        )
        if source is not None:
            query = query.where(ComplaintCountRow.source == source)
        query = query.group_by(col(ComplaintCountRow.minute)).order_by(
            col(ComplaintCountRow.minute)
        )
        return {minute: int(total) for minute, total in self.session.exec(query)}

    def social_source(self, source: str) -> SocialSourceRow:
        """The state row of ``source`` (created when new)."""
        row = self.session.get(SocialSourceRow, source)
        if row is None:
            row = SocialSourceRow(source=source)
            self.session.add(row)
            self.session.flush()
        return row

    def social_sources(self) -> list[SocialSourceRow]:
        return list(
            self.session.exec(select(SocialSourceRow).order_by(col(SocialSourceRow.source)))
        )

    def add_spike(self, spike: ComplaintSpikeRow) -> ComplaintSpikeRow:
        self.session.add(spike)
        self.session.flush()
        return spike

    def spikes(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[ComplaintSpikeRow]:
        query = select(ComplaintSpikeRow)
        if since is not None:
            query = query.where(col(ComplaintSpikeRow.at) >= since)
        if until is not None:
            query = query.where(col(ComplaintSpikeRow.at) < until)
        return list(self.session.exec(query.order_by(col(ComplaintSpikeRow.at))))

    # -- rollups -------------------------------------------------------------------
    def rollup_mark(self) -> RollupMarkRow:
        """The rollups' progress row (created when new), locked on PostgreSQL until the
        transaction ends, so two rollups never interleave."""
        row = self.session.get(RollupMarkRow, 1, with_for_update=True)
        if row is None:
            row = RollupMarkRow(id=1)
            self.session.add(row)
            self.session.flush()
        return row

    def rollups(
        self,
        period: str,
        *,
        since: datetime,
        until: datetime,
        component_id: str | None = None,
    ) -> list[ResultRollupRow]:
        """Rollups of ``period`` (``hour`` or ``day``) starting in ``[since, until)``, by
        component, then oldest first."""
        query = select(ResultRollupRow).where(
            ResultRollupRow.period == period,
            col(ResultRollupRow.start) >= since,
            col(ResultRollupRow.start) < until,
        )
        if component_id is not None:
            query = query.where(ResultRollupRow.component_id == component_id)
        query = query.order_by(col(ResultRollupRow.component_id), col(ResultRollupRow.start))
        return list(self.session.exec(query))

    def rollup_values(
        self, period: str, *, since: datetime, until: datetime
    ) -> list[dict[str, Any]]:
        """Rollups of ``period`` starting in ``[since, until)`` as plain dicts of their
        columns (bulk reads build no rows)."""
        from sqlalchemy import select as select_columns

        table = ResultRollupRow.__table__  # type: ignore[attr-defined]
        query = select_columns(table).where(
            table.c.period == period, table.c.start >= since, table.c.start < until
        )
        return [dict(row) for row in self.session.connection().execute(query).mappings()]

    def replace_rollups(self, rows: Sequence[dict[str, Any]]) -> None:
        """Store ``rows`` (dicts of every column of :class:`ResultRollupRow`), replacing
        the stored rollups with the same keys (bulk writes build no rows)."""
        from sqlalchemy import bindparam, delete, insert

        if not rows:
            return
        table = ResultRollupRow.__table__  # type: ignore[attr-defined]
        keys = [
            {"k_id": r["component_id"], "k_period": r["period"], "k_start": r["start"]}
            for r in rows
        ]
        connection = self.session.connection()
        connection.execute(
            delete(table).where(
                table.c.component_id == bindparam("k_id"),
                table.c.period == bindparam("k_period"),
                table.c.start == bindparam("k_start"),
            ),
            keys,
        )
        connection.execute(insert(table), list(rows))

    def delete_rollups(self) -> None:
        """Delete every rollup (they are rebuilt from the results still stored)."""
        from sqlalchemy import delete

        self.session.execute(delete(ResultRollupRow))

    def last_result_id(self) -> int:
        """The newest probe result's id (0 when there is none)."""
        return int(self.session.exec(select(func.max(ProbeResultRow.id))).one() or 0)

    def first_result_at(self) -> datetime | None:
        """When the oldest stored probe result started."""
        return self.session.exec(select(func.min(ProbeResultRow.started_at))).one()

    def result_times(self, *, after_id: int) -> list[tuple[int, datetime, int]]:
        """``(id, started_at, attempt)`` of the results with an id above ``after_id``."""
        query = select(ProbeResultRow.id, ProbeResultRow.started_at, ProbeResultRow.attempt)
        query = query.where(col(ProbeResultRow.id) > after_id)
        return [(int(i or 0), at, attempt) for i, at, attempt in self.session.exec(query)]

    def result_outcomes(
        self, *, since: datetime, until: datetime
    ) -> list[tuple[str, str, str, datetime, int, bool, bool, float | None]]:
        """``(component_id, check_id, region, started_at, attempt, ok, degraded,
        latency_ms)`` of the results started in ``[since, until)``, in no order: plain
        tuples for bulk reads (no rows are built)."""
        from sqlalchemy import select as select_columns  # sqlmodel's types four at most

        query = select_columns(
            col(ProbeResultRow.component_id),
            col(ProbeResultRow.check_id),
            col(ProbeResultRow.region),
            col(ProbeResultRow.started_at),
            col(ProbeResultRow.attempt),
            col(ProbeResultRow.ok),
            col(ProbeResultRow.degraded),
            col(ProbeResultRow.latency_ms),
        ).where(col(ProbeResultRow.started_at) >= since, col(ProbeResultRow.started_at) < until)
        # The connection's own execute: no ORM loading machinery on a million rows.
        return list(self.session.connection().execute(query).all())

    def attempts(
        self, *, since: datetime, until: datetime
    ) -> list[tuple[str, str, str, datetime, int, bool, str | None, float | None]]:
        """``(check_id, component_id, region, started_at, attempt, ok, error, latency_ms)``
        of the results started in ``[since, until)``, by check, region, time and attempt:
        plain tuples for the alert rules' bulk read (no rows are built)."""
        from sqlalchemy import select as select_columns  # sqlmodel's types four at most

        query = (
            select_columns(
                col(ProbeResultRow.check_id),
                col(ProbeResultRow.component_id),
                col(ProbeResultRow.region),
                col(ProbeResultRow.started_at),
                col(ProbeResultRow.attempt),
                col(ProbeResultRow.ok),
                col(ProbeResultRow.error),
                col(ProbeResultRow.latency_ms),
            )
            .where(col(ProbeResultRow.started_at) >= since, col(ProbeResultRow.started_at) < until)
            .order_by(
                col(ProbeResultRow.check_id),
                col(ProbeResultRow.region),
                col(ProbeResultRow.started_at),
                col(ProbeResultRow.attempt),
            )
        )
        return list(self.session.connection().execute(query).all())

    def transitions_in(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> list[TransitionRow]:
        """Transitions made in ``[since, until)`` with an id above ``after_id``, oldest first."""
        query = select(TransitionRow)
        if since is not None:
            query = query.where(col(TransitionRow.at) >= since)
        if until is not None:
            query = query.where(col(TransitionRow.at) < until)
        if after_id is not None:
            query = query.where(col(TransitionRow.id) > after_id)
        query = query.order_by(col(TransitionRow.at), col(TransitionRow.id))
        if limit is not None:
            query = query.limit(limit)
        return list(self.session.exec(query))

    def delete_results_before(self, moment: datetime, *, up_to_id: int, limit: int) -> int:
        """Delete at most ``limit`` results that started before ``moment`` with an id of at
        most ``up_to_id``, oldest first; the number deleted."""
        doomed = (
            select(ProbeResultRow.id)
            .where(col(ProbeResultRow.started_at) < moment, col(ProbeResultRow.id) <= up_to_id)
            .order_by(col(ProbeResultRow.id))
            .limit(limit)
        )
        ids = [int(i) for i in self.session.exec(doomed) if i is not None]
        if not ids:
            return 0
        self.session.execute(delete(ProbeResultRow).where(col(ProbeResultRow.id).in_(ids)))
        return len(ids)
