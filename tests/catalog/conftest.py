"""A fresh catalog per test, on SQLite and (when the machine has ``initdb``) on PostgreSQL.

The PostgreSQL server is started once for the session in a temporary directory, listening on a free
loopback port, and every test gets a database of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from hutch.catalog import Catalog
from tests.postgres import postgres_server as postgres_server_at


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """``postgresql://…`` of a throwaway server (its ``postgres`` database)."""
    with postgres_server_at() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database of this test's own, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'hutch.db'}"
    server = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return server.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture()
async def catalog(database_url: str) -> AsyncIterator[Catalog]:
    opened = await Catalog.open(database_url)
    try:
        yield opened
    finally:
        await opened.close()
