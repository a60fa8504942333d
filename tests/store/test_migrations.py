"""The schema's migrations (monitor/migrations, monitor/schema.py), on SQLite and PostgreSQL.

``test_the_migrations_build_exactly_the_schema_of_the_models`` is the guard for every
change of the models: a table, column or index added to monitor/store.py without a
revision that adds it fails there.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, make_url, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel

from checks.base import ProbeResult
from monitor import schema
from monitor.schema import SchemaAhead, SchemaBehind
from monitor.store import Store, StoreError, make_engine

T0 = datetime(2026, 9, 17, 7, 0, tzinfo=UTC)
HEAD = schema.head_revision()


# -- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    """An engine on the test's empty database (SQLite or PostgreSQL)."""
    engine = make_engine(store_url)
    yield engine
    engine.dispose()


@pytest.fixture
def another_url(store_url: str, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Makes more empty databases of the same backend as ``store_url`` (dropped after)."""
    made: list[str] = []

    def make() -> str:
        if store_url.startswith("sqlite"):
            return f"sqlite:///{tmp_path}/other-{uuid.uuid4().hex[:8]}.db"
        url = make_url(store_url).set(database=f"pantau_o_{uuid.uuid4().hex[:12]}")
        assert url.database is not None
        _admin(store_url, f'CREATE DATABASE "{url.database}"')
        made.append(url.database)
        return url.render_as_string(hide_password=False)

    yield make
    for name in made:
        _admin(store_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(url: str, statement: str) -> None:
    admin = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as connection:
            connection.execute(text(statement))
    finally:
        admin.dispose()


def migrate(engine: Engine, revision: str, *, down: bool = False) -> None:
    """Run Alembic's own upgrade (or downgrade) to ``revision``, as a revision's author would."""
    with engine.begin() as connection:
        config = schema.alembic_config(connection)
        (command.downgrade if down else command.upgrade)(config, revision)


def make_legacy(engine: Engine) -> None:
    """A database as a Pantau before migrations left it: revision 0001's tables and no
    ``alembic_version``."""
    migrate(engine, schema.LEGACY_REVISION)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))


def status(engine: Engine) -> schema.SchemaStatus:
    return schema.inspect_schema(engine)


def differences(engine: Engine) -> list[Any]:
    """What autogenerate would change to make the database match the models."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))


def snapshot(connection: Connection) -> dict[str, dict[str, Any]]:
    """Every Pantau table as the database describes it: columns, keys, indexes."""
    inspector = inspect(connection)
    tables: dict[str, dict[str, Any]] = {}
    for table in sorted(set(inspector.get_table_names()) - {"alembic_version"}):
        # By name: a column a revision adds comes last, wherever the model declares it.
        columns = {
            c["name"]: (str(c["type"]), c["nullable"], c.get("default"))
            for c in inspector.get_columns(table)
        }
        tables[table] = {
            "columns": columns,
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "foreign_keys": sorted(
                (tuple(fk["constrained_columns"]), fk["referred_table"])
                for fk in inspector.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
            ),
            "unique": sorted(
                (u["name"] or "", tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(table)
            ),
        }
    return tables


def snapshot_of(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as connection:
        return snapshot(connection)


def pantau_tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) & set(SQLModel.metadata.tables)


def versions(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


def add_result(url: str) -> None:
    store = Store(url, create=False)
    try:
        with store.tx() as tx:
            tx.add_result(
                ProbeResult(
                    check_id="login", component_id="auth", started_at=T0, ok=True, latency_ms=9.0
                )
            )
    finally:
        store.close()


def result_count(url: str) -> int:
    store = Store(url, create=False)
    try:
        with store.read() as tx:
            return tx.count_results()
    finally:
        store.close()


# -- the revisions -----------------------------------------------------------------------------


def test_the_revisions_are_one_numbered_line_of_files_named_by_their_ids() -> None:
    revisions = schema.revisions()
    assert revisions[0] == schema.LEGACY_REVISION
    assert revisions[-1] == HEAD
    script = schema._script()
    for number, revision in enumerate(revisions, start=1):
        assert re.fullmatch(r"\d{4}_[a-z0-9_]+", revision), revision
        assert revision.startswith(f"{number:04d}_"), revisions
        assert len(revision) <= 32  # alembic_version.version_num is a VARCHAR(32)
        found = script.get_revision(revision)
        assert found is not None
        assert Path(found.path).name == f"{revision}.py"
        assert found.down_revision == (revisions[number - 2] if number > 1 else None)


def test_the_migrations_build_exactly_the_schema_of_the_models(engine: Engine) -> None:
    assert schema.upgrade(engine) == (None, HEAD)
    assert differences(engine) == []
    assert versions(engine) == [HEAD]


def test_a_new_store_creates_the_schema_the_migrations_build(
    store_url: str, another_url: Callable[[], str]
) -> None:
    created = Store(store_url)  # create_all, then stamped at head
    migrated = make_engine(another_url())
    try:
        schema.upgrade(migrated)
        assert (
            status(created.engine) == status(migrated) == schema.SchemaStatus(HEAD, HEAD, "current")
        )
        tables = snapshot_of(created.engine)
        assert tables == snapshot_of(migrated)
        assert set(tables) == set(SQLModel.metadata.tables)
        assert differences(created.engine) == []
    finally:
        created.close()
        migrated.dispose()


def test_every_revision_downgrades_and_upgrades_again(engine: Engine, store_url: str) -> None:
    """From each older revision ``pantau db upgrade`` reaches head, and until then every
    store refuses the database; down to ``base`` nothing of Pantau is left."""
    schema.upgrade(engine)
    add_result(store_url)
    for revision in reversed(schema.revisions()[:-1]):
        migrate(engine, revision, down=True)
        assert status(engine) == schema.SchemaStatus(revision, HEAD, "behind")
        expected = f"the database schema is at revision {revision}; this Pantau needs {HEAD}: "
        with pytest.raises(SchemaBehind, match=re.escape(expected + 'run "pantau db upgrade"')):
            Store(store_url)
        assert schema.upgrade(engine) == (revision, HEAD)
        assert result_count(store_url) == 1  # the data went along
    migrate(engine, "base", down=True)
    assert pantau_tables(engine) == set()
    assert status(engine).state == "empty"
    assert schema.upgrade(engine) == (None, HEAD)
    assert differences(engine) == []


def test_a_new_store_on_a_database_at_head_changes_nothing(engine: Engine, store_url: str) -> None:
    Store(store_url).close()
    add_result(store_url)
    Store(store_url).close()
    assert result_count(store_url) == 1
    assert versions(engine) == [HEAD]
    assert schema.upgrade(engine) == (HEAD, HEAD)


# -- databases made before migrations --------------------------------------------------------


def test_a_database_from_before_migrations_is_refused_until_upgraded(
    engine: Engine, store_url: str
) -> None:
    make_legacy(engine)
    add_result(store_url)
    assert status(engine) == schema.SchemaStatus(None, HEAD, "unversioned")
    message = (
        "the database schema was made by a Pantau before migrations; "
        f'this Pantau needs {HEAD}: run "pantau db upgrade"'
    )
    with pytest.raises(SchemaBehind, match=re.escape(message)) as refused:
        Store(store_url)
    assert isinstance(refused.value, StoreError)
    assert "alembic_version" not in inspect(engine).get_table_names()  # nothing written

    assert schema.upgrade(engine) == (None, HEAD)
    assert schema.upgrade(engine) == (HEAD, HEAD)
    assert versions(engine) == [HEAD]
    assert differences(engine) == []
    Store(store_url).close()
    assert result_count(store_url) == 1


def test_a_failed_upgrade_on_sqlite_changes_nothing(tmp_path: Path) -> None:
    """A row with a broken reference (written with enforcement off) fails the check made
    before the commit: the stamp and every revision are rolled back with it."""
    engine = make_engine(f"sqlite:///{tmp_path}/p.db")
    make_legacy(engine)
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.execute(
            text(
                "INSERT INTO incident_component (incident_id, component_id, status) "
                "VALUES (999, 'auth', 'major_outage')"
            )
        )
        connection.commit()
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
    before = snapshot_of(engine)
    with pytest.raises(StoreError, match="broken references in incident_component"):
        schema.upgrade(engine)
    assert status(engine).state == "unversioned"
    assert snapshot_of(engine) == before
    engine.dispose()


def test_an_upgrade_on_sqlite_leaves_foreign_keys_enforced() -> None:
    engine = make_engine("sqlite://")  # one connection, used again after the upgrade
    schema.upgrade(engine)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
    engine.dispose()


# -- databases from a newer Pantau ------------------------------------------------------------


def test_a_database_at_an_unknown_revision_is_refused_and_never_upgraded(
    engine: Engine, store_url: str
) -> None:
    Store(store_url).close()
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    assert status(engine) == schema.SchemaStatus("9999_future", HEAD, "ahead")
    message = f"at revision 9999_future, which this Pantau does not know (its newest is {HEAD})"
    with pytest.raises(SchemaAhead, match=re.escape(message)):
        Store(store_url)
    with pytest.raises(SchemaAhead, match="a newer Pantau upgraded it"):
        schema.upgrade(engine)
    assert versions(engine) == ["9999_future"]


def test_store_create_false_leaves_the_schema_alone(engine: Engine, store_url: str) -> None:
    make_legacy(engine)
    Store(store_url, create=False).close()
    Store(store_url, create=False).close()
    assert status(engine).state == "unversioned"
    assert "alembic_version" not in inspect(engine).get_table_names()


# -- unreachable databases ------------------------------------------------------------------


def test_an_unreachable_database_is_a_store_error_without_its_password() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql+psycopg://pantau:pw-Zq81x@127.0.0.1:{port}/pantau"
    engine = make_engine(url)
    for attempt in (lambda: Store(url), lambda: schema.upgrade(engine)):
        with pytest.raises(StoreError) as failed:
            attempt()
        assert "pw-Zq81x" not in str(failed.value)
        assert not isinstance(failed.value, SchemaBehind | SchemaAhead)
    engine.dispose()


# -- two processes at once ----------------------------------------------------------------------


def test_stores_starting_at_once_on_an_empty_database_create_the_schema_once(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """As processes starting side by side would: each its own engine, all at one moment."""
    caplog.set_level(logging.INFO, logger="monitor.schema")
    racers = 4
    start = threading.Barrier(racers)
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            start.wait(timeout=30)
            Store(store_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    created = [r for r in caplog.records if r.getMessage().startswith("schema created")]
    assert len(created) == 1
    engine = make_engine(store_url)
    try:
        assert versions(engine) == [HEAD]
        assert differences(engine) == []
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("step", ["ensure_current", "upgrade"])
def test_schema_changes_wait_for_the_postgresql_schema_lock(pg_store_url: str, step: str) -> None:
    engine = make_engine(pg_store_url)
    done = threading.Event()
    errors: list[BaseException] = []

    def change() -> None:
        try:
            getattr(schema, step)(engine)
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    holder = make_engine(pg_store_url)
    with holder.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": schema.SCHEMA_LOCK_KEY})
        connection.commit()
        thread = threading.Thread(target=change)
        thread.start()
        time.sleep(0.5)
        assert not done.is_set()  # it waits for the lock before reading anything
        assert pantau_tables(engine) == set()
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": schema.SCHEMA_LOCK_KEY})
        connection.commit()
    thread.join(timeout=30)
    holder.dispose()
    assert errors == []
    assert status(engine).state == "current"
    engine.dispose()
