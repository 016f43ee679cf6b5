"""Per-team quotas: how much of each kind one team may hold, the team's own limit where the operator set one,
else the configured default (``Settings.quotas``); a call beyond a limit is refused with a 429."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from ...catalog import Catalog
from ...catalog.repos import quota_holds, teams
from ...config import QuotaSettings
from ...errors import InvalidRequest, QuotaExceeded

# The key under which a catalog's sessions carry the configured defaults (``Catalog.session_info``).
DEFAULTS = "quota_defaults"

NAMES: tuple[str, ...] = tuple(QuotaSettings.model_fields)

_UNITS = {"upload_mb": " MiB", "snapshot_disk_mb": " MiB", "volume_disk_mb": " MiB", "volume_size_mb": " MiB"}
# The longest a shared hold counts: past it, the replica that made it is taken to be gone. A create holds for
# seconds; only a template build of more than two hours gives its room back early.
HOLD_LASTS = timedelta(hours=2)


def check_name(name: str) -> None:
    """Raise ``InvalidRequest`` unless ``name`` is a quota."""
    if name not in NAMES:
        raise InvalidRequest(f"unknown quota {name!r}; quotas are: {', '.join(NAMES)}")


def defaults(session: AsyncSession) -> dict[str, int]:
    """The configured defaults the session's catalog carries (the built-in ones if none were set)."""
    return session.info.get(DEFAULTS) or QuotaSettings().model_dump()


async def limit(session: AsyncSession, team_id: str, name: str) -> int:
    """The team's limit for quota ``name``: its own override, else the configured default."""
    check_name(name)
    own = await teams.quotas(session, team_id)
    return int(own[name]) if name in own else int(defaults(session)[name])


async def limits(session: AsyncSession, team_id: str) -> dict[str, int]:
    """Every quota's limit for the team."""
    return {**defaults(session), **await teams.quotas(session, team_id)}


def exceeded(name: str, limit: int) -> QuotaExceeded:
    """The error for a call that would take the team beyond ``limit`` of quota ``name`` (a 429)."""
    return QuotaExceeded(f"quota {name} exceeded: the team's limit is {limit}{_UNITS.get(name, '')}")


class Holds:
    """What calls in progress hold of one quota, per team, until what they make is in the catalog. A check
    counts the holds with the catalog's rows, so that calls made at once cannot all pass it. On a shared
    catalog the holds are rows of it (``quota_holds``), so the API replicas' checks count each other's;
    otherwise this process, the catalog's only one, keeps them."""

    def __init__(self, name: str) -> None:
        check_name(name)
        self.name = name
        self._held: dict[str, int] = {}
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def hold(
        self, catalog: Catalog, team_id: str, amount: int, used: Callable[[AsyncSession, str], Awaitable[int]]
    ) -> AsyncIterator[None]:
        """Hold ``amount`` of the team's quota for the block; ``used(session, team_id)`` reads what the team's
        rows already take. Past the limit: ``exceeded``, and nothing is held."""
        async with self.hold_some(catalog, team_id, amount, used, at_least=amount):
            yield

    @asynccontextmanager
    async def hold_some(
        self,
        catalog: Catalog,
        team_id: str,
        amount: int,
        used: Callable[[AsyncSession, str], Awaitable[int]],
        *,
        at_least: int = 1,
    ) -> AsyncIterator[int]:
        """Hold as much of ``amount`` as the team's limit leaves, and yield how much that is; less than
        ``at_least`` is ``exceeded``."""
        if catalog.shared:
            async with self._hold_shared(catalog, team_id, amount, used, at_least) as granted:
                yield granted
            return
        async with self._lock:
            # Read before the rows: a hold is let go only after what it made is committed, so one let go
            # meanwhile is counted twice (never not at all).
            held = self._held.get(team_id, 0)
            async with catalog.transaction() as session:
                allowed = await limit(session, team_id, self.name)
                taken = await used(session, team_id)
            granted = min(amount, allowed - taken - held)
            if granted < at_least:
                raise exceeded(self.name, allowed)
            self._held[team_id] = self._held.get(team_id, 0) + granted
        try:
            yield granted
        finally:
            self._held[team_id] -= granted
            if not self._held[team_id]:
                del self._held[team_id]

    @asynccontextmanager
    async def _hold_shared(
        self,
        catalog: Catalog,
        team_id: str,
        amount: int,
        used: Callable[[AsyncSession, str], Awaitable[int]],
        at_least: int,
    ) -> AsyncIterator[int]:
        async with catalog.transaction() as session:
            await quota_holds.lock(session, team_id, self.name)
            allowed = await limit(session, team_id, self.name)
            taken = await used(session, team_id) + await quota_holds.held(session, team_id, self.name)
            granted = min(amount, allowed - taken)
            if granted < at_least:
                raise exceeded(self.name, allowed)
            hold_id = await quota_holds.add(session, team_id, self.name, granted, lasts=HOLD_LASTS)
        try:
            yield granted
        finally:
            await asyncio.shield(_let_go(catalog, hold_id))


async def _let_go(catalog: Catalog, hold_id: str) -> None:
    async with catalog.transaction() as session:
        await quota_holds.remove(session, hold_id)
