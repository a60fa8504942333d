"""End-to-end tests of ``pantau db`` and of the schema check every store command makes,
on SQLite and on a real PostgreSQL (whose URL carries a password that is never printed).

Exit codes: 0 ok (schema current), 1 behind, 2 storage error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cli_support import ConfigWriter, Outcome, Pantau, StubServer, toml_value
from sqlalchemy import inspect, make_url, text
from sqlalchemy.engine import Engine

from monitor import schema
from monitor.store import Store, make_engine

HEAD = schema.head_revision()
PASSWORD_VAR = "PANTAU_DB_PASSWORD"
SECRET = "pg-pw-Zq81x-secret"
UPGRADE_HINT = 'run "pantau db upgrade"'


@dataclass
class Database:
    """The test's empty database: its URL as configured (the password as a ``${VAR}``),
    resolved (for the test's own reads), and the environment that resolves it."""

    url: str
    configured: str
    env: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def database(store_url: str) -> Database:
    if store_url.startswith("sqlite"):
        return Database(url=store_url, configured=store_url)
    url = make_url(store_url)
    configured = (
        f"{url.drivername}://{url.username}:${{{PASSWORD_VAR}}}@{url.host}:{url.port}/"
        f"{url.database}"
    )
    resolved = url.set(password=SECRET).render_as_string(hide_password=False)
    return Database(url=resolved, configured=configured, env={PASSWORD_VAR: SECRET})


@pytest.fixture
def engine(database: Database) -> Iterator[Engine]:
    engine = make_engine(database.url)
    yield engine
    engine.dispose()


@pytest.fixture
def config_path(
    config: ConfigWriter, database: Database, stub_server: Callable[..., StubServer]
) -> Path:
    """A config with one check of a stub server, whose store is the test's database."""
    server = stub_server()
    check = {"id": "home-page", "component": "home", "url": server.url("/"), "interval": "500ms"}
    return use_database(config, config.write([check]), database.configured)


def use_database(config: ConfigWriter, path: Path, url: str) -> Path:
    """Point the config file's ``[storage] url`` at ``url`` (ConfigWriter writes SQLite's)."""
    sqlite = f"url = {toml_value(f'sqlite:///{config.db}')}"
    written = path.read_text("utf-8")
    assert written.count(sqlite) == 1
    path.write_text(written.replace(sqlite, f"url = {toml_value(url)}"), "utf-8")
    return path


@pytest.fixture
def db_pantau(pantau: Pantau, database: Database) -> Pantau:
    pantau.env.update(database.env)
    return pantau


def assert_no_secret(*outcomes: Outcome) -> None:
    for outcome in outcomes:
        assert SECRET not in outcome.stdout + outcome.stderr, str(outcome)


def make_legacy(engine: Engine) -> None:
    """A database as a Pantau before migrations left it: revision 0001's tables and no
    ``alembic_version``."""
    from alembic import command

    with engine.begin() as connection:
        command.upgrade(schema.alembic_config(connection), schema.LEGACY_REVISION)
        connection.execute(text("DROP TABLE alembic_version"))


def result_count(url: str) -> int:
    store = Store(url, create=False)
    try:
        with store.read() as tx:
            return tx.count_results()
    finally:
        store.close()


def current_json(outcome: Outcome) -> dict[str, object]:
    (line,) = outcome.lines()
    parsed = json.loads(line)
    assert isinstance(parsed, dict)
    return parsed


def test_a_database_from_before_migrations_is_refused_until_db_upgrade(
    db_pantau: Pantau, config_path: Path, config: ConfigWriter, database: Database, engine: Engine
) -> None:
    make_legacy(engine)
    ran, status, current = db_pantau.run_all(
        ["-c", config_path, "run", "--for", "1"],
        ["-c", config_path, "status"],
        ["-c", config_path, "db", "current", "--json"],
    )
    for refused in (ran, status):
        assert refused.code == 2, str(refused)
        assert "made by a Pantau before migrations" in refused.stderr, str(refused)
        assert f"this Pantau needs {HEAD}: {UPGRADE_HINT}" in refused.stderr, str(refused)
        assert "Traceback" not in refused.stderr, str(refused)
    assert current.code == 1, str(current)
    assert current_json(current) == {"current": None, "head": HEAD, "state": "unversioned"}
    # Nothing was written: no version, no results, no page.
    assert "alembic_version" not in inspect(engine).get_table_names()
    assert result_count(database.url) == 0
    assert not (config.site / "index.html").exists()

    upgraded = db_pantau.run("-c", config_path, "db", "upgrade")
    assert upgraded.code == 0, str(upgraded)
    assert upgraded.lines() == [f"schema upgraded: none -> {HEAD}"]
    again, current_now, ran_now = db_pantau.run_all(
        ["-c", config_path, "db", "upgrade"],
        ["-c", config_path, "db", "current"],
        ["-c", config_path, "run", "--for", "1"],
    )
    assert again.code == 0, str(again)
    assert again.lines() == [f"schema is up to date ({HEAD})"]
    assert current_now.code == 0, str(current_now)
    assert current_now.lines() == [f"current: {HEAD}", f"head: {HEAD}", "state: current"]
    assert ran_now.code == 0, str(ran_now)
    assert "Traceback" not in ran_now.stderr, str(ran_now)
    assert result_count(database.url) >= 1
    assert_no_secret(ran, status, current, upgraded, again, current_now, ran_now)


def test_db_upgrade_creates_the_schema_of_an_empty_database(
    db_pantau: Pantau, config_path: Path, engine: Engine
) -> None:
    empty = db_pantau.run("-c", config_path, "db", "current", "--json")
    assert empty.code == 1, str(empty)
    assert current_json(empty) == {"current": None, "head": HEAD, "state": "empty"}
    upgraded = db_pantau.run("-c", config_path, "db", "upgrade")
    assert upgraded.code == 0, str(upgraded)
    assert upgraded.lines() == [f"schema upgraded: none -> {HEAD}"]
    assert schema.inspect_schema(engine).state == "current"
    assert_no_secret(empty, upgraded)


def test_a_database_from_a_newer_pantau_is_refused_by_every_command(
    db_pantau: Pantau, config_path: Path, database: Database, engine: Engine
) -> None:
    Store(database.url).close()
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    outcomes = db_pantau.run_all(
        ["-c", config_path, "run", "--for", "1"],
        ["-c", config_path, "status"],
        ["-c", config_path, "db", "upgrade"],
        ["-c", config_path, "db", "current", "--json"],
    )
    for outcome in outcomes:
        assert outcome.code == 2, str(outcome)
        assert "at revision 9999_future, which this Pantau does not know" in outcome.stderr
        assert "a newer Pantau upgraded it" in outcome.stderr, str(outcome)
    assert current_json(outcomes[-1]) == {"current": "9999_future", "head": HEAD, "state": "ahead"}
    assert schema.inspect_schema(engine).current == "9999_future"
    assert_no_secret(*outcomes)


def test_db_commands_on_an_unreachable_database_exit_2_without_the_password(
    pantau: Pantau, config: ConfigWriter, closed_port: int
) -> None:
    configured = f"postgresql+psycopg://pantau:${{{PASSWORD_VAR}}}@127.0.0.1:{closed_port}/pantau"
    path = use_database(config, config.write(), configured)
    pantau.env[PASSWORD_VAR] = SECRET
    outcomes = pantau.run_all(
        ["-c", path, "db", "current"],
        ["-c", path, "db", "upgrade"],
        ["-c", path, "status"],
    )
    for outcome in outcomes:
        assert outcome.code == 2, str(outcome)
        assert f"storage error ({configured})" in outcome.stderr, str(outcome)
        assert "Traceback" not in outcome.stderr, str(outcome)
    assert_no_secret(*outcomes)
