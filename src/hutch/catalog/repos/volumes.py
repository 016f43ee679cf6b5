"""Volumes: found by id or name within a team, counted and summed for the team's quotas, added and removed."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ...errors import NotFound
from ..models import Volume


async def get(session: AsyncSession, *, team_id: str, volume_id: str) -> Volume | None:
    """The team's volume ``volume_id`` (another team's is as unknown as a missing one)."""
    volume = await session.get(Volume, volume_id)
    return volume if volume is not None and volume.team_id == team_id else None


async def get_or_raise(session: AsyncSession, *, team_id: str, volume_id: str) -> Volume:
    volume = await get(session, team_id=team_id, volume_id=volume_id)
    if volume is None:
        raise NotFound(f"volume {volume_id!r} not found")
    return volume


async def by_id(session: AsyncSession, volume_id: str) -> Volume | None:
    """The volume ``volume_id`` of any team (the content API knows the volume by its token, not a team)."""
    return await session.get(Volume, volume_id)


async def by_names(session: AsyncSession, *, team_id: str, names: set[str]) -> dict[str, Volume]:
    """The team's volumes named in ``names``, by name."""
    if not names:
        return {}
    found = await session.scalars(select(Volume).where(Volume.team_id == team_id, Volume.name.in_(names)))
    return {volume.name: volume for volume in found}


async def by_ids(session: AsyncSession, volume_ids: set[str]) -> dict[str, Volume]:
    if not volume_ids:
        return {}
    return {
        v.volume_id: v for v in await session.scalars(select(Volume).where(Volume.volume_id.in_(volume_ids)))
    }


async def of_team(session: AsyncSession, team_id: str) -> list[Volume]:
    """The team's volumes, oldest first."""
    statement = select(Volume).where(Volume.team_id == team_id).order_by(Volume.created_at, Volume.volume_id)
    return list(await session.scalars(statement))


async def count(session: AsyncSession, team_id: str) -> int:
    return await session.scalar(select(func.count()).where(Volume.team_id == team_id)) or 0


async def total_mb(session: AsyncSession, team_id: str) -> int:
    """The sizes of the team's volumes, together."""
    statement = select(func.coalesce(func.sum(Volume.size_mb), 0)).where(Volume.team_id == team_id)
    return int(await session.scalar(statement) or 0)


async def add(session: AsyncSession, volume: Volume) -> Volume:
    session.add(volume)
    await session.flush()
    return volume


async def remove(session: AsyncSession, volume_id: str) -> bool:
    """Delete the row; False when it was already gone."""
    result = await session.execute(delete(Volume).where(Volume.volume_id == volume_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]
