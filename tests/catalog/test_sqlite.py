"""The catalog's SQLite connections: one trip to the connection's thread per statement, none for a commit or
rollback with nothing open, and everything SQLAlchemy reads from a cursor still right (rows, row counts,
row ids, errors, many rows streamed, commits and rollbacks seen from another connection)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from hutch.catalog import Catalog
from hutch.catalog.repos import teams
from hutch.catalog.sqlite import Connection


@pytest.fixture()
async def sqlite_catalog(tmp_path: Path) -> AsyncIterator[Catalog]:
    catalog = await Catalog.open(f"sqlite:///{tmp_path / 'hutch.db'}")
    try:
        yield catalog
    finally:
        await catalog.close()


@pytest.fixture()
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every function a catalog connection runs in its thread, in order."""
    made: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        made.append(getattr(fn, "__name__", type(fn).__name__))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return made


async def test_the_catalogs_connections_are_these(sqlite_catalog: Catalog) -> None:
    async with sqlite_catalog.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        assert isinstance(raw.driver_connection, Connection)


async def test_a_read_is_one_trip_and_a_write_adds_only_its_commit(
    sqlite_catalog: Catalog, trips: list[str]
) -> None:
    async with sqlite_catalog.transaction() as session:
        await session.scalar(text("SELECT 1"))  # the pool's first connection is opened here
    trips.clear()
    async with sqlite_catalog.transaction() as session:
        assert await session.scalar(text("SELECT 41 + 1")) == 42
    assert trips == ["_run"]  # no cursor, fetch, close, commit or rollback of their own
    trips.clear()
    async with sqlite_catalog.transaction() as session:
        await teams.add(session, name="one")
    assert trips == ["_run", "commit"]  # the pool's reset after the commit has nothing to roll back


async def test_rows_row_counts_and_row_ids_are_the_statements(sqlite_catalog: Catalog) -> None:
    async with sqlite_catalog.engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
        inserted = await connection.execute(text("INSERT INTO t (v) VALUES ('a')"))
        assert inserted.lastrowid == 1
        await connection.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": "b"}, {"v": "c"}, {"v": "d"}])
        updated = await connection.execute(text("UPDATE t SET v = 'x' WHERE id > 1"))
        assert updated.rowcount == 3
        returned = await connection.execute(text("DELETE FROM t WHERE id = 4 RETURNING v"))
        assert returned.all() == [("x",)]
        result = await connection.execute(text("SELECT id, v FROM t ORDER BY id"))
        assert list(result.keys()) == ["id", "v"]
        assert result.all() == [(1, "a"), (2, "x"), (3, "x")]
        none = await connection.execute(text("SELECT id FROM t WHERE id > 99"))
        assert none.all() == []


async def test_many_rows_stream_in_order(sqlite_catalog: Catalog) -> None:
    async with sqlite_catalog.engine.begin() as connection:
        await connection.execute(text("CREATE TABLE n (i INTEGER)"))
        await connection.execute(text("INSERT INTO n VALUES (:i)"), [{"i": i} for i in range(2500)])
        streamed = await connection.stream(text("SELECT i FROM n ORDER BY i"))
        first = await streamed.fetchmany(7)
        rest = [row async for row in streamed]
    assert [row.i for row in first + rest] == list(range(2500))


async def test_an_error_is_sqlalchemys_and_the_write_before_it_is_rolled_back(
    sqlite_catalog: Catalog,
) -> None:
    with pytest.raises(IntegrityError):
        async with sqlite_catalog.transaction() as session:
            await teams.add(session, name="kept out")
            await session.flush()
            await session.execute(text("INSERT INTO teams (team_id) VALUES (NULL)"))
    async with sqlite_catalog.transaction() as session:
        assert await teams.get_by_name(session, "kept out") is None
        assert await session.scalar(text("SELECT count(*) FROM teams WHERE name = 'kept out'")) == 0


async def test_a_write_is_seen_by_another_connection_only_once_committed(sqlite_catalog: Catalog) -> None:
    async with sqlite_catalog.transaction() as writer:
        await teams.add(writer, name="later")
        await writer.flush()
        async with sqlite_catalog.engine.connect() as other:
            assert await other.scalar(text("SELECT count(*) FROM teams WHERE name = 'later'")) == 0
    async with sqlite_catalog.engine.connect() as other:
        assert await other.scalar(text("SELECT count(*) FROM teams WHERE name = 'later'")) == 1
