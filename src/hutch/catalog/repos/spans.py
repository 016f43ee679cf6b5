"""Sandbox spans: opened and closed as sandboxes start, pause, resume and end (:mod:`..usage` does it at
each flush), read back per team for its usage, and pruned after the retention."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Select, Update, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..models import SandboxSpan

# The most spans one usage read returns; past it the oldest days are incomplete (said by the caller).
MAX_READ = 200_000


def opened(team_id: str, sandbox_id: str, at: datetime) -> SandboxSpan:
    return SandboxSpan(team_id=team_id, sandbox_id=sandbox_id, started_at=at)


def closing(sandbox_ids: Iterable[str] | Select, at: datetime) -> Update:
    """The statement that ends the open spans of ``sandbox_ids`` (ids, or a select of ids) at ``at``."""
    ids = sandbox_ids if isinstance(sandbox_ids, Select) else list(sandbox_ids)
    return (
        update(SandboxSpan)
        .where(SandboxSpan.sandbox_id.in_(ids), SandboxSpan.ended_at.is_(None))
        .values(ended_at=at)
        .execution_options(synchronize_session=False)
    )


async def of_team(
    session: AsyncSession, team_id: str, *, since: datetime, until: datetime
) -> list[SandboxSpan]:
    """The team's spans that overlap [``since``, ``until``), at most :data:`MAX_READ`, newest first."""
    statement = (
        select(SandboxSpan)
        .where(
            SandboxSpan.team_id == team_id,
            SandboxSpan.started_at < until,
            or_(SandboxSpan.ended_at.is_(None), SandboxSpan.ended_at >= since),
        )
        .order_by(SandboxSpan.started_at.desc())
        .limit(MAX_READ)
    )
    return list(await session.scalars(statement))


async def prune(session: AsyncSession, *, ended_before: datetime) -> int:
    """Forget the spans that ended before ``ended_before``; how many."""
    result = await session.execute(delete(SandboxSpan).where(SandboxSpan.ended_at < ended_before))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
