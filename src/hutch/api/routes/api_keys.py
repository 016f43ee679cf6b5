"""``/api-keys``: the calling team's API keys (E2B's routes, authenticated here with ``X-API-Key``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Response

from ..deps import CatalogDep, TeamDep, require_team
from ..schemas.api_keys import CreatedTeamAPIKey, NewTeamAPIKey, TeamAPIKey, UpdateTeamAPIKey
from ..services import api_keys

router = APIRouter(tags=["api-keys"], dependencies=[Depends(require_team)])

KeyId = Path(alias="apiKeyID")


@router.get("/api-keys")
async def list_api_keys(team: TeamDep, catalog: CatalogDep) -> list[TeamAPIKey]:
    return [TeamAPIKey.of(row) for row in await api_keys.list_keys(catalog=catalog, team_id=team.team_id)]


@router.post("/api-keys", status_code=201)
async def create_api_key(body: NewTeamAPIKey, team: TeamDep, catalog: CatalogDep) -> CreatedTeamAPIKey:
    created = await api_keys.create(catalog=catalog, team_id=team.team_id, name=body.name)
    return CreatedTeamAPIKey.created(created.row, created.key)


@router.patch("/api-keys/{apiKeyID}", status_code=200, response_class=Response)
async def rename_api_key(
    body: UpdateTeamAPIKey, team: TeamDep, catalog: CatalogDep, key_id: str = KeyId
) -> Response:
    await api_keys.rename(catalog=catalog, team_id=team.team_id, key_id=key_id, name=body.name)
    return Response(status_code=200)


@router.delete("/api-keys/{apiKeyID}", status_code=204, response_class=Response)
async def revoke_api_key(team: TeamDep, catalog: CatalogDep, key_id: str = KeyId) -> Response:
    await api_keys.revoke(catalog=catalog, team_id=team.team_id, key_id=key_id)
    return Response(status_code=204)
