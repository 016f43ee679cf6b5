"""Teams and their API keys."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ...errors import Conflict, NotFound
from ..keys import hash_key, mask_key, masked
from ..models import DEFAULT_KEY_NAME, ApiKey, Team


async def get_by_name(session: AsyncSession, name: str) -> Team | None:
    return await session.scalar(select(Team).where(Team.name == name))


async def lock(session: AsyncSession, team_id: str) -> Team | None:
    """The team, its row locked until the transaction ends (PostgreSQL; SQLite has one writer anyway), so
    that checks of its keys and the change that follows them cannot interleave with another's."""
    return await session.scalar(select(Team).where(Team.team_id == team_id).with_for_update())


async def add(session: AsyncSession, *, name: str, quotas: dict[str, int] | None = None) -> Team:
    team = Team(team_id=str(uuid.uuid4()), name=name, quotas=dict(quotas or {}))
    session.add(team)
    await session.flush()
    return team


async def get(session: AsyncSession, team_id: str) -> Team | None:
    return await session.get(Team, team_id)


async def all_teams(session: AsyncSession) -> list[Team]:
    """Every team, oldest first."""
    return list(await session.scalars(select(Team).order_by(Team.created_at, Team.name)))


async def quotas(session: AsyncSession, team_id: str) -> dict[str, int]:
    """The team's own quota limits (none for a team that does not exist)."""
    own = await session.scalar(select(Team.quotas).where(Team.team_id == team_id))
    return dict(own or {})


async def set_quotas(session: AsyncSession, team: Team, changes: dict[str, int | None]) -> Team:
    """Set the team's own limits in ``changes``; a ``None`` drops the team's own, back to the default."""
    merged = dict(team.quotas)
    for name, value in changes.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    team.quotas = merged
    await session.flush()
    return team


async def remove(session: AsyncSession, team: Team) -> None:
    """Delete the team; its keys, templates and sandbox rows go with it."""
    await session.delete(team)
    await session.flush()


_ACTIVE = ApiKey.revoked_at.is_(None)


async def for_key(session: AsyncSession, key: str) -> Team | None:
    """The team that owns ``key``, if it is a known key that was not revoked."""
    statement = select(Team).join(ApiKey).where(ApiKey.key_hash == hash_key(key), _ACTIVE)
    return await session.scalar(statement)


async def key_with_team(session: AsyncSession, key: str) -> tuple[ApiKey, Team] | None:
    """The stored ``key`` and its team, if it is a known key that was not revoked."""
    return await hashed_key_with_team(session, hash_key(key))


async def hashed_key_with_team(session: AsyncSession, key_hash: str) -> tuple[ApiKey, Team] | None:
    """The key stored as ``key_hash`` and its team, if it was not revoked."""
    statement = select(ApiKey, Team).join(Team).where(ApiKey.key_hash == key_hash, _ACTIVE)
    found = (await session.execute(statement)).first()
    return None if found is None else (found[0], found[1])


async def stored_key(session: AsyncSession, key: str) -> ApiKey | None:
    """The row of ``key``, revoked or not."""
    return await session.get(ApiKey, hash_key(key))


async def has_keys(session: AsyncSession, team_id: str) -> bool:
    statement = select(ApiKey.key_hash).where(ApiKey.team_id == team_id, _ACTIVE).limit(1)
    return await session.scalar(statement) is not None


async def add_key(session: AsyncSession, *, team_id: str, key: str, name: str = DEFAULT_KEY_NAME) -> ApiKey:
    """Store ``key`` (as its hash) for the team; storing a key the team already has is a no-op, and a
    revoked key is never stored again (``Conflict``)."""
    digest = hash_key(key)
    existing = await session.get(ApiKey, digest)
    if existing is not None:
        if existing.team_id != team_id:
            raise Conflict("this API key belongs to another team")
        if existing.revoked_at is not None:
            raise Conflict("this API key was revoked")
        return existing
    shown = masked(key)
    api_key = ApiKey(
        key_hash=digest,
        id=str(uuid.uuid4()),
        team_id=team_id,
        name=name,
        mask=mask_key(key),
        value_length=shown.value_length,
        mask_prefix=shown.shown_prefix,
        mask_suffix=shown.shown_suffix,
    )
    session.add(api_key)
    await session.flush()
    return api_key


async def keys(session: AsyncSession, team_id: str) -> list[ApiKey]:
    """The team's keys that were not revoked, oldest first."""
    statement = (
        select(ApiKey).where(ApiKey.team_id == team_id, _ACTIVE).order_by(ApiKey.created_at, ApiKey.id)
    )
    return list(await session.scalars(statement))


async def key_or_raise(session: AsyncSession, *, team_id: str, key_id: str) -> ApiKey:
    """The team's key ``key_id``; another team's, or a revoked one, is as unknown as a missing one."""
    statement = select(ApiKey).where(ApiKey.id == key_id, ApiKey.team_id == team_id, _ACTIVE)
    api_key = await session.scalar(statement)
    if api_key is None:
        raise NotFound(f"API key {key_id!r} not found")
    return api_key


async def count_keys(session: AsyncSession, team_id: str) -> int:
    """How many keys of the team were not revoked."""
    statement = select(func.count()).select_from(ApiKey).where(ApiKey.team_id == team_id, _ACTIVE)
    return await session.scalar(statement) or 0


async def revoke_key(session: AsyncSession, key_hash: str, *, at: datetime) -> None:
    await session.execute(update(ApiKey).where(ApiKey.key_hash == key_hash).values(revoked_at=at))


async def mark_used(session: AsyncSession, key_hash: str, *, at: datetime) -> None:
    await session.execute(update(ApiKey).where(ApiKey.key_hash == key_hash).values(last_used=at))
