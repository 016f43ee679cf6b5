"""A sandbox's lifecycle (what its timeout does, auto-resume) and how and since when it is paused.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sandboxes") as batch:
        batch.add_column(
            sa.Column("on_timeout", sa.String(8), nullable=False, server_default=sa.text("'kill'"))
        )
        batch.add_column(sa.Column("auto_pause_memory", sa.Boolean, nullable=True))
        batch.add_column(
            sa.Column("auto_resume", sa.Boolean, nullable=False, server_default=sa.text("false"))
        )
        batch.add_column(sa.Column("pause_mode", sa.String(16), nullable=True))
        batch.add_column(sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sandboxes") as batch:
        for column in ("paused_at", "pause_mode", "auto_resume", "auto_pause_memory", "on_timeout"):
            batch.drop_column(column)
