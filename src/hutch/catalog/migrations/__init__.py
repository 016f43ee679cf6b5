"""The catalog's schema history, as Alembic revisions (``versions/``); applied by ``catalog.migrate``."""
