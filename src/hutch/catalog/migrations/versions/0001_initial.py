"""Teams, API keys, templates and sandboxes.

The schema as ``create_all`` made it before the catalog had migrations. A database made that way is
stamped at this revision (``catalog.migrate``), so this revision must stay exactly that schema, unnamed
constraints included.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "teams",
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("team_id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "templates",
        sa.Column("template_id", sa.String(255), nullable=False),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("rootfs", sa.String(4096), nullable=False),
        sa.Column("default_user", sa.String(255), nullable=False),
        sa.Column("default_workdir", sa.String(4096), nullable=True),
        sa.Column("env", sa.JSON(), nullable=False),
        sa.Column("cpu_count", sa.Integer(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("disk_mb", sa.Integer(), nullable=False),
        sa.Column("start_cmd", sa.String(8192), nullable=True),
        sa.Column("ready_cmd", sa.String(8192), nullable=True),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("template_id"),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("mask", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_hash"),
        sa.ForeignKeyConstraint(["team_id"], ["teams.team_id"], ondelete="CASCADE"),
    )
    op.create_index("ix_api_keys_team_id", "api_keys", ["team_id"])
    op.create_table(
        "sandboxes",
        sa.Column("sandbox_id", sa.String(64), nullable=False),
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("template_id", sa.String(255), nullable=False),
        sa.Column("alias", sa.String(255), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("cpu_count", sa.Integer(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("disk_mb", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("port_overrides", sa.JSON(), nullable=False),
        sa.Column("node_id", sa.String(255), nullable=False),
        sa.Column("envd_version", sa.String(32), nullable=False),
        sa.Column("envd_access_token", sa.String(255), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("allow_internet_access", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("sandbox_id"),
        sa.UniqueConstraint("team_id", "idempotency_key", name="uq_sandboxes_team_idempotency_key"),
        sa.ForeignKeyConstraint(["team_id"], ["teams.team_id"], ondelete="CASCADE"),
    )
    op.create_index("ix_sandboxes_end_at", "sandboxes", ["end_at"])
    op.create_index("ix_sandboxes_team_started", "sandboxes", ["team_id", "started_at", "sandbox_id"])
    op.create_index("ix_sandboxes_node_id", "sandboxes", ["node_id"])


def downgrade() -> None:
    op.drop_table("sandboxes")
    op.drop_table("api_keys")
    op.drop_table("templates")
    op.drop_table("teams")
