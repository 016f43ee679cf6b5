"""Snapshots and forks of running sandboxes (spec §1.3 rows 10, 11, 13): ``POST /sandboxes/{id}/snapshots``,
``GET /snapshots`` and ``POST /sandboxes/{id}/fork``. ``DELETE /templates/{id}`` removes a snapshot."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from ..deps import SandboxServiceDep, SettingsDep, SnapshotServiceDep, TeamDep, require_team
from ..errors import status_of
from ..schemas.common import ErrorBody
from ..schemas.sandboxes import CreatedSandbox
from ..schemas.snapshots import ForkRequest, SandboxForkResult, SnapshotInfo, SnapshotRequest

router = APIRouter(tags=["snapshots"], dependencies=[Depends(require_team)])


@router.post("/sandboxes/{sandbox_id}/snapshots", status_code=201, response_model_exclude_none=True)
async def create_snapshot(
    sandbox_id: str, team: TeamDep, snapshots: SnapshotServiceDep, body: SnapshotRequest | None = None
) -> SnapshotInfo:
    row = await snapshots.create(
        team_id=team.team_id,
        sandbox_id=sandbox_id,
        name=body.name if body else None,
        memory=body.memory if body else None,
    )
    return SnapshotInfo.of(row)


@router.get("/snapshots")
async def list_snapshots(
    team: TeamDep,
    snapshots: SnapshotServiceDep,
    response: Response,
    sandbox_id: Annotated[str | None, Query(alias="sandboxID", max_length=64)] = None,
    name: Annotated[str | None, Query(max_length=255)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    next_token: Annotated[str | None, Query(alias="nextToken", pattern=r"^[0-9]{1,9}$")] = None,
) -> list[SnapshotInfo]:
    page = await snapshots.page(
        team_id=team.team_id, sandbox_id=sandbox_id, name=name, limit=limit, next_token=next_token
    )
    if page.next_token:
        response.headers["X-Next-Token"] = page.next_token
    return [SnapshotInfo.of(row) for row in page.items]


@router.post("/sandboxes/{sandbox_id}/fork", status_code=201, response_model_exclude_none=True)
async def fork_sandbox(
    sandbox_id: str,
    team: TeamDep,
    service: SandboxServiceDep,
    settings: SettingsDep,
    body: ForkRequest | None = None,
) -> list[SandboxForkResult]:
    body = body or ForkRequest()
    forks = await service.fork(
        team_id=team.team_id, sandbox_id=sandbox_id, count=body.count, timeout_s=body.timeout
    )
    domain = settings.sandbox_domain
    return [
        SandboxForkResult(sandbox=CreatedSandbox.of(fork.sandbox, domain=domain))
        if fork.sandbox is not None
        else SandboxForkResult(error=ErrorBody(code=status_of(fork.error), message=fork.error.message))  # type: ignore[arg-type]
        for fork in forks
    ]
