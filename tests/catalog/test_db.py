"""Opening the catalog: tables, SQLite's pragmas, URLs without a driver, transactions."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from hutch.catalog import Catalog
from hutch.catalog.models import Team
from hutch.catalog.repos import teams


async def test_tables_exist(catalog: Catalog) -> None:
    async with catalog.engine.connect() as connection:
        names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    assert {"teams", "api_keys", "templates", "sandboxes"} <= set(names)


async def test_a_failed_unit_of_work_rolls_back(catalog: Catalog) -> None:
    with pytest.raises(RuntimeError):
        async with catalog.transaction() as session:
            await teams.add(session, name="doomed")
            raise RuntimeError("halfway")
    async with catalog.transaction() as session:
        assert await teams.get_by_name(session, "doomed") is None


async def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    catalog = await Catalog.open(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'hutch.db'}")
    try:
        assert (tmp_path / "nested" / "dir" / "hutch.db").exists()
        async with catalog.engine.connect() as connection:
            assert (await connection.scalar(text("PRAGMA journal_mode"))) == "wal"
            assert (await connection.scalar(text("PRAGMA foreign_keys"))) == 1
    finally:
        await catalog.close()


async def test_catalogs_share_one_database_file(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'hutch.db'}"
    first, second = await Catalog.open(url), await Catalog.open(url)
    try:
        async with first.transaction() as session:
            await teams.add(session, name="shared")
        async with second.transaction() as session:
            team = await teams.get_by_name(session, "shared")
            assert isinstance(team, Team)
    finally:
        await first.close()
        await second.close()
