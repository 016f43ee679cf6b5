"""The sandbox queries: team scoping, constraints, expiry and keyset pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from hutch.catalog import Catalog
from hutch.catalog.models import SandboxRow
from hutch.catalog.repos import sandboxes, teams
from hutch.catalog.repos.sandboxes import Cursor, SandboxFilter
from hutch.errors import NotFound

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


def row(sandbox_id: str, team_id: str, *, started: datetime = T0, **fields) -> SandboxRow:
    values = {
        "template_id": "tpl",
        "cpu_count": 2,
        "memory_mb": 512,
        "disk_mb": 1024,
        "started_at": started,
        "end_at": started + timedelta(minutes=5),
        "host": "127.0.0.1",
        "node_id": "local",
        "envd_version": "0.9.1",
        "envd_access_token": "token",
        **fields,
    }
    return SandboxRow(sandbox_id=sandbox_id, team_id=team_id, **values)


async def make_team(catalog: Catalog, name: str) -> str:
    async with catalog.transaction() as session:
        return (await teams.add(session, name=name)).team_id


async def add(catalog: Catalog, *rows: SandboxRow) -> None:
    async with catalog.transaction() as session:
        for item in rows:
            await sandboxes.add(session, item)


async def test_round_trip_keeps_time_zones_and_json(catalog: Catalog) -> None:
    team = await make_team(catalog, "a")
    await add(catalog, row("s1", team, metadata_={"k": "v é"}, port_overrides={"49983": 40001}))
    async with catalog.transaction() as session:
        found = await sandboxes.get_or_raise(session, team_id=team, sandbox_id="s1")
    assert found.started_at == T0 and found.started_at.tzinfo is not None
    assert found.metadata_ == {"k": "v é"}
    assert found.address(49983) == ("127.0.0.1", 40001) and found.address(8080) == ("127.0.0.1", 8080)


async def test_other_teams_sandboxes_are_not_found(catalog: Catalog) -> None:
    owner, other = await make_team(catalog, "owner"), await make_team(catalog, "other")
    await add(catalog, row("s1", owner))
    async with catalog.transaction() as session:
        with pytest.raises(NotFound):
            await sandboxes.get_or_raise(session, team_id=other, sandbox_id="s1")
        with pytest.raises(NotFound):
            await sandboxes.get_or_raise(session, team_id=owner, sandbox_id="missing")


async def test_a_sandbox_needs_a_known_team(catalog: Catalog) -> None:
    with pytest.raises(IntegrityError):
        await add(catalog, row("s1", "no-such-team"))


async def test_idempotency_keys_are_unique_per_team(catalog: Catalog) -> None:
    one, two = await make_team(catalog, "one"), await make_team(catalog, "two")
    await add(catalog, row("s1", one, idempotency_key="k"), row("s2", two, idempotency_key="k"))
    await add(catalog, row("s3", one), row("s4", one))
    with pytest.raises(IntegrityError):
        await add(catalog, row("s5", one, idempotency_key="k"))
    async with catalog.transaction() as session:
        found = await sandboxes.by_idempotency_key(session, team_id=two, key="k")
        assert found is not None and found.sandbox_id == "s2"


async def test_expiry_queries_and_remove(catalog: Catalog) -> None:
    team = await make_team(catalog, "a")
    now = datetime.now(UTC)
    await add(
        catalog,
        row("gone", team, end_at=now - timedelta(seconds=1)),
        row("soon", team, end_at=now + timedelta(seconds=10)),
        row("later", team, end_at=now + timedelta(seconds=60)),
    )
    async with catalog.transaction() as session:
        assert [s.sandbox_id for s in await sandboxes.expired(session, now=now)] == ["gone"]
        assert await sandboxes.next_end_at(session, after=now) == now + timedelta(seconds=10)
        assert await sandboxes.remove(session, "gone") is True
        assert await sandboxes.remove(session, "gone") is False


async def test_pages_are_ordered_and_follow_the_cursor_through_ties(catalog: Catalog) -> None:
    team = await make_team(catalog, "a")
    # Two pairs share a start time: the id breaks the tie.
    starts = {"a": T0, "b": T0, "c": T0 + timedelta(seconds=1), "d": T0 + timedelta(seconds=1), "e": T0}
    await add(catalog, *(row(sid, team, started=at) for sid, at in starts.items()))

    async def walk(descending: bool, limit: int) -> list[str]:
        seen, after = [], None
        while True:
            async with catalog.transaction() as session:
                page = await sandboxes.page(
                    session,
                    team_id=team,
                    where=SandboxFilter(),
                    descending=descending,
                    after=after,
                    limit=limit,
                )
            seen.extend(s.sandbox_id for s in page)
            if len(page) < limit:
                return seen
            after = Cursor(page[-1].started_at, page[-1].sandbox_id)

    assert await walk(False, 2) == ["a", "b", "e", "c", "d"]
    assert await walk(True, 2) == ["d", "c", "e", "b", "a"]
    assert await walk(True, 10) == ["d", "c", "e", "b", "a"]


async def test_filters(catalog: Catalog) -> None:
    team = await make_team(catalog, "a")
    special = {"a b": "c&d", 'quote"key': "x"}
    await add(
        catalog,
        row("s1", team, metadata_=special, template_id="t1"),
        row("s2", team, metadata_={"a b": "c&d"}, template_id="t2", started=T0 + timedelta(seconds=5)),
        row("s3", team, state="paused", started=T0 + timedelta(seconds=9)),
    )

    async def ids(where: SandboxFilter) -> list[str]:
        async with catalog.transaction() as session:
            page = await sandboxes.page(
                session, team_id=team, where=where, descending=False, after=None, limit=100
            )
        return [s.sandbox_id for s in page]

    assert await ids(SandboxFilter(metadata={"a b": "c&d"})) == ["s1", "s2"]
    assert await ids(SandboxFilter(metadata=special)) == ["s1"]
    assert await ids(SandboxFilter(states=frozenset({"paused"}))) == ["s3"]
    assert await ids(SandboxFilter(template_ids=frozenset({"t2", "t1"}))) == ["s1", "s2"]
    assert await ids(SandboxFilter(started_after=T0 + timedelta(seconds=5))) == ["s2", "s3"]


async def test_metadata_filter_scans_past_many_non_matching_rows(catalog: Catalog) -> None:
    team = await make_team(catalog, "a")
    async with catalog.transaction() as session:
        session.add_all(
            row(f"s{i:04d}", team, started=T0 + timedelta(seconds=i), metadata_={"hit": str(i % 400 == 0)})
            for i in range(1, 1201)
        )
    where = SandboxFilter(metadata={"hit": "True"})

    async def page(after: Cursor | None) -> list[SandboxRow]:
        async with catalog.transaction() as session:
            return await sandboxes.page(
                session, team_id=team, where=where, descending=False, after=after, limit=2
            )

    first = await page(None)
    assert [s.sandbox_id for s in first] == ["s0400", "s0800"]
    rest = await page(Cursor(first[-1].started_at, first[-1].sandbox_id))
    assert [s.sandbox_id for s in rest] == ["s1200"]
