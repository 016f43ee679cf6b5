"""The teams of API keys kept in memory: only for a catalog this process alone writes, and cleared by
whatever revokes a key or changes or removes a team, so that a revoked key is refused at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hutch.api.services import api_keys, auth
from hutch.api.services import teams as team_service
from hutch.catalog import Catalog
from hutch.catalog.keys import hash_key, new_key
from hutch.catalog.repos import teams
from hutch.errors import Unauthenticated


@pytest.fixture()
async def catalog(tmp_path: Path) -> AsyncIterator[Catalog]:
    opened = await Catalog.open(f"sqlite+aiosqlite:///{tmp_path / 'hutch.db'}")
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture()
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The hash of every key the catalog is asked for."""
    asked: list[str] = []
    original = teams.hashed_key_with_team

    async def counted(session: Any, key_hash: str) -> Any:
        asked.append(key_hash)
        return await original(session, key_hash)

    monkeypatch.setattr(teams, "hashed_key_with_team", counted)
    return asked


async def _team_with_keys(catalog: Catalog, count: int) -> tuple[str, list[str]]:
    keys = [new_key() for _ in range(count)]
    async with catalog.transaction() as session:
        team = await teams.add(session, name="kept")
        for key in keys:
            await teams.add_key(session, team_id=team.team_id, key=key)
    return team.team_id, keys


async def test_a_known_key_is_not_looked_up_again(catalog: Catalog, lookups: list[str]) -> None:
    team_id, (key,) = await _team_with_keys(catalog, 1)
    for _ in range(3):
        assert (await auth.team_for_key(catalog=catalog, api_key=key)).team_id == team_id
    assert lookups == [hash_key(key)]


async def test_a_revoked_key_is_refused_at_once(catalog: Catalog) -> None:
    team_id, (first, second) = await _team_with_keys(catalog, 2)
    await auth.team_for_key(catalog=catalog, api_key=first)
    async with catalog.transaction() as session:
        key_id = (await teams.keys(session, team_id))[0].id
    await api_keys.revoke(catalog=catalog, team_id=team_id, key_id=key_id)
    with pytest.raises(Unauthenticated):
        await auth.team_for_key(catalog=catalog, api_key=first)
    assert (await auth.team_for_key(catalog=catalog, api_key=second)).team_id == team_id


async def test_a_removed_teams_keys_are_refused_at_once(catalog: Catalog) -> None:
    team_id, (key,) = await _team_with_keys(catalog, 1)
    await auth.team_for_key(catalog=catalog, api_key=key)
    removed: list[object] = []

    class Nothing:
        async def destroy(self, **_: object) -> None:
            removed.append(_)

        def forget(self, **_: object) -> None:
            removed.append(_)

        async def discard(self, _: object) -> None:
            removed.append(_)

    nothing: Any = Nothing()
    await team_service.remove(
        catalog=catalog,
        sandbox_service=nothing,
        snapshot_service=nothing,
        volume_service=nothing,
        team_id=team_id,
        force=False,
    )
    with pytest.raises(Unauthenticated):
        await auth.team_for_key(catalog=catalog, api_key=key)


async def test_a_team_changed_is_looked_up_again(catalog: Catalog, lookups: list[str]) -> None:
    team_id, (key,) = await _team_with_keys(catalog, 1)
    await auth.team_for_key(catalog=catalog, api_key=key)
    await team_service.update(catalog=catalog, team_id=team_id, changes={"concurrent_sandboxes": 3})
    await auth.team_for_key(catalog=catalog, api_key=key)
    assert lookups == [hash_key(key)] * 2


async def test_a_lookup_that_began_before_a_revocation_keeps_nothing(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch, lookups: list[str]
) -> None:
    """The revocation commits while the lookup is on its way: that request may pass, the next one asks."""
    _, (key,) = await _team_with_keys(catalog, 1)
    counted = teams.hashed_key_with_team

    async def revoked_meanwhile(session: Any, asked: str) -> Any:
        found = await counted(session, asked)
        auth.forget_keys(catalog)
        return found

    monkeypatch.setattr(teams, "hashed_key_with_team", revoked_meanwhile)
    await auth.team_for_key(catalog=catalog, api_key=key)
    await auth.team_for_key(catalog=catalog, api_key=key)
    assert lookups == [hash_key(key)] * 2


async def test_a_shared_catalog_is_asked_every_time(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch, lookups: list[str]
) -> None:
    """Another API replica may revoke a key in a shared catalog (PostgreSQL): nothing is kept."""
    monkeypatch.setattr(Catalog, "shared", property(lambda _: True))
    _, (key,) = await _team_with_keys(catalog, 1)
    await auth.team_for_key(catalog=catalog, api_key=key)
    await auth.team_for_key(catalog=catalog, api_key=key)
    assert lookups == [hash_key(key)] * 2


async def test_unknown_keys_are_not_kept(catalog: Catalog, lookups: list[str]) -> None:
    wrong = new_key()
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            await auth.team_for_key(catalog=catalog, api_key=wrong)
    assert lookups == [hash_key(wrong)] * 2
