"""Bringing a catalog's schema to the newest revision with Alembic, on an open connection.

Three cases: an empty database gets every revision; a database with ``alembic_version`` gets the ones it
lacks; a database that an older Hutch made with ``create_all`` (its tables, but no ``alembic_version``) is
first stamped at revision ``0001`` (that schema), so that it keeps its rows and gets only the newer
revisions. On PostgreSQL an advisory lock keeps two processes starting at once from migrating together.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

MIGRATIONS = Path(__file__).with_name("migrations")
# The revision that describes the schema of catalogs made before migrations existed.
BASELINE = "0001"
# A table every such catalog has.
_BASELINE_TABLE = "teams"
# An arbitrary key for PostgreSQL's advisory lock: "hutch" in ASCII.
_LOCK_KEY = 0x6875746368

log = logging.getLogger(__name__)


def config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for the catalog's revisions, bound to ``connection``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The newest revision."""
    revision = ScriptDirectory.from_config(config()).get_current_head()
    assert revision is not None
    return revision


def current(connection: Connection) -> str | None:
    """The revision ``connection``'s database is at; ``None`` when it has none (empty, or made before
    migrations)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: Connection) -> None:
    """Migrate ``connection``'s database to the newest revision (in the caller's transaction)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    cfg = config(connection)
    tables = set(inspect(connection).get_table_names())
    with _quiet_alembic():
        if "alembic_version" not in tables and _BASELINE_TABLE in tables:
            log.info("catalog made before migrations: marking it as revision %s", BASELINE)
            command.stamp(cfg, BASELINE)
        before = current(connection)
        command.upgrade(cfg, "head")
        after = current(connection)
    if before != after:
        log.info("catalog schema migrated from revision %s to %s", before or "(empty)", after)


@contextmanager
def _quiet_alembic() -> Iterator[None]:
    """Alembic logs every step at INFO; one line of ours says what changed."""
    logger = logging.getLogger("alembic")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)
