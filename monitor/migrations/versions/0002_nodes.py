"""The ``node`` table: each ``pantau run`` process's role, region and heartbeat, and
whether it leads the coordinators (``pantau status`` lists them); which process claimed
an alert delivery (``alert_delivery.claimed_by``), so one left ``sending`` by a process
that died is sent again.

Revision ID: 0002_nodes
Revises: 0001_initial
Create Date: 2026-11-28 23:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002_nodes"
down_revision: str | None = "0001_initial"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "node",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leader", sa.Boolean(), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_node_heartbeat_at"), "node", ["heartbeat_at"], unique=False)
    with op.batch_alter_table("alert_delivery") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alert_delivery") as batch:
        batch.drop_column("claimed_by")
    op.drop_index(op.f("ix_node_heartbeat_at"), table_name="node")
    op.drop_table("node")
