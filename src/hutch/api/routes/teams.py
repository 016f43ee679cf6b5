"""``/admin/teams``: the operator's routes to list, create, change and delete teams and to give a team an API
key. Authenticated only by the operator key (``X-Hutch-Operator-Key``); a team's API key opens none of
them, and the operator key opens no team route. Not E2B's API: left out of the API's documentation."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Response

from ..deps import CatalogDep, SandboxServiceDep, SnapshotServiceDep, VolumeServiceDep, require_operator
from ..schemas.api_keys import CreatedTeamAPIKey, NewTeamAPIKey
from ..schemas.teams import NewTeam, TeamInfo, UpdateTeam
from ..services import teams
from ..services.teams import TeamView

router = APIRouter(prefix="/admin/teams", include_in_schema=False, dependencies=[Depends(require_operator)])

TeamId = Path(alias="teamID", max_length=64)


def _info(view: TeamView) -> TeamInfo:
    return TeamInfo(
        team_id=view.team.team_id,
        name=view.team.name,
        created_at=view.team.created_at,
        quotas=view.quotas,
        custom_quotas=dict(view.team.quotas),
        sandboxes=view.sandboxes,
    )


@router.get("")
async def list_teams(catalog: CatalogDep) -> list[TeamInfo]:
    return [_info(view) for view in await teams.list_teams(catalog=catalog)]


@router.post("", status_code=201)
async def create_team(body: NewTeam, catalog: CatalogDep) -> TeamInfo:
    return _info(await teams.create(catalog=catalog, name=body.name, limits=body.quotas))


@router.patch("/{teamID}")
async def update_team(body: UpdateTeam, catalog: CatalogDep, team_id: str = TeamId) -> TeamInfo:
    return _info(await teams.update(catalog=catalog, team_id=team_id, changes=body.quotas))


@router.delete("/{teamID}", status_code=204, response_class=Response)
async def delete_team(
    catalog: CatalogDep,
    sandbox_service: SandboxServiceDep,
    snapshot_service: SnapshotServiceDep,
    volume_service: VolumeServiceDep,
    team_id: str = TeamId,
    force: bool = Query(default=False, description="Kill the team's sandboxes rather than refuse"),
) -> Response:
    await teams.remove(
        catalog=catalog,
        sandbox_service=sandbox_service,
        snapshot_service=snapshot_service,
        volume_service=volume_service,
        team_id=team_id,
        force=force,
    )
    return Response(status_code=204)


@router.post("/{teamID}/keys", status_code=201)
async def create_team_key(
    body: NewTeamAPIKey, catalog: CatalogDep, team_id: str = TeamId
) -> CreatedTeamAPIKey:
    created = await teams.create_key(catalog=catalog, team_id=team_id, name=body.name)
    return CreatedTeamAPIKey.created(created.row, created.key)
