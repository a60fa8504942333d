"""How each process saw the store: results buffered in memory while it could not be
written, results dropped for want of room, failed writes and the last failure
(``pantau status`` shows them per process).

Revision ID: 0003_node_store_health
Revises: 0002_nodes
Create Date: 2026-11-28 23:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003_node_store_health"
down_revision: str | None = "0002_nodes"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("node") as batch:
        batch.add_column(sa.Column("buffered", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("dropped", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("store_errors", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("last_store_error", sa.String(length=500), nullable=True))
        batch.add_column(
            sa.Column("last_store_error_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("node") as batch:
        for name in (
            "last_store_error_at",
            "last_store_error",
            "store_errors",
            "dropped",
            "buffered",
        ):
            batch.drop_column(name)
