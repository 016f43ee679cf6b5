"""Snapshots are templates made from a sandbox: the sandbox they came from.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("templates") as batch:
        batch.add_column(sa.Column("snapshot_of", sa.String(64), nullable=True))
        batch.create_index("ix_templates_snapshot_of", ["snapshot_of"])


def downgrade() -> None:
    with op.batch_alter_table("templates") as batch:
        batch.drop_index("ix_templates_snapshot_of")
        batch.drop_column("snapshot_of")
