"""``GET /capabilities``: what this server supports, per engine, and the request fields it refuses."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from ..deps import CatalogDep, TeamDep, require_team
from ..schemas.capabilities import CapabilitiesBody
from ..services import capabilities

router = APIRouter(tags=["capabilities"], dependencies=[Depends(require_team)])


@router.get("/capabilities")
async def get_capabilities(request: Request, team: TeamDep, catalog: CatalogDep) -> CapabilitiesBody:
    """The engines' pause, snapshot and fork modes, the features and network settings a sandbox can have
    (the desktop and the code interpreter where their templates are there for the caller's team), the
    request fields that are refused with a 400, and the official clients the server is tested with."""
    cluster = request.app.state.runtime is None  # a cluster's API replica
    return CapabilitiesBody.of(await capabilities.of(catalog=catalog, team_id=team.team_id, cluster=cluster))
