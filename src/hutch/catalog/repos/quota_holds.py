"""Quota holds on a shared catalog: a team's check and its new hold happen under one transaction-level
advisory lock per team and quota, so checks on several replicas run one at a time; expired holds no longer
count, and are removed by the next hold."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from ..models import QuotaHold


async def lock(session: AsyncSession, team_id: str, quota: str) -> None:
    """Wait for the team's quota until the transaction ends (PostgreSQL; SQLite serializes writers)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    key = int.from_bytes(hashlib.sha256(f"quota:{quota}:{team_id}".encode()).digest()[:8], "big", signed=True)
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


async def held(session: AsyncSession, team_id: str, quota: str) -> int:
    """What the team's unexpired holds of ``quota`` hold."""
    found = await session.scalar(
        select(func.coalesce(func.sum(QuotaHold.amount), 0)).where(
            QuotaHold.team_id == team_id, QuotaHold.quota == quota, QuotaHold.expires_at > datetime.now(UTC)
        )
    )
    return int(found or 0)


async def add(session: AsyncSession, team_id: str, quota: str, amount: int, *, lasts: timedelta) -> str:
    """A new hold, for at most ``lasts``; the team's expired holds go."""
    now = datetime.now(UTC)
    await session.execute(delete(QuotaHold).where(QuotaHold.team_id == team_id, QuotaHold.expires_at <= now))
    hold = QuotaHold(team_id=team_id, quota=quota, amount=amount, expires_at=now + lasts)
    session.add(hold)
    await session.flush()
    return hold.hold_id


async def remove(session: AsyncSession, hold_id: str) -> None:
    await session.execute(delete(QuotaHold).where(QuotaHold.hold_id == hold_id))
