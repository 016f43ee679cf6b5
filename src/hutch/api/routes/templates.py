"""``/templates``: list the templates a team may use, show one with its builds, delete the team's own
(spec §1.3 #12, §1.5)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Response

from ..deps import CatalogDep, SnapshotServiceDep, TeamDep, TemplateBuildServiceDep, require_team
from ..schemas.templates import Template, TemplateWithBuilds
from ..services import templates

router = APIRouter(tags=["templates"], dependencies=[Depends(require_team)])


@router.get("/templates")
async def list_templates(team: TeamDep, catalog: CatalogDep) -> list[Template]:
    return [Template.of(row) for row in await templates.visible(catalog=catalog, team_id=team.team_id)]


@router.get("/templates/{templateID}")
async def get_template(
    team: TeamDep, catalog: CatalogDep, template_id: str = Path(alias="templateID")
) -> TemplateWithBuilds:
    template, builds = await templates.detail(catalog=catalog, team_id=team.team_id, name=template_id)
    return TemplateWithBuilds.with_builds(template, builds)


@router.delete("/templates/{templateID}", status_code=204, response_class=Response)
async def delete_template(
    team: TeamDep,
    catalog: CatalogDep,
    builds: TemplateBuildServiceDep,
    snapshots: SnapshotServiceDep,
    template_id: str = Path(alias="templateID"),
) -> Response:
    await templates.delete(
        catalog=catalog, builds=builds, snapshots=snapshots, team_id=team.team_id, name=template_id
    )
    return Response(status_code=204)
