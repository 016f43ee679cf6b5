"""Quota holds on a shared catalog: what calls in progress on every API replica hold of a team's quotas.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quota_holds",
        sa.Column("hold_id", sa.String(36), primary_key=True),
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("quota", sa.String(64), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.team_id"], ondelete="CASCADE", name="fk_quota_holds_team_id"
        ),
    )
    op.create_index("ix_quota_holds_team_id", "quota_holds", ["team_id"])


def downgrade() -> None:
    op.drop_index("ix_quota_holds_team_id", table_name="quota_holds")
    op.drop_table("quota_holds")
