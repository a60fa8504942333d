"""Alembic's environment for Pantau's migrations.

Run only through :mod:`monitor.schema`, which passes an open connection in
``config.attributes["connection"]`` (inside its transaction, under its lock):
there is no alembic.ini and no offline (SQL script) mode.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

from monitor.store import UTCDateTime  # importing monitor.store registers every table


def render_type(kind: str, obj: Any, _context: AutogenContext) -> str | Literal[False]:
    """Autogenerate writes our column types as the plain SQLAlchemy types they create, so
    revisions never depend on sqlmodel's or our own type classes."""
    if kind != "type":
        return False
    if isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    return False


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Pantau's migrations run through monitor.schema (pantau db upgrade)")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    # SQLite alters most things by copying the table; batch mode does that for it.
    render_as_batch=True,
    compare_type=True,
    render_item=render_type,
)
with context.begin_transaction():
    context.run_migrations()
