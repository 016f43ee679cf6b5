"""``/secrets``: the calling team's secrets (E2B's routes). A value goes in, never out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from ..deps import TeamDep, require_team
from ..schemas.secrets import NewSecret, SecretBody, SecretUpdate
from ..services.secrets import SecretService

router = APIRouter(tags=["secrets"], dependencies=[Depends(require_team)])


async def _secrets(request: Request) -> SecretService:
    return request.app.state.secrets


SecretServiceDep = Annotated[SecretService, Depends(_secrets)]


@router.post("/secrets", status_code=201)
async def create_secret(body: NewSecret, team: TeamDep, service: SecretServiceDep) -> SecretBody:
    row = await service.create(team_id=team.team_id, name=body.name, value=body.value, metadata=body.metadata)
    return SecretBody.of(row)


@router.get("/secrets")
async def list_secrets(
    team: TeamDep,
    service: SecretServiceDep,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
    next_token: Annotated[str | None, Query(alias="nextToken", max_length=512)] = None,
) -> list[SecretBody]:
    page = await service.page(team_id=team.team_id, limit=limit, next_token=next_token)
    if page.next_token:
        response.headers["X-Next-Token"] = page.next_token
    return [SecretBody.of(row) for row in page.items]


@router.get("/secrets/{secret_id}")
async def get_secret(secret_id: str, team: TeamDep, service: SecretServiceDep) -> SecretBody:
    return SecretBody.of(await service.get(team_id=team.team_id, key=secret_id))


@router.post("/secrets/{secret_id}")
async def update_secret(
    secret_id: str, body: SecretUpdate, team: TeamDep, service: SecretServiceDep
) -> SecretBody:
    row = await service.update(team_id=team.team_id, key=secret_id, value=body.value, metadata=body.metadata)
    return SecretBody.of(row)


@router.delete("/secrets/{secret_id}", status_code=204, response_class=Response)
async def delete_secret(secret_id: str, team: TeamDep, service: SecretServiceDep) -> Response:
    await service.delete(team_id=team.team_id, key=secret_id)
    return Response(status_code=204)
