"""Which coordinator leads: exactly one at a time evaluates, alerts, rolls up and publishes.

On PostgreSQL the leader holds a session advisory lock on a connection of its own,
outside the pool (a pooled connection would hand the lock to whichever step uses it
next). The server frees the lock when that session ends: the process died, or its
connection was lost (TCP keepalives notice a machine that vanished). Standbys try to
take it every :meth:`Leadership.step`; the leader checks its connection at every step
and, when it is gone, stops leading at once and tries again on a new one.

On a SQLite file the lock is an exclusive ``flock`` on a file next to the database,
freed by the kernel when the process dies (coordinators on one machine only). An
in-memory database has one process by definition: it always leads.

Being elected is about not doing the work twice; it is not what keeps alerts from being
sent twice. Leader-only steps also take transaction-level locks
(:meth:`monitor.store.StoreTx.serialize`) and deliveries are claimed once per target,
so two processes that both believe they lead for a moment still send nothing twice.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from monitor.store import PoolOptions, advisory_key, pg_connect_args

log = logging.getLogger(__name__)

#: The advisory lock whose holder leads (one per database).
LEADER_LOCK = "pantau-leader"


class Leadership(Protocol):
    """Whether this process leads, kept up to date by :meth:`step`."""

    @property
    def is_leader(self) -> bool: ...

    def step(self) -> bool:
        """Check the lock (take it when free, notice when lost); whether we lead now.
        Blocking; never raises."""
        ...

    def release(self) -> None:
        """Stop leading and let a standby take over at once (clean shutdown)."""
        ...


class AlwaysLeader:
    """A process alone with its store (an in-memory database, tests)."""

    is_leader = True

    def step(self) -> bool:
        return True

    def release(self) -> None:
        return None


class PgLeadership:
    """A PostgreSQL session advisory lock on a dedicated connection."""

    def __init__(
        self, url: str, *, pool: PoolOptions | None = None, name: str = LEADER_LOCK
    ) -> None:
        self._engine: Engine = create_engine(
            url, poolclass=NullPool, connect_args=pg_connect_args(pool or PoolOptions())
        )
        self._key = advisory_key(name)
        self._conn: Connection | None = None
        self._leading = False

    @property
    def is_leader(self) -> bool:
        return self._leading

    def step(self) -> bool:
        try:
            if self._conn is None:
                conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                self._conn = conn
            if self._leading:
                # The session is alive, so is the lock it holds.
                self._conn.execute(text("SELECT 1"))
                return True
            taken = self._conn.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
            ).scalar()
        except SQLAlchemyError as exc:
            self._lost(exc)
            return False
        if taken:
            self._leading = True
            log.warning("this coordinator now leads (pid %s)", os.getpid())
        return self._leading

    def _lost(self, exc: Exception) -> None:
        if self._leading:
            log.error("leadership lost with the database connection: %s", type(exc).__name__)
        else:
            log.info("cannot reach the database to contend for leadership: %s", type(exc).__name__)
        self._leading = False
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except SQLAlchemyError:
                pass

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                if self._leading:
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
                conn.close()
            except SQLAlchemyError:
                pass  # closing the session frees the lock anyway
        if self._leading:
            log.info("leadership released")
        self._leading = False
        self._engine.dispose()


class FileLeadership:
    """An exclusive ``flock`` on ``<database>.leader`` (SQLite: one machine)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    @property
    def is_leader(self) -> bool:
        return self._file is not None

    def step(self) -> bool:
        if self._file is not None:
            return True
        try:
            handle = self.path.open("ab")
        except OSError as exc:
            log.error("cannot open the leader lock file %s: %s", self.path, exc.strerror)
            return False
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        log.warning("this coordinator now leads (pid %s)", os.getpid())
        return True

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()
            log.info("leadership released")


def leadership_for(url: str, *, pool: PoolOptions | None = None) -> Leadership:
    """The election that fits the store at ``url``."""
    if url.startswith("postgresql"):
        return PgLeadership(url, pool=pool)
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != "sqlite:///:memory:":
        return FileLeadership(Path(url.removeprefix(prefix) + ".leader"))
    return AlwaysLeader()
