"""The database schema, versioned by the Alembic migrations in ``monitor/migrations``.

A database is in one of five states (:class:`SchemaStatus`): ``empty`` (no Pantau table),
``unversioned`` (Pantau tables but no ``alembic_version``: made by a Pantau before
migrations, whose schema is revision ``0001_initial``), ``behind`` (an older revision),
``current`` (this Pantau's head) or ``ahead`` (a revision this Pantau does not know: a newer
Pantau upgraded it). :func:`ensure_current`, run by every :class:`~monitor.store.Store`
that may create the schema, creates an empty database's schema at once and refuses any
database that is not current; only :func:`upgrade` (``pantau db upgrade``) migrates.

Both run in one transaction under a lock, so two processes starting at once on one
database never both create or migrate it: a PostgreSQL advisory lock
(:data:`SCHEMA_LOCK_KEY`), or SQLite's write lock (``BEGIN IMMEDIATE``). DDL is
transactional on both, so a migration that fails leaves the schema as it was.

Adding a revision (a table, a column): change the models in ``monitor/store.py``, then add
``monitor/migrations/versions/NNNN_name.py`` whose ``down_revision`` is the current head,
written by hand or by autogenerate against a scratch database at head::

    from alembic import command
    from monitor.schema import alembic_config, upgrade
    from monitor.store import make_engine

    engine = make_engine("sqlite:////tmp/scratch.db")
    upgrade(engine)
    with engine.begin() as connection:
        command.revision(
            alembic_config(connection), "nodes", autogenerate=True, rev_id="0002_nodes"
        )

then read and tidy it. ``tests/store/test_migrations.py`` fails while the models and the
migrations disagree, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import SQLModel

from monitor.store import StoreError, advisory_key

log = logging.getLogger(__name__)

#: The Alembic script directory (``env.py``, ``script.py.mako``, ``versions/``).
MIGRATIONS = Path(__file__).resolve().with_name("migrations")
#: The schema of every database made by a Pantau before migrations.
LEGACY_REVISION = "0001_initial"
#: The key of the PostgreSQL advisory lock held while the schema is checked or changed.
SCHEMA_LOCK_KEY = advisory_key("pantau-schema")
UPGRADE_HINT = 'run "pantau db upgrade"'

State = Literal["empty", "unversioned", "behind", "current", "ahead"]


class SchemaBehind(StoreError):
    """The database's schema is older than this Pantau's: ``pantau db upgrade`` fixes it."""


class SchemaAhead(StoreError):
    """The database's schema is at a revision this Pantau does not know (a newer Pantau's)."""


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database's schema stands: its revision, this Pantau's head, and the state."""

    current: str | None
    head: str
    state: State

    def problem(self) -> StoreError | None:
        """The error for a database this Pantau cannot use as it is (None when it can:
        ``current``, or ``empty``, whose schema is created on first use)."""
        needs = f"this Pantau needs {self.head}: {UPGRADE_HINT}"
        if self.state == "unversioned":
            return SchemaBehind(
                f"the database schema was made by a Pantau before migrations; {needs}"
            )
        if self.state == "behind":
            return SchemaBehind(f"the database schema is at revision {self.current}; {needs}")
        if self.state == "ahead":
            return SchemaAhead(
                f"the database schema is at revision {self.current}, which this Pantau does "
                f"not know (its newest is {self.head}): a newer Pantau upgraded it; run that "
                f"Pantau, or restore a backup from before the upgrade"
            )
        return None


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for Pantau's migrations (no alembic.ini); Alembic commands given
    it run on ``connection``, inside the transaction the connection is in."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("file_template", "%%(rev)s")  # versions/0002_nodes.py
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


@functools.cache
def head_revision() -> str:
    """This Pantau's newest revision (raises CommandError if the history has two heads)."""
    head = _script().get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations in {MIGRATIONS}")
    return head


@functools.cache
def revisions() -> tuple[str, ...]:
    """Every revision this Pantau knows, oldest first."""
    return tuple(reversed([script.revision for script in _script().walk_revisions()]))


def current_revision(connection: Connection) -> str | None:
    """The revision in the database's ``alembic_version`` (None when there is none)."""
    return MigrationContext.configure(connection).get_current_revision()


