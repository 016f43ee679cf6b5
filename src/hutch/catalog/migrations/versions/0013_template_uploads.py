"""A cluster's ``COPY`` uploads, in the catalog: the uploads, and their bytes in chunks.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "template_uploads",
        sa.Column("template_id", sa.String(255), primary_key=True),
        sa.Column("files_hash", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["templates.template_id"],
            ondelete="CASCADE",
            name="fk_template_uploads_template_id",
        ),
    )
    op.create_table(
        "template_upload_chunks",
        sa.Column("template_id", sa.String(255), primary_key=True),
        sa.Column("files_hash", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["template_id", "files_hash"],
            ["template_uploads.template_id", "template_uploads.files_hash"],
            ondelete="CASCADE",
            name="fk_template_upload_chunks_upload",
        ),
    )


def downgrade() -> None:
    op.drop_table("template_upload_chunks")
    op.drop_table("template_uploads")
