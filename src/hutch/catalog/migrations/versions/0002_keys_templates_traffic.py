"""API key ids, names and revocation; template owners; traffic access tokens.

API keys get an id, a name, E2B's masking details, a last use and a revocation time (for ``/api-keys``);
templates get an owning team; sandboxes get a traffic access token.

Keys stored before this revision get a fresh id and the name "Unnamed API key"; their masking details are
read from the mask they had (``e2b_abcd…wxyz``), assuming the 40 characters every generated key has.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_PREFIX = "e2b_"
_GENERATED_LENGTH = 40

_api_keys = sa.table(
    "api_keys",
    sa.column("key_hash", sa.String),
    sa.column("mask", sa.String),
    sa.column("id", sa.String),
    sa.column("name", sa.String),
    sa.column("value_length", sa.Integer),
    sa.column("mask_prefix", sa.String),
    sa.column("mask_suffix", sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("id", sa.String(36), nullable=True))
        batch.add_column(sa.Column("name", sa.String(255), nullable=True))
        batch.add_column(sa.Column("value_length", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("mask_prefix", sa.String(8), nullable=True))
        batch.add_column(sa.Column("mask_suffix", sa.String(8), nullable=True))
        batch.add_column(sa.Column("last_used", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
    connection = op.get_bind()
    for key_hash, mask in connection.execute(sa.select(_api_keys.c.key_hash, _api_keys.c.mask)).all():
        shown_prefix, _, shown_suffix = mask.removeprefix(_PREFIX).partition("…")
        length = _GENERATED_LENGTH if shown_suffix else 0
        connection.execute(
            _api_keys.update()
            .where(_api_keys.c.key_hash == key_hash)
            .values(
                id=str(uuid.uuid4()),
                name="Unnamed API key",
                value_length=length,
                mask_prefix=shown_prefix[:2],
                mask_suffix=shown_suffix[-4:],
            )
        )
    with op.batch_alter_table("api_keys") as batch:
        for name in ("id", "name", "value_length", "mask_prefix", "mask_suffix"):
            batch.alter_column(name, nullable=False)
        batch.create_index("ix_api_keys_id", ["id"], unique=True)

    with op.batch_alter_table("templates") as batch:
        batch.add_column(sa.Column("team_id", sa.String(64), nullable=True))
        batch.create_foreign_key(
            "fk_templates_team_id_teams", "teams", ["team_id"], ["team_id"], ondelete="CASCADE"
        )

    op.add_column("sandboxes", sa.Column("traffic_access_token", sa.String(255), nullable=True))


def downgrade() -> None:
    op.drop_column("sandboxes", "traffic_access_token")
    with op.batch_alter_table("templates") as batch:
        batch.drop_constraint("fk_templates_team_id_teams", type_="foreignkey")
        batch.drop_column("team_id")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_index("ix_api_keys_id")
        for name in ("revoked_at", "last_used", "mask_suffix", "mask_prefix", "value_length", "name", "id"):
            batch.drop_column(name)
