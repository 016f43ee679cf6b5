"""The catalog's SQLite connections: aiosqlite's, with one trip to the connection's thread per statement.

SQLAlchemy's aiosqlite adapter makes four trips to the thread for every statement (make a cursor, execute,
fetch, close) and two for every transaction (commit, then the pool's rollback when the connection is
returned), each a hand-over between the event loop and the thread. Here a statement runs, is fetched and
closed in one trip, and a commit or rollback with no transaction open (a read, or the pool's reset after a
commit) makes none, as SQLite itself would do nothing then.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Sequence
from typing import Any

import aiosqlite
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

_Outcome = tuple[Any, int, int | None, list[Any]]  # description, row count, last row id, rows


def _run(connection: sqlite3.Connection, sql: str, parameters: Any, many: bool) -> _Outcome:
    """In the connection's thread: the statement's whole outcome, its cursor closed."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        elif parameters is None:
            cursor.execute(sql)
        else:
            cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class Cursor:
    """An aiosqlite cursor as SQLAlchemy uses it, whose statement's rows are read with the statement."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._rows: deque[Any] = deque()
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def execute(self, sql: str, parameters: Any = None) -> Cursor:
        return await self._outcome(sql, parameters, many=False)

    async def executemany(self, sql: str, parameters: Sequence[Any]) -> Cursor:
        return await self._outcome(sql, parameters, many=True)

    async def _outcome(self, sql: str, parameters: Any, *, many: bool) -> Cursor:
        self._rows = deque()
        outcome = await self._connection._execute(_run, self._connection._conn, sql, parameters, many)
        self.description, self.rowcount, self.lastrowid, rows = outcome
        self._rows = deque(rows)
        return self

    async def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = self.arraysize if size is None else size
        return [self._rows.popleft() for _ in range(min(count, len(self._rows)))]

    async def fetchall(self) -> list[Any]:
        taken = list(self._rows)
        self._rows.clear()
        return taken

    async def close(self) -> None:
        self._rows.clear()


class Connection(aiosqlite.Connection):
    """aiosqlite's connection, whose cursors are :class:`Cursor` and whose commit and rollback make no trip
    to the thread when no transaction is open."""

    def cursor(self) -> Cursor:  # type: ignore[override]
        return Cursor(self)

    async def commit(self) -> None:
        if self.in_transaction:
            await super().commit()

    async def rollback(self) -> None:
        if self.in_transaction:
            await super().rollback()


def engine(url: URL, **options: Any) -> AsyncEngine:
    """An engine for the SQLite database ``url`` (``sqlite+aiosqlite``) whose connections are
    :class:`Connection`, opened with what SQLAlchemy would have given aiosqlite."""
    arguments: tuple[list[Any], dict[str, Any]] = ([], {})

    async def connect() -> Connection:
        args, kwargs = arguments
        connection = Connection(lambda: sqlite3.connect(*args, **kwargs), iter_chunk_size=64)
        connection._thread.daemon = True  # as SQLAlchemy sets it: an unclosed connection never holds exit
        return await connection

    made = create_async_engine(url, async_creator=connect, **options)
    arguments = made.dialect.create_connect_args(made.url)
    return made
