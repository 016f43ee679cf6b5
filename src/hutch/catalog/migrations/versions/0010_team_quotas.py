"""Teams get their own quotas: the operator's limits by name, over the configured defaults.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: on SQLite a batch would copy ``teams`` and drop it, and with foreign keys on,
    # dropping it deletes every key, template and sandbox row that references it.
    op.add_column("teams", sa.Column("quotas", sa.JSON(), nullable=False, server_default=sa.text("'{}'")))


def downgrade() -> None:
    op.drop_column("teams", "quotas")
