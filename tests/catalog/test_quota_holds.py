"""A team's quota across API replicas: on PostgreSQL each replica's check counts the others' holds, so
creates made at once through two replicas cannot pass a limit together; a hold let go or expired counts no
more."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from hutch.api.services import quotas
from hutch.catalog import Catalog
from hutch.catalog.models import QuotaHold
from hutch.catalog.repos import teams
from hutch.errors import QuotaExceeded


async def _nothing_used(_session, _team_id: str) -> int:  # type: ignore[no-untyped-def]
    return 0


@pytest.mark.postgres
async def test_replicas_count_each_others_holds(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serves one process: its holds are the process's own")
    first, second = await Catalog.open(database_url), await Catalog.open(database_url)
    try:
        async with first.transaction() as session:
            team = (await teams.add(session, name="quota-team", quotas={"concurrent_sandboxes": 2})).team_id
        one, other = quotas.Holds("concurrent_sandboxes"), quotas.Holds("concurrent_sandboxes")

        async def take(holds: quotas.Holds, catalog: Catalog, release: asyncio.Event) -> int:
            async with holds.hold_some(catalog, team, 1, _nothing_used) as granted:
                await release.wait()
                return granted

        release = asyncio.Event()
        held = [asyncio.create_task(take(h, c, release)) for h, c in ((one, first), (other, second))]
        await asyncio.sleep(0.3)
        with pytest.raises(QuotaExceeded, match="concurrent_sandboxes"):
            async with one.hold_some(first, team, 1, _nothing_used):
                pass
        release.set()
        assert await asyncio.gather(*held) == [1, 1]
        async with other.hold_some(second, team, 2, _nothing_used) as granted:
            assert granted == 2  # both let go
            async with first.transaction() as session:  # a replica that died: its hold expires
                await session.execute(update(QuotaHold).values(expires_at=datetime.now(UTC) - timedelta(1)))
            async with one.hold_some(first, team, 2, _nothing_used) as again:
                assert again == 2
    finally:
        await first.close()
        await second.close()
