"""API keys in the catalog: ids, names and masks, listing, revocation, and the team lock around it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from hutch.catalog import Catalog
from hutch.catalog.keys import masked, new_key
from hutch.catalog.models import ApiKey
from hutch.catalog.repos import teams
from hutch.errors import NotFound


def test_masked_shows_two_and_four_characters_of_long_keys_only() -> None:
    key = new_key()
    body = key.removeprefix("e2b_")
    shown = masked(key)
    assert (shown.prefix, shown.value_length, shown.shown_prefix, shown.shown_suffix) == (
        "e2b_",
        40,
        body[:2],
        body[-4:],
    )
    short = masked("e2b_devkey")
    assert (short.value_length, short.shown_prefix, short.shown_suffix) == (6, "", "")


async def test_keys_are_listed_found_by_id_and_revoked(catalog: Catalog) -> None:
    async with catalog.transaction() as session:
        team = await teams.add(session, name="a")
        other = await teams.add(session, name="b")
        first = await teams.add_key(session, team_id=team.team_id, key=new_key(), name="first")
        second = await teams.add_key(session, team_id=team.team_id, key=new_key())
        theirs = await teams.add_key(session, team_id=other.team_id, key=new_key())
    async with catalog.transaction() as session:
        assert [k.id for k in await teams.keys(session, team.team_id)] == [first.id, second.id]
        assert (await teams.key_or_raise(session, team_id=team.team_id, key_id=first.id)).name == "first"
        with pytest.raises(NotFound):
            await teams.key_or_raise(session, team_id=team.team_id, key_id=theirs.id)
        assert await teams.lock(session, team.team_id) is not None
        await teams.revoke_key(session, first.key_hash, at=datetime.now(UTC))
    async with catalog.transaction() as session:
        assert [k.id for k in await teams.keys(session, team.team_id)] == [second.id]
        assert await teams.count_keys(session, team.team_id) == 1
        with pytest.raises(NotFound):
            await teams.key_or_raise(session, team_id=team.team_id, key_id=first.id)
        stored = await session.get(ApiKey, first.key_hash)
        assert stored is not None and stored.revoked_at is not None


async def test_the_team_lock_holds_other_writers_off(catalog: Catalog) -> None:
    # PostgreSQL: the second lock waits for the first transaction; SQLite: its write does.
    async with catalog.transaction() as session:
        team_id = (await teams.add(session, name="locked")).team_id
    order: list[str] = []
    locked = asyncio.Event()

    async def first() -> None:
        async with catalog.transaction() as session:
            await teams.lock(session, team_id)
            await teams.add_key(session, team_id=team_id, key=new_key())
            locked.set()
            await asyncio.sleep(0.3)
            order.append("first")

    async def second() -> None:
        await locked.wait()
        async with catalog.transaction() as session:
            await teams.lock(session, team_id)
            await teams.add_key(session, team_id=team_id, key=new_key())
            order.append("second")

    await asyncio.gather(first(), second())
    assert order == ["first", "second"]
