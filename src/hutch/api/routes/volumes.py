"""``/volumes``: the calling team's volumes (E2B's routes, authenticated with ``X-API-Key``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from ..deps import TeamDep, VolumeServiceDep, require_team
from ..schemas.volumes import NewVolume, VolumeAndToken, VolumeBody

router = APIRouter(tags=["volumes"], dependencies=[Depends(require_team)])


@router.post("/volumes", status_code=201)
async def create_volume(body: NewVolume, team: TeamDep, service: VolumeServiceDep) -> VolumeAndToken:
    row = await service.create(team_id=team.team_id, name=body.name)
    return VolumeAndToken.with_token(row, service.token(row))


@router.get("/volumes")
async def list_volumes(team: TeamDep, service: VolumeServiceDep) -> list[VolumeBody]:
    return [VolumeBody.of(row) for row in await service.of_team(team_id=team.team_id)]


@router.get("/volumes/{volume_id}")
async def get_volume(volume_id: str, team: TeamDep, service: VolumeServiceDep) -> VolumeAndToken:
    row = await service.get(team_id=team.team_id, volume_id=volume_id)
    return VolumeAndToken.with_token(row, service.token(row))


@router.delete("/volumes/{volume_id}", status_code=204, response_class=Response)
async def delete_volume(volume_id: str, team: TeamDep, service: VolumeServiceDep) -> Response:
    await service.delete(team_id=team.team_id, volume_id=volume_id)
    return Response(status_code=204)
