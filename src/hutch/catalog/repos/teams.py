"""Teams and their API keys."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ...errors import Conflict
from ..keys import hash_key, mask_key
from ..models import ApiKey, Team


async def get_by_name(session: AsyncSession, name: str) -> Team | None:
    return await session.scalar(select(Team).where(Team.name == name))


async def add(session: AsyncSession, *, name: str) -> Team:
    team = Team(team_id=str(uuid.uuid4()), name=name)
    session.add(team)
    await session.flush()
    return team


async def for_key(session: AsyncSession, key: str) -> Team | None:
    """The team that owns ``key``, if it is a known key."""
    statement = select(Team).join(ApiKey).where(ApiKey.key_hash == hash_key(key))
    return await session.scalar(statement)


async def has_keys(session: AsyncSession, team_id: str) -> bool:
    return await session.scalar(select(ApiKey.key_hash).where(ApiKey.team_id == team_id).limit(1)) is not None


async def add_key(session: AsyncSession, *, team_id: str, key: str) -> ApiKey:
    """Store ``key`` (as its hash) for the team; storing a key the team already has is a no-op."""
    digest = hash_key(key)
    existing = await session.get(ApiKey, digest)
    if existing is not None:
        if existing.team_id != team_id:
            raise Conflict("this API key belongs to another team")
        return existing
    api_key = ApiKey(key_hash=digest, team_id=team_id, mask=mask_key(key))
    session.add(api_key)
    await session.flush()
    return api_key
