"""The engine a template's sandboxes run on by default: ``container`` (crun) or ``gvisor``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("templates") as batch:
        batch.add_column(
            sa.Column("runtime", sa.String(32), nullable=False, server_default=sa.text("'container'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("templates") as batch:
        batch.drop_column("runtime")
