"""The template build API (spec §1.3 rows 14-21, §6): builds, ``COPY`` uploads, status, aliases and tags.

The upload route is the one route without an API key: its URL carries its own signature (the SDK sends the
upload without the key, as to a presigned S3 URL).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from ..deps import TeamDep, TemplateBuildServiceDep, require_team
from ..schemas.template_builds import (
    AssignedTemplateTags,
    AssignTemplateTags,
    DeleteTemplateTags,
    TemplateAliasResponse,
    TemplateBuildFileUpload,
    TemplateBuildInfo,
    TemplateBuildRequestV3,
    TemplateBuildStartV2,
    TemplateRequestResponseV3,
    TemplateTag,
)
from ..services.logs import LogLevel

router = APIRouter(tags=["template builds"], dependencies=[Depends(require_team)])
uploads = APIRouter(tags=["template builds"])

TemplateId = Path(alias="templateID", max_length=255)
BuildId = Path(alias="buildID", max_length=64)
FilesHash = Path(alias="hash", max_length=64)


@router.post("/v3/templates", status_code=202)
async def request_build(
    body: TemplateBuildRequestV3, team: TeamDep, builds: TemplateBuildServiceDep
) -> TemplateRequestResponseV3:
    requested = await builds.request(
        team_id=team.team_id,
        name=body.name or body.alias,
        tags=body.tags,
        cpu_count=body.cpu_count,
        memory_mb=body.memory_mb,
    )
    return TemplateRequestResponseV3.of(requested)


@router.get("/templates/{templateID}/files/{hash}", status_code=201, response_model_exclude_none=True)
async def upload_link(
    request: Request,
    team: TeamDep,
    builds: TemplateBuildServiceDep,
    template_id: str = TemplateId,
    files_hash: str = FilesHash,
) -> TemplateBuildFileUpload:
    link = await builds.upload_link(
        team_id=team.team_id, template_id=template_id, files_hash=files_hash, base_url=str(request.base_url)
    )
    return TemplateBuildFileUpload.of(link)


@uploads.put("/templates/{templateID}/files/{hash}/upload", status_code=201, response_class=Response)
async def upload(
    request: Request,
    builds: TemplateBuildServiceDep,
    expires: int,
    signature: Annotated[str, Query(max_length=128)],
    template_id: str = TemplateId,
    files_hash: str = FilesHash,
) -> Response:
    await builds.receive(
        template_id=template_id,
        files_hash=files_hash,
        expires=expires,
        signature=signature,
        chunks=request.stream(),
    )
    return Response(status_code=201)


@router.post("/v2/templates/{templateID}/builds/{buildID}", status_code=202, response_class=Response)
async def start_build(
    body: TemplateBuildStartV2,
    team: TeamDep,
    builds: TemplateBuildServiceDep,
    template_id: str = TemplateId,
    build_id: str = BuildId,
) -> Response:
    await builds.start(team_id=team.team_id, template_id=template_id, build_id=build_id, source=body.source())
    return Response(status_code=202)


@router.get("/templates/{templateID}/builds/{buildID}/status", response_model_exclude_none=True)
async def build_status(
    team: TeamDep,
    builds: TemplateBuildServiceDep,
    template_id: str = TemplateId,
    build_id: str = BuildId,
    logs_offset: Annotated[int, Query(alias="logsOffset", ge=0)] = 0,
    limit: Annotated[int, Query(ge=0, le=100)] = 100,
    level: LogLevel | None = None,
) -> TemplateBuildInfo:
    status = await builds.status(
        team_id=team.team_id,
        template_id=template_id,
        build_id=build_id,
        offset=logs_offset,
        limit=limit,
        level=level,
    )
    return TemplateBuildInfo.of(status)


@router.get("/templates/aliases/{alias:path}")
async def alias(team: TeamDep, builds: TemplateBuildServiceDep, alias: str) -> TemplateAliasResponse:
    template = await builds.alias(team_id=team.team_id, alias=alias)
    return TemplateAliasResponse(template_id=template.template_id, public=template.public)


@router.post("/templates/tags", status_code=201)
async def assign_tags(
    body: AssignTemplateTags, team: TeamDep, builds: TemplateBuildServiceDep
) -> AssignedTemplateTags:
    tags, build_id = await builds.assign_tags(team_id=team.team_id, target=body.target, tags=body.tags)
    return AssignedTemplateTags(tags=tags, build_id=build_id)


@router.delete("/templates/tags", status_code=204, response_class=Response)
async def remove_tags(body: DeleteTemplateTags, team: TeamDep, builds: TemplateBuildServiceDep) -> Response:
    await builds.remove_tags(team_id=team.team_id, name=body.name, tags=body.tags)
    return Response(status_code=204)


@router.get("/templates/{templateID}/tags")
async def tags(
    team: TeamDep, builds: TemplateBuildServiceDep, template_id: str = TemplateId
) -> list[TemplateTag]:
    rows = await builds.tags(team_id=team.team_id, template_id=template_id)
    return [TemplateTag(tag=row.tag, build_id=row.build_id, created_at=row.created_at) for row in rows]
