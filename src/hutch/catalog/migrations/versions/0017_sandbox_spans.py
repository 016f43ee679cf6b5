"""Sandbox spans: the stretches of time each sandbox ran, kept after it is gone, for a team's usage.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sandbox_spans",
        sa.Column("span_id", sa.String(36), primary_key=True),
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("sandbox_id", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.team_id"], ondelete="CASCADE", name="fk_sandbox_spans_team_id"
        ),
    )
    op.create_index("ix_sandbox_spans_team_started", "sandbox_spans", ["team_id", "started_at"])
    op.create_index("ix_sandbox_spans_sandbox_ended", "sandbox_spans", ["sandbox_id", "ended_at"])
    op.create_index("ix_sandbox_spans_ended_at", "sandbox_spans", ["ended_at"])
    # The sandboxes running now have run since they started (or, if resumed, since the catalog last
    # knew): their spans begin then.
    op.execute(
        "INSERT INTO sandbox_spans (span_id, team_id, sandbox_id, started_at) "
        "SELECT sandbox_id, team_id, sandbox_id, started_at FROM sandboxes WHERE state = 'running'"
    )


def downgrade() -> None:
    op.drop_index("ix_sandbox_spans_ended_at", table_name="sandbox_spans")
    op.drop_index("ix_sandbox_spans_sandbox_ended", table_name="sandbox_spans")
    op.drop_index("ix_sandbox_spans_team_started", table_name="sandbox_spans")
    op.drop_table("sandbox_spans")
