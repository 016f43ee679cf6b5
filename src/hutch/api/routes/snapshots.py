"""Snapshots and forks of running sandboxes (spec §1.3 rows 10, 11, 13): ``POST /sandboxes/{id}/snapshots``,
``GET /snapshots`` and ``POST /sandboxes/{id}/fork``. ``DELETE /templates/{id}`` removes a snapshot."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from ..deps import SettingsDep, TeamDep, require_team
from ..errors import status_of
from ..schemas.common import ErrorBody
from ..schemas.sandboxes import Sandbox
from ..schemas.snapshots import ForkRequest, SandboxForkResult, SnapshotInfo, SnapshotRequest
from ..services.snapshots import SnapshotService

router = APIRouter(tags=["snapshots"], dependencies=[Depends(require_team)])


def _snapshots(request: Request) -> SnapshotService:
    return request.app.state.snapshots


SnapshotsDep = Annotated[SnapshotService, Depends(_snapshots)]


@router.post("/sandboxes/{sandbox_id}/snapshots", status_code=201, response_model_exclude_none=True)
async def create_snapshot(
    sandbox_id: str, team: TeamDep, snapshots: SnapshotsDep, body: SnapshotRequest | None = None
) -> SnapshotInfo:
    row = await snapshots.create(
        team_id=team.team_id, sandbox_id=sandbox_id, name=body.name if body else None
    )
    return SnapshotInfo.of(row)


@router.get("/snapshots")
async def list_snapshots(
    team: TeamDep,
    snapshots: SnapshotsDep,
    response: Response,
    sandbox_id: Annotated[str | None, Query(alias="sandboxID", max_length=64)] = None,
    name: Annotated[str | None, Query(max_length=255)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    next_token: Annotated[str | None, Query(alias="nextToken", pattern=r"^[0-9]{1,9}$")] = None,
) -> list[SnapshotInfo]:
    rows = await snapshots.list(team_id=team.team_id, sandbox_id=sandbox_id, name=name)
    start = int(next_token or 0)
    if start + limit < len(rows):
        response.headers["X-Next-Token"] = str(start + limit)
    return [SnapshotInfo.of(row) for row in rows[start : start + limit]]


@router.post("/sandboxes/{sandbox_id}/fork", status_code=201, response_model_exclude_none=True)
async def fork_sandbox(
    sandbox_id: str,
    team: TeamDep,
    snapshots: SnapshotsDep,
    settings: SettingsDep,
    body: ForkRequest | None = None,
) -> list[SandboxForkResult]:
    body = body or ForkRequest()
    forks = await snapshots.fork(
        team_id=team.team_id, sandbox_id=sandbox_id, count=body.count, timeout_s=body.timeout
    )
    domain = settings.api.sandbox_domain
    return [
        SandboxForkResult(sandbox=Sandbox.of(fork.sandbox, domain=domain))
        if fork.sandbox is not None
        else SandboxForkResult(error=ErrorBody(code=status_of(fork.error), message=fork.error.message))  # type: ignore[arg-type]
        for fork in forks
    ]
