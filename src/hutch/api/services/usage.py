"""A team's usage per day (sandbox-hours and the most sandboxes running at once), from the spans the
catalog keeps; and forgetting spans past their retention."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from ...catalog import Catalog
from ...catalog.repos import spans
from ...catalog.usage import RETENTION, Day, per_day

MAX_DAYS = RETENTION.days


async def daily(*, catalog: Catalog, team_id: str, days: int) -> list[Day]:
    """The last ``days`` UTC days of the team's usage, oldest first; today so far is the last."""
    now = datetime.now(UTC)
    last = now.date()
    first = last - timedelta(days=days - 1)
    async with catalog.transaction() as session:
        found = await spans.of_team(session, team_id, since=datetime.combine(first, time(), UTC), until=now)
    return per_day(found, first=first, last=last, now=now)


async def prune(*, catalog: Catalog) -> int:
    """Forget the spans that ended longer ago than the retention; how many."""
    async with catalog.transaction() as session:
        return await spans.prune(session, ended_before=datetime.now(UTC) - RETENTION)
