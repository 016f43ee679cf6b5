"""A template's engine is called ``engine``, and crun's ``crun`` (they were ``runtime`` and ``container``).

On SQLite the column keeps its former server default (changing it would rebuild ``templates``, and with
foreign keys on, dropping it deletes the rows that reference it); every insert names the engine, and a
former name read back is still understood.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE templates RENAME COLUMN runtime TO engine")
    op.execute("UPDATE templates SET engine = 'crun' WHERE engine = 'container'")
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("templates", "engine", server_default=sa.text("'crun'"))


def downgrade() -> None:
    op.execute("UPDATE templates SET engine = 'container' WHERE engine = 'crun'")
    op.execute("ALTER TABLE templates RENAME COLUMN engine TO runtime")
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("templates", "runtime", server_default=sa.text("'container'"))
