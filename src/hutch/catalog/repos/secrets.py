"""Secrets: found by id or name within a team, listed by creation in keyset pages, counted for the team's
quota, added, updated and removed. Values are stored sealed; this module never sees them in clear."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..models import Secret


async def find(session: AsyncSession, *, team_id: str, key: str) -> Secret | None:
    """The team's secret whose id or (lower-cased) name is ``key``."""
    statement = select(Secret).where(
        Secret.team_id == team_id, or_(Secret.secret_id == key, Secret.name == key.lower())
    )
    return await session.scalar(statement)


async def by_names(session: AsyncSession, *, team_id: str, names: set[str]) -> dict[str, Secret]:
    """The team's secrets named in ``names`` (lower-case), by name."""
    if not names:
        return {}
    found = await session.scalars(select(Secret).where(Secret.team_id == team_id, Secret.name.in_(names)))
    return {secret.name: secret for secret in found}


async def page(
    session: AsyncSession, *, team_id: str, after: tuple[datetime, str] | None, limit: int
) -> list[Secret]:
    """Up to ``limit`` of the team's secrets, oldest first, after the (created_at, secret_id) ``after``."""
    statement = select(Secret).where(Secret.team_id == team_id)
    if after is not None:
        created_at, secret_id = after
        statement = statement.where(
            or_(
                Secret.created_at > created_at,
                and_(Secret.created_at == created_at, Secret.secret_id > secret_id),
            )
        )
    statement = statement.order_by(Secret.created_at, Secret.secret_id).limit(limit)
    return list(await session.scalars(statement))


async def count(session: AsyncSession, team_id: str) -> int:
    return await session.scalar(select(func.count()).where(Secret.team_id == team_id)) or 0


async def add(session: AsyncSession, secret: Secret) -> Secret:
    session.add(secret)
    await session.flush()
    return secret


async def remove(session: AsyncSession, secret_id: str) -> bool:
    result = await session.execute(delete(Secret).where(Secret.secret_id == secret_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]
