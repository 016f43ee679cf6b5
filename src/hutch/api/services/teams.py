"""Teams as the operator manages them (``/admin/teams``): list, create with quotas, change quotas, delete,
and give a team a key.

Deleting a team with sandboxes is refused unless forced. Forced, the team's row goes first (its keys,
templates and sandbox rows with it), so that no request of the team passes and nothing can be recorded for
it any more (a create in flight fails on the missing team and kills what it started); then every sandbox
the team had is killed, its snapshots' memory removed and its volumes deleted from their nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from ...catalog import Catalog
from ...catalog.models import Team
from ...catalog.repos import sandboxes, teams, templates, volumes
from ...errors import Conflict, NotFound
from . import api_keys, auth, quotas
from .api_keys import CreatedKey
from .sandboxes import SandboxService
from .snapshots import SnapshotService
from .volumes import VolumeService


@dataclass(frozen=True)
class TeamView:
    """A team, every limit it has, and how many sandboxes (running or paused) it holds."""

    team: Team
    quotas: dict[str, int]
    sandboxes: int


async def list_teams(*, catalog: Catalog) -> list[TeamView]:
    async with catalog.transaction() as session:
        return [await _view(session, team) for team in await teams.all_teams(session)]


async def create(*, catalog: Catalog, name: str, limits: dict[str, int]) -> TeamView:
    """A new team with its own ``limits`` (``Conflict`` if the name is taken)."""
    async with catalog.transaction() as session:
        if await teams.get_by_name(session, name) is not None:
            raise Conflict(f"a team named {name!r} exists")
        return await _view(session, await teams.add(session, name=name, quotas=limits))


async def update(*, catalog: Catalog, team_id: str, changes: dict[str, int | None]) -> TeamView:
    """Set the team's own limits; ``None`` gives it the default again."""
    async with catalog.transaction() as session:
        team = await _team_or_raise(session, team_id)
        view = await _view(session, await teams.set_quotas(session, team, changes))
    auth.forget_keys(catalog)
    return view


async def create_key(*, catalog: Catalog, team_id: str, name: str) -> CreatedKey:
    async with catalog.transaction() as session:
        await _team_or_raise(session, team_id)
    return await api_keys.create(catalog=catalog, team_id=team_id, name=name)


async def remove(
    *,
    catalog: Catalog,
    sandbox_service: SandboxService,
    snapshot_service: SnapshotService,
    volume_service: VolumeService,
    team_id: str,
    force: bool,
) -> None:
    """Delete the team; with sandboxes left, only when ``force`` (which kills them)."""
    async with catalog.transaction() as session:
        # Locked (PostgreSQL): a sandbox row being written for the team waits, then fails on the missing team.
        team = await teams.lock(session, team_id)
        if team is None:
            raise NotFound(f"team {team_id!r} not found")
        doomed = [sandbox.sandbox_id for sandbox in await sandboxes.of_team(session, team_id)]
        if doomed and not force:
            raise Conflict(
                f"team {team.name!r} has {len(doomed)} sandboxes: kill them first, or force the deletion"
            )
        snapshot_ids = [snapshot.template_id for snapshot in await templates.snapshots(session, team_id)]
        kept_volumes = await volumes.of_team(session, team_id)
        await teams.remove(session, team)
    auth.forget_keys(catalog)
    for sandbox_id in doomed:
        await sandbox_service.destroy(sandbox_id=sandbox_id)
    for template_id in snapshot_ids:
        snapshot_service.forget(template_id=template_id)
    await volume_service.discard(kept_volumes)


async def _view(session: AsyncSession, team: Team) -> TeamView:
    return TeamView(
        team=team,
        quotas=await quotas.limits(session, team.team_id),
        sandboxes=len(await sandboxes.of_team(session, team.team_id)),
    )


async def _team_or_raise(session: AsyncSession, team_id: str) -> Team:
    team = await teams.get(session, team_id)
    if team is None:
        raise NotFound(f"team {team_id!r} not found")
    return team