def schema_status(connection: Connection) -> SchemaStatus:
    """Classify the database behind ``connection`` (reads only)."""
    current, head = current_revision(connection), head_revision()
    state: State
    if current == head:
        state = "current"
    elif current in revisions():
        state = "behind"
    elif current is not None:
        state = "ahead"
    else:
        pantau_tables = set(SQLModel.metadata.tables) & set(inspect(connection).get_table_names())
        state = "unversioned" if pantau_tables else "empty"
    return SchemaStatus(current=current, head=head, state=state)


def inspect_schema(engine: Engine) -> SchemaStatus:
    """Where the database's schema stands (changes nothing); StoreError when unreachable."""
    with _storage_errors("read the database schema"), engine.connect() as connection:
        return schema_status(connection)


def ensure_current(engine: Engine) -> None:
    """Create the schema of an empty database (tables, then stamped at head); pass a
    database at head; raise :class:`SchemaBehind` for one that needs ``pantau db upgrade``
    and :class:`SchemaAhead` for one a newer Pantau upgraded. Other failures: StoreError."""
    with _storage_errors("prepare the database"), _schema_transaction(engine) as connection:
        status = schema_status(connection)
        if status.state == "empty":
            # The models are the head schema (the migration tests prove it), and much
            # faster to create than by replaying every revision.
            SQLModel.metadata.create_all(connection)
            MigrationContext.configure(connection).stamp(_script(), status.head)
            log.info("schema created revision=%s", status.head)
            return
        problem = status.problem()
        if problem is not None:
            raise problem


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Migrate the database to this Pantau's head; ``(from, to)`` revisions (``from`` is
    None for an empty database and for one made before migrations, which is taken to be at
    ``0001_initial``). Raises SchemaAhead for a newer Pantau's database, else StoreError;
    a failed upgrade changes nothing."""
    from alembic import command  # only upgrades need Alembic's commands

    with (
        _storage_errors("upgrade the database schema"),
        _schema_transaction(engine, foreign_keys=False) as connection,
    ):
        status = schema_status(connection)
        problem = status.problem()
        if isinstance(problem, SchemaAhead):
            raise problem
        if status.state == "unversioned":
            MigrationContext.configure(connection).stamp(_script(), LEGACY_REVISION)
        command.upgrade(alembic_config(connection), "head")
        _check_foreign_keys(connection)
        reached = current_revision(connection)
        if reached != status.head:
            raise StoreError(f"the upgrade stopped at {reached}, not at {status.head}")
    if status.current != status.head:
        log.info("schema upgraded from=%s to=%s", status.current, status.head)
    return status.current, status.head


@contextlib.contextmanager
def _schema_transaction(engine: Engine, *, foreign_keys: bool = True) -> Iterator[Connection]:
    """One connection in one transaction, committed when the block ends (rolled back if it
    raises), that no other process checks or changes the schema in at the same time.

    ``foreign_keys=False`` turns SQLite's enforcement off meanwhile (it can only change
    outside a transaction), as SQLite requires for the table copies of batch migrations;
    :func:`_check_foreign_keys` checks the rows before the commit instead.
    """
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite and not foreign_keys:
            _sqlite_pragma(connection, "foreign_keys=OFF")
        try:
            with connection.begin():
                if sqlite:
                    # pysqlite begins lazily; take the write lock now, before reading.
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                elif connection.dialect.name == "postgresql":
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(CAST(:key AS bigint))"),
                        {"key": SCHEMA_LOCK_KEY},
                    )
                yield connection
        finally:
            if sqlite and not foreign_keys:
                _sqlite_pragma(connection, "foreign_keys=ON")


def _sqlite_pragma(connection: Connection, pragma: str) -> None:
    """Set a pragma outside any transaction (a broken connection is dropped instead, so it
    never returns to the pool with the pragma half set)."""
    try:
        connection.exec_driver_sql(f"PRAGMA {pragma}")
        connection.commit()
    except SQLAlchemyError:
        connection.invalidate()
        raise


def _check_foreign_keys(connection: Connection) -> None:
    if connection.dialect.name != "sqlite":
        return  # PostgreSQL checks every row as it is written
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        tables = sorted({str(row[0]) for row in broken})
        raise StoreError(f"the upgrade left rows with broken references in {', '.join(tables)}")


@contextlib.contextmanager
def _storage_errors(doing: str) -> Iterator[None]:
    """Translate SQLAlchemy's and Alembic's errors into StoreError (ours pass through)."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot {doing}: {type(exc).__name__}") from exc
    except CommandError as exc:  # its messages name revisions, never the URL
        raise StoreError(f"cannot {doing}: {exc}") from exc
