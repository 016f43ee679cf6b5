"""Volumes: a team's file systems that outlive sandboxes, and which volumes a sandbox (or a snapshot's
sandboxes) mounts.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "volumes",
        sa.Column("volume_id", sa.String(64), primary_key=True),
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("size_mb", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.team_id"], ondelete="CASCADE", name="fk_volumes_team_id"
        ),
        sa.UniqueConstraint("team_id", "name", name="uq_volumes_team_name"),
    )
    op.create_index("ix_volumes_team_id", "volumes", ["team_id"])
    # Plain ADD COLUMNs: a batch on SQLite would copy and drop the tables (see 0010).
    for table in ("sandboxes", "templates"):
        op.add_column(
            table, sa.Column("volume_mounts", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )


def downgrade() -> None:
    for table in ("sandboxes", "templates"):
        op.drop_column(table, "volume_mounts")
    op.drop_index("ix_volumes_team_id", table_name="volumes")
    op.drop_table("volumes")
