"""Template builds, their log entries and tags; a template's current build and the state of its latest.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("templates") as batch:
        batch.add_column(sa.Column("build_id", sa.String(36), nullable=True))
        batch.add_column(
            sa.Column("build_status", sa.String(16), nullable=False, server_default=sa.text("'ready'"))
        )
    op.create_table(
        "template_builds",
        sa.Column("build_id", sa.String(36), primary_key=True),
        sa.Column(
            "template_id",
            sa.String(255),
            sa.ForeignKey(
                "templates.template_id", ondelete="CASCADE", name="fk_template_builds_template_id_templates"
            ),
            nullable=False,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.JSON, nullable=True),
        sa.Column("cpu_count", sa.Integer, nullable=False),
        sa.Column("memory_mb", sa.Integer, nullable=False),
        sa.Column("disk_mb", sa.Integer, nullable=False),
        sa.Column("rootfs", sa.String(4096), nullable=True),
        sa.Column("default_user", sa.String(255), nullable=True),
        sa.Column("default_workdir", sa.String(4096), nullable=True),
        sa.Column("env", sa.JSON, nullable=False),
        sa.Column("start_cmd", sa.String(8192), nullable=True),
        sa.Column("ready_cmd", sa.String(8192), nullable=True),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("log_count", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_template_builds_template_id", "template_builds", ["template_id"])
    op.create_table(
        "template_build_logs",
        sa.Column(
            "build_id",
            sa.String(36),
            sa.ForeignKey(
                "template_builds.build_id", ondelete="CASCADE", name="fk_template_build_logs_build_id"
            ),
            primary_key=True,
        ),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("step", sa.String(32), nullable=True),
    )
    op.create_table(
        "template_tags",
        sa.Column(
            "template_id",
            sa.String(255),
            sa.ForeignKey(
                "templates.template_id", ondelete="CASCADE", name="fk_template_tags_template_id_templates"
            ),
            primary_key=True,
        ),
        sa.Column("tag", sa.String(255), primary_key=True),
        sa.Column("build_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("template_tags")
    op.drop_table("template_build_logs")
    op.drop_index("ix_template_builds_template_id", "template_builds")
    op.drop_table("template_builds")
    with op.batch_alter_table("templates") as batch:
        batch.drop_column("build_status")
        batch.drop_column("build_id")
