"""Sandboxes: lookups scoped to a team, expiry, and keyset-paginated listing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Select, and_, delete, func, inspect, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ...errors import NotFound
from ..models import SandboxRow
from . import spans

# Rows read per round when a metadata filter has to be applied after the query.
_SCAN_BATCH = 500


@dataclass(frozen=True)
class SandboxFilter:
    """Which of a team's sandboxes a listing shows; ``None`` means no restriction."""

    states: frozenset[str] | None = None
    template_ids: frozenset[str] | None = None
    started_after: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Cursor:
    """The position after which a page starts: the last row of the previous page."""

    started_at: datetime
    sandbox_id: str


async def get(session: AsyncSession, sandbox_id: str) -> SandboxRow | None:
    """The sandbox ``sandbox_id`` of any team (for routing traffic to it, and the node's own work: timeouts,
    auto-resume)."""
    return await session.get(SandboxRow, sandbox_id)


async def get_or_raise(session: AsyncSession, *, team_id: str, sandbox_id: str) -> SandboxRow:
    """The team's sandbox ``sandbox_id``; another team's is as unknown as a missing one."""
    sandbox = await session.get(SandboxRow, sandbox_id)
    if sandbox is None or sandbox.team_id != team_id:
        raise NotFound(f"sandbox {sandbox_id!r} not found")
    return sandbox


async def by_idempotency_key(session: AsyncSession, *, team_id: str, key: str) -> SandboxRow | None:
    statement = select(SandboxRow).where(SandboxRow.team_id == team_id, SandboxRow.idempotency_key == key)
    return await session.scalar(statement)


async def add(session: AsyncSession, sandbox: SandboxRow) -> SandboxRow:
    session.add(sandbox)
    await session.flush()
    return sandbox


def copy_of(sandbox: SandboxRow) -> SandboxRow:
    """A new, unsaved row with every column of ``sandbox``: to add back a row removed too soon."""
    columns = inspect(SandboxRow).column_attrs
    return SandboxRow(**{column.key: getattr(sandbox, column.key) for column in columns})


async def remove(session: AsyncSession, sandbox_id: str) -> bool:
    """Delete the row (ending its span); False when it was already gone."""
    await session.execute(spans.closing([sandbox_id], datetime.now(UTC)))
    result = await session.execute(delete(SandboxRow).where(SandboxRow.sandbox_id == sandbox_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def expired(session: AsyncSession, *, now: datetime) -> list[SandboxRow]:
    return list(await session.scalars(select(SandboxRow).where(SandboxRow.end_at <= now)))


async def next_end_at(session: AsyncSession, *, after: datetime) -> datetime | None:
    """The earliest end of any sandbox still running at ``after``."""
    return await session.scalar(select(func.min(SandboxRow.end_at)).where(SandboxRow.end_at > after))


async def on_node(session: AsyncSession, node_id: str) -> list[SandboxRow]:
    return list(await session.scalars(select(SandboxRow).where(SandboxRow.node_id == node_id)))


async def of_team(session: AsyncSession, team_id: str) -> list[SandboxRow]:
    """Every sandbox of the team, running or paused."""
    return list(await session.scalars(select(SandboxRow).where(SandboxRow.team_id == team_id)))


async def count_running(session: AsyncSession, team_id: str) -> int:
    statement = select(func.count()).where(SandboxRow.team_id == team_id, SandboxRow.state == "running")
    return await session.scalar(statement) or 0


async def page(
    session: AsyncSession,
    *,
    team_id: str,
    where: SandboxFilter,
    descending: bool,
    after: Cursor | None,
    limit: int,
) -> list[SandboxRow]:
    """Up to ``limit`` of the team's sandboxes matching ``where``, by start time, following ``after``."""
    statement = _filtered(team_id, where)
    if descending:
        statement = statement.order_by(SandboxRow.started_at.desc(), SandboxRow.sandbox_id.desc())
    else:
        statement = statement.order_by(SandboxRow.started_at.asc(), SandboxRow.sandbox_id.asc())
    if not where.metadata:
        return list(await session.scalars(_following(statement, after, descending).limit(limit)))
    # Metadata is JSON, and a key may hold any character: match it here rather than in dialect SQL.
    matched: list[SandboxRow] = []
    while len(matched) < limit:
        batch = list(await session.scalars(_following(statement, after, descending).limit(_SCAN_BATCH)))
        matched.extend(s for s in batch if where.metadata.items() <= s.metadata_.items())
        if len(batch) < _SCAN_BATCH:
            break
        after = Cursor(batch[-1].started_at, batch[-1].sandbox_id)
    return matched[:limit]


def _filtered(team_id: str, where: SandboxFilter) -> Select[tuple[SandboxRow]]:
    statement = select(SandboxRow).where(SandboxRow.team_id == team_id)
    if where.states is not None:
        statement = statement.where(SandboxRow.state.in_(where.states))
    if where.template_ids is not None:
        statement = statement.where(SandboxRow.template_id.in_(where.template_ids))
    if where.started_after is not None:
        statement = statement.where(SandboxRow.started_at >= where.started_after)
    return statement


def _following(statement: Select[tuple[SandboxRow]], after: Cursor | None, descending: bool) -> Select:
    if after is None:
        return statement
    if descending:
        return statement.where(
            or_(
                SandboxRow.started_at < after.started_at,
                and_(SandboxRow.started_at == after.started_at, SandboxRow.sandbox_id < after.sandbox_id),
            )
        )
    return statement.where(
        or_(
            SandboxRow.started_at > after.started_at,
            and_(SandboxRow.started_at == after.started_at, SandboxRow.sandbox_id > after.sandbox_id),
        )
    )
