"""Secrets: a team's values, sealed with the server key, that egress header rules name; and the egress
settings of sandboxes and snapshots (header rules, upstream proxy, name servers; never a secret's value).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "secrets",
        sa.Column("secret_id", sa.String(64), primary_key=True),
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("sealed_value", sa.LargeBinary(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.team_id"], ondelete="CASCADE", name="fk_secrets_team_id"
        ),
        sa.UniqueConstraint("team_id", "name", name="uq_secrets_team_name"),
    )
    op.create_index("ix_secrets_team_created", "secrets", ["team_id", "created_at", "secret_id"])
    for table in ("sandboxes", "templates"):
        op.add_column(table, sa.Column("egress", sa.JSON(), nullable=True))


def downgrade() -> None:
    for table in ("sandboxes", "templates"):
        op.drop_column(table, "egress")
    op.drop_index("ix_secrets_team_created", table_name="secrets")
    op.drop_table("secrets")
