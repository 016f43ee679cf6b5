"""The catalog's connection: an async engine, its session factory, and one transaction per unit of work.

SQLite (through aiosqlite, one trip to its thread per statement: :mod:`.sqlite`) is the default and runs in
WAL mode with foreign keys enforced; its file (which holds every sandbox's access tokens) is readable by its
owner only, and SQLite gives its ``-wal`` and ``-shm`` files the same mode. A ``postgresql://`` URL selects
PostgreSQL through asyncpg with the same code. Opening a catalog migrates its schema to the newest revision
(:mod:`.migrate`).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from ..errors import NotSupported
from ..private_files import narrow, private_file
from . import sqlite
from .usage import RecordingSession

_SQLITE_BUSY_TIMEOUT_MS = 30_000
# The advisory lock under which a PostgreSQL catalog's schema is migrated.
_MIGRATION_LOCK = 0x68757463_68000001


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# The asyncio driver used when a URL names only the database (``postgresql://``, ``sqlite://``).
_ASYNC_DRIVERS = {"postgresql": "asyncpg", "sqlite": "aiosqlite"}


def _make_private(database: Path) -> None:
    """Create the SQLite file (and a missing directory) readable by the owner only, before SQLite opens it;
    narrow an existing one and its ``-wal`` and ``-shm`` files."""
    with contextlib.suppress(FileExistsError):  # an existing one is the operator's choice, kept as it is
        database.parent.mkdir(mode=0o700, parents=True)
    private_file(database)
    for suffix in ("-wal", "-shm"):
        narrow(database.with_name(database.name + suffix))


def _is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _async_url(url: str) -> URL:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if "+" not in parsed.drivername and backend in _ASYNC_DRIVERS:
        parsed = parsed.set(drivername=f"{backend}+{_ASYNC_DRIVERS[backend]}")
    return parsed


def _lock_key(name: str) -> int:
    """The advisory lock key of ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class Catalog:
    """Hutch's database. Open it with :meth:`open`; every service call runs in one :meth:`transaction`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._holds: AsyncEngine | None = None
        # What every session of this catalog carries in ``session.info`` (the configured quotas).
        self.session_info: dict[str, Any] = {}
        self._sessions = async_sessionmaker(
            engine, expire_on_commit=False, info=self.session_info, sync_session_class=RecordingSession
        )

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> Catalog:
        """Connect to ``url`` (creating a SQLite file's directory) and, with ``migrate``, bring its schema
        to the newest revision (a database made before migrations keeps its rows). Readers that another
        process migrates for (the proxy) skip that, and Alembic's import with it."""
        parsed = _async_url(url)
        # Rows hold access tokens: an error's message (which may be logged) never shows a statement's values.
        options: dict[str, Any] = {"hide_parameters": True}
        if _is_sqlite(parsed):
            database = parsed.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                _make_private(Path(database))
        else:
            options["pool_pre_ping"] = True
        try:
            engine = (
                sqlite.engine(parsed, **options)
                if _is_sqlite(parsed)
                else create_async_engine(parsed, **options)
            )
        except ModuleNotFoundError as error:
            extra = " (pip install 'hutch[postgres]')" if parsed.get_backend_name() == "postgresql" else ""
            raise NotSupported(f"the catalog URL needs the driver {error.name!r}{extra}") from error
        if _is_sqlite(parsed):
            event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
        catalog = cls(engine)
        if not migrate:
            return catalog
        from .migrate import upgrade

        try:
            async with engine.begin() as connection:
                if not _is_sqlite(parsed):  # replicas and nodes starting together migrate one at a time
                    await connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
                    )
                await connection.run_sync(upgrade)
        except BaseException:
            await engine.dispose()
            raise
        return catalog

    @property
    def shared(self) -> bool:
        """Whether several processes may use this catalog at once (PostgreSQL; SQLite has one)."""
        return self.engine.dialect.name == "postgresql"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits when the block ends, or rolls back if it raises."""
        async with self._sessions.begin() as session:
            yield session

    @asynccontextmanager
    async def duty(self, name: str) -> AsyncIterator[bool]:
        """Whether this process does the once-only duty ``name`` now: on PostgreSQL, while it holds the
        duty's advisory lock (on a connection of its own, released when the block ends or the process dies),
        so that of many API replicas exactly one does each round; on SQLite, which one process serves,
        always."""
        if self.engine.dialect.name != "postgresql":
            yield True
            return
        key = _lock_key(name)
        async with self.engine.connect() as connection:
            held = bool(await connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
            try:
                yield held
            finally:
                if held:
                    await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                await connection.commit()

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        """Hold the lock ``name`` for the block, against every process that uses this catalog: on
        PostgreSQL a session advisory lock, waited for, on a connection of its own that no pool keeps (a
        holder never waits for a connection its block needs, and a lock taken as its waiter was cancelled
        goes with the connection); on SQLite, which one process serves, nothing."""
        if self.engine.dialect.name != "postgresql":
            yield
            return
        if self._holds is None:
            self._holds = create_async_engine(self.engine.url, poolclass=NullPool, hide_parameters=True)
        key = _lock_key(name)
        async with self._holds.connect() as connection:
            await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                await connection.commit()

    async def close(self) -> None:
        if self._holds is not None:
            await self._holds.dispose()
        await self.engine.dispose()
