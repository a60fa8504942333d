"""Fixtures for a real, throwaway PostgreSQL server (imported by ``tests/conftest.py``).

``postgres_url`` (session): starts a private server on 127.0.0.1 from the
PostgreSQL binaries (``initdb``, ``pg_ctl``) in a fresh directory under /tmp,
with trust auth and ``fsync=off``, creates the database ``pantau_test`` and
yields its SQLAlchemy URL; the server is stopped and its directory removed at
the end of the session. When ``PANTAU_TEST_PG_URL`` is set, that server is used
instead and nothing is started. Without the binaries the tests skip, unless
``CI=true``: CI must have PostgreSQL, so there they fail.

``pg_store_url`` (function): a fresh, empty database on that server per test,
dropped afterwards.

``store_url`` (function): parametrized over ``sqlite`` and ``postgres`` for the
store's contract tests; the ``postgres`` case carries the ``postgres`` marker.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

PG_BIN_ENV = "PANTAU_TEST_PG_BIN"
PG_URL_ENV = "PANTAU_TEST_PG_URL"
PREFERRED_PG_BIN = Path("/usr/lib/postgresql/15/bin")
DATABASE = "pantau_test"
SERVER_USER = "postgres"  # runs the server when the tests run as root


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _unavailable(reason: str) -> NoReturn:
    """Skip, or fail under CI, where PostgreSQL must be present."""
    if _in_ci():
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"no PostgreSQL for the tests: {reason}")


def _find_pg_bin() -> Path | None:
    """Return the directory holding initdb and pg_ctl (version 15 preferred)."""
    override = os.environ.get(PG_BIN_ENV)
    candidates = [Path(override)] if override else [PREFERRED_PG_BIN]
    if not override:
        others = Path("/usr/lib/postgresql").glob("*/bin")
        candidates += sorted(others, key=lambda p: p.parent.name, reverse=True)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class _Server:
    """A throwaway PostgreSQL cluster in ``root`` (data, socket and log inside)."""

    bin_dir: Path
    root: Path
    as_user: str | None  # run the binaries as this user (we are root), else as ourselves
    port: int = 0
    #: Durable commits (fsync and synchronous_commit on): for tests that crash or restart
    #: the server and check that committed rows survive. Off by default, for speed.
    durable: bool = False

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.as_user:
            command = ["runuser", "-u", self.as_user, "--", *command]
        return subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=120, cwd=self.root
        )

    def _check(self, proc: subprocess.CompletedProcess[str], what: str) -> None:
        if proc.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{what} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n{log}"
            )

    def init(self) -> None:
        proc = self._run(
            "initdb",
            *("-D", str(self.data), "-U", "postgres", "--auth=trust"),
            *("--encoding=UTF8", "--locale=C", "--no-sync"),
        )
        self._check(proc, "initdb")

    def start(self) -> None:
        options = " ".join(
            (
                "-c listen_addresses=127.0.0.1",
                f"-c port={self.port}",
                f"-c unix_socket_directories={self.root}",
                "-c max_connections=200",
                ""
                if self.durable
                else "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            )
        )
        proc = self._run(
            "pg_ctl",
            *("-D", str(self.data), "-l", str(self.log), "-o", options),
            *("-w", "-t", "60", "start"),
        )
        self._check(proc, "pg_ctl start")

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"


def _prepare_root() -> tuple[Path, str | None]:
    """Make a fresh directory under /tmp that the server's user owns."""
    base = "/tmp" if Path("/tmp").is_dir() else None
    root = Path(tempfile.mkdtemp(prefix="pantau-pg-", dir=base))
    if os.geteuid() != 0:
        return root, None
    try:
        user = pwd.getpwnam(SERVER_USER)
    except KeyError:
        shutil.rmtree(root, ignore_errors=True)
        _unavailable(f"running as root but there is no {SERVER_USER!r} user to run the server")
    os.chown(root, user.pw_uid, user.pw_gid)
    root.chmod(0o700)
    return root, SERVER_USER


def _start_server(bin_dir: Path, *, durable: bool = False) -> _Server:
    root, as_user = _prepare_root()
    server = _Server(bin_dir=bin_dir, root=root, as_user=as_user, durable=durable)
    try:
        server.init()
        for attempt in range(3):  # another process may grab the free port in between
            server.port = _free_port()
            try:
                server.start()
                break
            except RuntimeError:
                if attempt == 2:
                    raise
    except BaseException:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
    return server


@contextlib.contextmanager
def private_server(*, durable: bool = True) -> Iterator[_Server]:
    """A PostgreSQL server of one's own (to stop, restart or crash), with a database
    ``pantau`` created; removed on exit. Skips (fails under CI) without the binaries."""
    bin_dir = _find_pg_bin()
    if bin_dir is None:
        _unavailable("initdb and pg_ctl not found (install the Debian package postgresql-15)")
    server = _start_server(bin_dir, durable=durable)
    try:
        _admin_execute(server.url(), 'CREATE DATABASE "pantau"')
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


def _admin_execute(url: str, *statements: str) -> None:
    """Run statements in autocommit mode (CREATE/DROP DATABASE need it)."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A SQLAlchemy URL of a PostgreSQL database for this test session."""
    override = os.environ.get(PG_URL_ENV)
    if override:
        yield override
        return
    bin_dir = _find_pg_bin()
    if bin_dir is None:
        _unavailable(
            f"initdb and pg_ctl not found in {PREFERRED_PG_BIN} or /usr/lib/postgresql/*/bin "
            f"(install the Debian package postgresql-15, set {PG_BIN_ENV}, "
            f"or point {PG_URL_ENV} at a server)"
        )
    server = _start_server(bin_dir)
    try:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{server.port}/{DATABASE}"
        maintenance = f"postgresql+psycopg://postgres@127.0.0.1:{server.port}/postgres"
        _admin_execute(maintenance, f'CREATE DATABASE "{DATABASE}"')
        yield url
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture
def pg_store_url(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    name = f"pantau_t_{uuid.uuid4().hex[:12]}"
    _admin_execute(postgres_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        # FORCE ends connections a test left open, so the drop never waits on them.
        with contextlib.suppress(Exception):
            _admin_execute(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL for contract tests, once per backend (each test gets an empty one)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/pantau.db"
    return str(request.getfixturevalue("pg_store_url"))
