"""The template build API (spec §1.3 rows 14-21, §6): builds, ``COPY`` uploads, status, aliases and tags.

The upload route is the one route without an API key: its URL carries its own signature (the SDK sends the
upload without the key, as to a presigned S3 URL).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from ..deps import TeamDep, require_team
from ..schemas.common import LogLevel
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
from ..services.template_builds import TemplateBuildService

router = APIRouter(tags=["template builds"], dependencies=[Depends(require_team)])
uploads = APIRouter(tags=["template builds"])

TemplateId = Path(alias="templateID", max_length=255)
BuildId = Path(alias="buildID", max_length=64)
FilesHash = Path(alias="hash", max_length=64)


def _builds(request: Request) -> TemplateBuildService:
    return request.app.state.template_builds


BuildsDep = Annotated[TemplateBuildService, Depends(_builds)]


@router.post("/v3/templates", status_code=202)
async def request_build(
    body: TemplateBuildRequestV3, team: TeamDep, builds: BuildsDep
) -> TemplateRequestResponseV3:
    return await builds.request(team.team_id, body)


@router.get("/templates/{templateID}/files/{hash}", status_code=201, response_model_exclude_none=True)
async def upload_link(
    request: Request,
    team: TeamDep,
    builds: BuildsDep,
    template_id: str = TemplateId,
    files_hash: str = FilesHash,
) -> TemplateBuildFileUpload:
    return await builds.upload_link(team.team_id, template_id, files_hash, str(request.base_url))


@uploads.put("/templates/{templateID}/files/{hash}/upload", status_code=201, response_class=Response)
async def upload(
    request: Request,
    builds: BuildsDep,
    expires: int,
    signature: Annotated[str, Query(max_length=128)],
    template_id: str = TemplateId,
    files_hash: str = FilesHash,
) -> Response:
    await builds.receive(template_id, files_hash, expires, signature, request.stream())
    return Response(status_code=201)


@router.post("/v2/templates/{templateID}/builds/{buildID}", status_code=202, response_class=Response)
async def start_build(
    body: TemplateBuildStartV2,
    team: TeamDep,
    builds: BuildsDep,
    template_id: str = TemplateId,
    build_id: str = BuildId,
) -> Response:
    await builds.start(team.team_id, template_id, build_id, body)
    return Response(status_code=202)


@router.get("/templates/{templateID}/builds/{buildID}/status", response_model_exclude_none=True)
async def build_status(
    team: TeamDep,
    builds: BuildsDep,
    template_id: str = TemplateId,
    build_id: str = BuildId,
    logs_offset: Annotated[int, Query(alias="logsOffset", ge=0)] = 0,
    limit: Annotated[int, Query(ge=0, le=100)] = 100,
    level: LogLevel | None = None,
) -> TemplateBuildInfo:
    return await builds.status(
        team.team_id, template_id, build_id, offset=logs_offset, limit=limit, level=level
    )


@router.get("/templates/aliases/{alias:path}")
async def alias(team: TeamDep, builds: BuildsDep, alias: str) -> TemplateAliasResponse:
    template = await builds.alias(team.team_id, alias)
    return TemplateAliasResponse(template_id=template.template_id, public=template.public)


@router.post("/templates/tags", status_code=201)
async def assign_tags(body: AssignTemplateTags, team: TeamDep, builds: BuildsDep) -> AssignedTemplateTags:
    tags, build_id = await builds.assign_tags(team.team_id, body.target, body.tags)
    return AssignedTemplateTags(tags=tags, build_id=build_id)


@router.delete("/templates/tags", status_code=204, response_class=Response)
async def remove_tags(body: DeleteTemplateTags, team: TeamDep, builds: BuildsDep) -> Response:
    await builds.remove_tags(team.team_id, body.name, body.tags)
    return Response(status_code=204)


@router.get("/templates/{templateID}/tags")
async def tags(team: TeamDep, builds: BuildsDep, template_id: str = TemplateId) -> list[TemplateTag]:
    rows = await builds.tags(team.team_id, template_id)
    return [TemplateTag(tag=row.tag, build_id=row.build_id, created_at=row.created_at) for row in rows]
