"""The volume and secret repositories on SQLite and PostgreSQL: team scoping, names unique per team, quota
sums, keyset pages of secrets, and rows removed with their team."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from hutch.catalog import Catalog
from hutch.catalog.models import Secret, Volume
from hutch.catalog.repos import secrets, teams, volumes


async def _team(catalog: Catalog, name: str) -> str:
    async with catalog.transaction() as session:
        return (await teams.add(session, name=name)).team_id


async def test_volumes_are_scoped_to_their_team_and_summed(catalog: Catalog) -> None:
    one, two = await _team(catalog, "one"), await _team(catalog, "two")
    async with catalog.transaction() as session:
        for index, size in enumerate((64, 128)):
            row = Volume(volume_id=f"v{index}", team_id=one, name=f"n{index}", size_mb=size, node_id="local")
            await volumes.add(session, row)
        await volumes.add(
            session, Volume(volume_id="w", team_id=two, name="n0", size_mb=10, node_id="node-b")
        )
    async with catalog.transaction() as session:
        assert await volumes.count(session, one) == 2 and await volumes.total_mb(session, one) == 192
        assert await volumes.total_mb(session, "nobody") == 0
        assert await volumes.get(session, team_id=two, volume_id="v0") is None
        assert (await volumes.by_names(session, team_id=two, names={"n0", "n1"})).keys() == {"n0"}
        assert [v.volume_id for v in await volumes.of_team(session, one)] == ["v0", "v1"]
        assert (await volumes.by_ids(session, {"v1", "w", "gone"})).keys() == {"v1", "w"}
        assert await volumes.remove(session, "v1") is True and await volumes.remove(session, "v1") is False
    with pytest.raises(IntegrityError):
        async with catalog.transaction() as session:
            await volumes.add(
                session, Volume(volume_id="dup", team_id=one, name="n0", size_mb=1, node_id="x")
            )


async def test_secrets_page_by_creation_and_are_found_by_id_or_name(catalog: Catalog) -> None:
    team = await _team(catalog, "secrets")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    async with catalog.transaction() as session:
        for index in range(5):
            await secrets.add(session, Secret(
                secret_id=f"sec_{index}", team_id=team, name=f"name-{index}", sealed_value=b"sealed",
                version=1, metadata_={}, created_at=start + timedelta(seconds=index // 2),
            ))  # fmt: skip
    async with catalog.transaction() as session:
        first = await secrets.page(session, team_id=team, after=None, limit=2)
        last = first[-1]
        rest = await secrets.page(session, team_id=team, after=(last.created_at, last.secret_id), limit=10)
        assert [s.secret_id for s in first + rest] == [f"sec_{i}" for i in range(5)]
        assert (await secrets.find(session, team_id=team, key="NAME-3")).secret_id == "sec_3"
        assert (await secrets.find(session, team_id=team, key="sec_4")).name == "name-4"
        assert await secrets.find(session, team_id="other", key="sec_4") is None
        assert await secrets.count(session, team) == 5
    with pytest.raises(IntegrityError):
        async with catalog.transaction() as session:
            row = Secret(
                secret_id="sec_x", team_id=team, name="name-0", sealed_value=b"", version=1, metadata_={}
            )
            await secrets.add(session, row)


async def test_a_teams_volumes_and_secrets_go_with_it(catalog: Catalog) -> None:
    team = await _team(catalog, "leaving")
    async with catalog.transaction() as session:
        await volumes.add(session, Volume(volume_id="v", team_id=team, name="n", size_mb=1, node_id="local"))
        await secrets.add(session, Secret(secret_id="sec_1", team_id=team, name="s", sealed_value=b"x",
                                          version=1, metadata_={}))  # fmt: skip
    async with catalog.transaction() as session:
        await session.delete(await teams.get(session, team))
    async with catalog.transaction() as session:
        assert await volumes.count(session, team) == 0 and await secrets.count(session, team) == 0
