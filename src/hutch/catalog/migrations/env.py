"""Alembic's environment: migrations run on the connection ``catalog.migrate`` hands over, never on one of
their own, so that they share the catalog's engine (SQLite or PostgreSQL) and its transaction."""

from __future__ import annotations

from alembic import context

from hutch.catalog.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite alters a table by copying it; the revisions say where with ``batch_alter_table``.
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
