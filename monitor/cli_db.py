"""``pantau db``: the database schema. Exit codes: 0 ok (current), 1 behind, 2 storage error.

:mod:`monitor.cli` registers :data:`db_app`, so the commands import it (its settings and
consoles) when they run, never at import time.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from sqlalchemy.exc import SQLAlchemyError

from monitor.store import Store, StoreError

if TYPE_CHECKING:
    from monitor.config import Settings

db_app = typer.Typer(help="The database schema: upgrade and inspect.", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade() -> None:
    """Upgrade the database schema to this Pantau's (after installing a newer Pantau).

    Running it again changes nothing; Pantaus starting meanwhile wait for it. Exit 2 when
    the database cannot be reached, or a newer Pantau upgraded it."""
    from monitor import schema
    from monitor.cli import out, settings

    cfg = settings()
    store = _store(cfg)
    try:
        before, after = schema.upgrade(store.engine)
    except StoreError as exc:
        _fail(cfg, str(exc))
    finally:
        store.close()
    if before == after:
        out.print(f"schema is up to date ({after})", markup=False)
    else:
        out.print(f"schema upgraded: {before or 'none'} -> {after}", markup=False)


@db_app.command("current")
def current(
    as_json: Annotated[
        bool, typer.Option("--json", help='One JSON object: "current", "head", "state".')
    ] = False,
) -> None:
    """Print the database's schema revision and this Pantau's (head).

    Exit 0 when they match; 1 when the database needs "pantau db upgrade" (or is empty);
    2 when it cannot be read, or a newer Pantau upgraded it."""
    from monitor import schema
    from monitor.cli import err, out, settings

    cfg = settings()
    store = _store(cfg)
    try:
        status = schema.inspect_schema(store.engine)
    except StoreError as exc:
        _fail(cfg, str(exc))
    finally:
        store.close()
    if as_json:
        fields = {"current": status.current, "head": status.head, "state": status.state}
        out.print(json.dumps(fields), markup=False)
    else:
        out.print(f"current: {status.current or 'none'}", markup=False)
        out.print(f"head: {status.head}", markup=False)
        out.print(f"state: {status.state}", markup=False)
    problem = status.problem()
    if problem is not None:
        err.print(str(problem), markup=False)
    elif status.state == "empty":
        err.print('the database has no Pantau tables yet: run "pantau db upgrade"', markup=False)
    if status.state == "ahead":
        raise typer.Exit(2)
    raise typer.Exit(0 if status.state == "current" else 1)


def _store(cfg: Settings) -> Store:
    """The store, its schema untouched; exit 2 for a URL SQLAlchemy cannot use (whose
    message would quote the URL, password included, so only its kind is told)."""
    try:
        return Store(cfg.database_url(), create=False)
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        _fail(cfg, f"cannot use the storage URL: {type(exc).__name__}")


def _fail(cfg: Settings, message: str) -> NoReturn:
    from monitor.cli import err

    err.print(f"storage error ({cfg.storage.url.masked()}): {message}", markup=False)
    raise typer.Exit(2)
