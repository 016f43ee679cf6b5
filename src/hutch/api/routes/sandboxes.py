"""``/sandboxes`` and ``/v2/sandboxes`` (spec §1.3 and the v1 forms of §1.5)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Response

from ...catalog.models import SandboxRow
from ..deps import SandboxServiceDep, SettingsDep, TeamDep, require_team
from ..schemas.sandbox_logs import SandboxLogEntry, SandboxLogs, SandboxLogsV2
from ..schemas.sandboxes import (
    ConnectSandbox,
    ConnectSandboxV1,
    CreatedSandbox,
    ListedSandbox,
    NetworkUpdate,
    NewSandbox,
    NewSandboxV1,
    PauseRequest,
    ResumeRequest,
    SandboxDetail,
    SandboxListQuery,
    SandboxListQueryV1,
    TimeoutRequest,
)
from ..services.logs import LogLevel
from ..services.sandboxes import SandboxService

router = APIRouter(tags=["sandboxes"], dependencies=[Depends(require_team)])

# The time to live of a v1 create without one, and the most sandboxes the unpaginated v1 list returns.
V1_DEFAULT_TIMEOUT_S = 15
V1_LIST_MAX = 5000

IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255, pattern=r"^[a-z0-9-]+$")
]


@router.post("/v2/sandboxes", status_code=201)
async def create_sandbox(
    body: NewSandbox,
    team: TeamDep,
    service: SandboxServiceDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> CreatedSandbox:
    sandbox = await _create(service, team.team_id, body, body.timeout, idempotency_key)
    return CreatedSandbox.of(sandbox, domain=settings.sandbox_domain)


@router.post("/sandboxes", status_code=201)
async def create_sandbox_v1(
    body: NewSandboxV1, team: TeamDep, service: SandboxServiceDep, settings: SettingsDep
) -> CreatedSandbox:
    timeout_s = V1_DEFAULT_TIMEOUT_S if body.timeout is None else body.timeout
    sandbox = await _create(service, team.team_id, body, timeout_s, None)
    return CreatedSandbox.of(sandbox, domain=settings.sandbox_domain)


async def _create(
    service: SandboxService,
    team_id: str,
    body: NewSandbox,
    timeout_s: int | None,
    idempotency_key: str | None,
) -> SandboxRow:
    """The one create behind both API versions."""
    return await service.create(
        team_id=team_id,
        template=body.template_id,
        timeout_s=timeout_s,
        metadata=body.metadata,
        env_vars=body.env_vars,
        allow_internet_access=body.allow_internet_access,
        allow_out=body.network.allow_out if body.network else None,
        deny_out=body.network.deny_out if body.network else None,
        allow_public_traffic=body.network.allow_public_traffic if body.network else None,
        mask_request_host=body.network.mask_request_host if body.network else None,
        idempotency_key=idempotency_key,
        auto_pause=body.auto_pause,
        auto_pause_memory=body.auto_pause_memory,
        auto_resume=body.auto_resume is not None and body.auto_resume.enabled,
        volume_mounts=body.mounts(),
        rules=body.network.checked_rules() if body.network else None,
        egress_proxy=body.network.proxy() if body.network else None,
        dns_servers=body.network.dns_servers if body.network else None,
    )


@router.get("/v2/sandboxes")
async def list_sandboxes(
    query: Annotated[SandboxListQuery, Query()], team: TeamDep, service: SandboxServiceDep, response: Response
) -> list[ListedSandbox]:
    page = await service.page(
        team_id=team.team_id,
        metadata=query.metadata_filter(),
        states=query.states(),
        template=query.template,
        started_after=query.started_after,
        descending=query.order == "desc",
        limit=query.limit,
        next_token=query.next_token,
    )
    if page.next_token:
        response.headers["X-Next-Token"] = page.next_token
    return [ListedSandbox.of(sandbox) for sandbox in page.items]


@router.get("/sandboxes")
async def list_sandboxes_v1(
    query: Annotated[SandboxListQueryV1, Query()], team: TeamDep, service: SandboxServiceDep
) -> list[ListedSandbox]:
    sandboxes = await service.running(
        team_id=team.team_id, metadata=query.metadata_filter(), at_most=V1_LIST_MAX
    )
    return [ListedSandbox.of(sandbox) for sandbox in sandboxes]


@router.get("/sandboxes/{sandbox_id}")
async def get_sandbox(
    sandbox_id: str, team: TeamDep, service: SandboxServiceDep, settings: SettingsDep
) -> SandboxDetail:
    sandbox = await service.get(team_id=team.team_id, sandbox_id=sandbox_id)
    return SandboxDetail.of(sandbox, domain=settings.sandbox_domain)


@router.delete("/sandboxes/{sandbox_id}", status_code=204, response_class=Response)
async def kill_sandbox(sandbox_id: str, team: TeamDep, service: SandboxServiceDep) -> Response:
    await service.kill(team_id=team.team_id, sandbox_id=sandbox_id)
    return Response(status_code=204)


@router.post("/sandboxes/{sandbox_id}/timeout", status_code=204, response_class=Response)
async def set_timeout(
    sandbox_id: str, body: TimeoutRequest, team: TeamDep, service: SandboxServiceDep
) -> Response:
    await service.set_timeout(team_id=team.team_id, sandbox_id=sandbox_id, timeout_s=body.timeout)
    return Response(status_code=204)


@router.put("/sandboxes/{sandbox_id}/network", status_code=204, response_class=Response)
async def update_network(
    sandbox_id: str, body: NetworkUpdate, team: TeamDep, service: SandboxServiceDep
) -> Response:
    await service.update_network(
        team_id=team.team_id,
        sandbox_id=sandbox_id,
        allow_internet_access=body.allow_internet_access,
        allow_out=body.allow_out,
        deny_out=body.deny_out,
        rules=body.checked_rules(),
        egress_proxy=body.proxy(),
        dns_servers=body.dns_servers,
    )
    return Response(status_code=204)


@router.post(
    "/v2/sandboxes/{sandbox_id}/connect", status_code=200, responses={201: {"model": CreatedSandbox}}
)
async def connect_sandbox(
    sandbox_id: str,
    body: ConnectSandbox,
    team: TeamDep,
    service: SandboxServiceDep,
    settings: SettingsDep,
    response: Response,
) -> CreatedSandbox:
    """200 with a running sandbox; 201 when it was paused and has just been resumed."""
    sandbox, resumed = await service.connect(
        team_id=team.team_id, sandbox_id=sandbox_id, timeout_s=body.timeout, memory=body.memory
    )
    if resumed:
        response.status_code = 201
    return CreatedSandbox.of(sandbox, domain=settings.sandbox_domain)


@router.post("/sandboxes/{sandbox_id}/connect", status_code=200, responses={201: {"model": CreatedSandbox}})
async def connect_sandbox_v1(
    sandbox_id: str,
    body: ConnectSandboxV1,
    team: TeamDep,
    service: SandboxServiceDep,
    settings: SettingsDep,
    response: Response,
) -> CreatedSandbox:
    sandbox, resumed = await service.connect(
        team_id=team.team_id, sandbox_id=sandbox_id, timeout_s=body.timeout, memory=body.memory
    )
    if resumed:
        response.status_code = 201
    return CreatedSandbox.of(sandbox, domain=settings.sandbox_domain)


@router.post("/sandboxes/{sandbox_id}/pause", status_code=204, response_class=Response)
async def pause_sandbox(
    sandbox_id: str, team: TeamDep, service: SandboxServiceDep, body: PauseRequest | None = None
) -> Response:
    """Pause a running sandbox: with its memory by default, only its files with ``memory: false``."""
    memory = True if body is None else body.memory
    await service.pause(team_id=team.team_id, sandbox_id=sandbox_id, memory=memory)
    return Response(status_code=204)


@router.post("/sandboxes/{sandbox_id}/resume", status_code=201)
async def resume_sandbox(
    sandbox_id: str,
    team: TeamDep,
    service: SandboxServiceDep,
    settings: SettingsDep,
    body: ResumeRequest | None = None,
) -> CreatedSandbox:
    """v1 resume: a paused sandbox runs again (409 if it runs already)."""
    body = body or ResumeRequest()
    sandbox = await service.resume(
        team_id=team.team_id, sandbox_id=sandbox_id, timeout_s=body.timeout, memory=body.memory
    )
    return CreatedSandbox.of(sandbox, domain=settings.sandbox_domain)


# The last second a datetime can hold (9999-12-31T23:59:59Z): later times asked for are a 400.
MAX_UNIX_SECONDS = 253_402_300_799


@router.get("/sandboxes/{sandbox_id}/logs")
async def get_logs(
    sandbox_id: str,
    team: TeamDep,
    service: SandboxServiceDep,
    start: Annotated[int | None, Query(ge=0, le=MAX_UNIX_SECONDS * 1000)] = None,
    limit: Annotated[int, Query(ge=0, le=10_000)] = 1000,
) -> SandboxLogs:
    """The sandbox's log from ``start`` (unix milliseconds) on, at most ``limit`` lines."""
    lines = await service.logs(
        team_id=team.team_id, sandbox_id=sandbox_id, cursor=_moment(start), limit=limit
    )
    return SandboxLogs.of(lines)


@router.get("/v2/sandboxes/{sandbox_id}/logs")
async def get_logs_v2(
    sandbox_id: str,
    team: TeamDep,
    service: SandboxServiceDep,
    cursor: Annotated[int | None, Query(ge=0, le=MAX_UNIX_SECONDS * 1000)] = None,
    limit: Annotated[int, Query(ge=0, le=1000)] = 1000,
    direction: Literal["forward", "backward"] = "forward",
    level: LogLevel | None = None,
    search: Annotated[str | None, Query(max_length=256)] = None,
) -> SandboxLogsV2:
    """The sandbox's log from ``cursor`` (unix milliseconds) on, or before it going ``backward``; at
    ``level`` or above, with ``search`` in the message."""
    lines = await service.logs(
        team_id=team.team_id,
        sandbox_id=sandbox_id,
        cursor=_moment(cursor),
        backward=direction == "backward",
        level=level,
        search=search,
        limit=limit,
    )
    return SandboxLogsV2(logs=[SandboxLogEntry.of(line) for line in lines])


def _moment(unix_ms: int | None) -> datetime | None:
    return None if unix_ms is None else datetime.fromtimestamp(unix_ms / 1000, UTC)
