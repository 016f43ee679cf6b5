"""Template names (``name`` or ``name:tag``) to templates, and templates to what a node starts; the
``/templates`` resource: list what a team may use, show one with its builds, delete the team's own."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from ...catalog import Catalog
from ...catalog.models import Template, TemplateBuild
from ...catalog.repos import template_builds, templates
from ...errors import Forbidden, InvalidRequest, NotFound
from ...runtime.node_client import TemplateImage, engine_named

if TYPE_CHECKING:
    from .snapshots import SnapshotService
    from .template_builds import TemplateBuildService

# The long template ids of E2B's public templates, which older code passes instead of the names.
_LEGACY_IDS = {
    "base-template-000-0000-0000-000000000001": "base",
    "desktop-template-000-0000-0000-000000000001": "desktop",
}


async def find(session: AsyncSession, *, name: str, team_id: str | None = None) -> Template | None:
    """The template called ``name`` (an id, an alias, or one of E2B's legacy ids); with ``team_id``, only
    one that team may use."""
    template = await templates.find(session, name, team_id=team_id)
    if template is None and name in _LEGACY_IDS:
        template = await templates.find(session, _LEGACY_IDS[name], team_id=team_id)
    return template


async def resolve(session: AsyncSession, *, name: str, team_id: str) -> Template:
    """The template ``name`` as the team sees it; an unknown one (or another team's private one) is
    ``NotFound`` listing the names the team may use."""
    template = await find(session, name=name, team_id=team_id)
    if template is None:
        known = await templates.names(session, team_id=team_id)
        listing = ", ".join(known) if known else "none (build one first)"
        raise NotFound(f"template {name!r} not found; known templates: {listing}")
    return template


async def resolve_image(session: AsyncSession, *, name: str, team_id: str) -> tuple[Template, TemplateImage]:
    """The template ``name`` stands for and the image to start: with ``:tag``, the build the tag names;
    otherwise the template's latest successful build. A template never built successfully is
    ``InvalidRequest``."""
    base, _, tag = name.partition(":")
    template = await resolve(session, name=base if tag else name, team_id=team_id)
    if not tag:
        if not template.rootfs:
            raise InvalidRequest(
                f"template {name!r} has no successful build yet (its build is {template.build_status})"
            )
        return template, image(template)
    row = await template_builds.tag(session, template.template_id, tag)
    build = None if row is None else await template_builds.get(session, row.build_id)
    if build is None or build.status != "ready" or not build.rootfs:
        raise NotFound(f"template {base!r} has no tag {tag!r}")
    return template, TemplateImage(
        template_id=template.template_id,
        rootfs=Path(build.rootfs),
        default_user=build.default_user or template.default_user,
        default_workdir=build.default_workdir,
        env=dict(build.env),
        start_cmd=build.start_cmd,
        ready_cmd=build.ready_cmd,
        engine=engine_named(template.engine) or "crun",
    )


async def visible(*, catalog: Catalog, team_id: str) -> list[Template]:
    """The templates the team may use: the installation's, its own and other teams' public ones."""
    async with catalog.transaction() as session:
        return [row for row in await templates.all_templates(session) if row.visible_to(team_id)]


async def detail(*, catalog: Catalog, team_id: str, name: str) -> tuple[Template, list[TemplateBuild]]:
    """The template ``name`` the team may use, and its builds, newest first."""
    async with catalog.transaction() as session:
        template = await find(session, name=name, team_id=team_id)
        if template is None:
            raise NotFound(f"template {name!r} not found")
        return template, await template_builds.of_template(session, template.template_id)


async def delete(
    *, catalog: Catalog, builds: TemplateBuildService, snapshots: SnapshotService, team_id: str, name: str
) -> None:
    """Delete the team's template ``name`` (id or alias), with its builds, uploads and, for a snapshot, its
    checkpoint. Sandboxes started from it keep running. A built-in template is ``Forbidden``; one the team
    does not own is ``NotFound``."""
    async with catalog.transaction() as session:
        template = await find(session, name=name, team_id=team_id)
        if template is not None and template.team_id is None:
            raise Forbidden(f"template {name!r} is built in and cannot be deleted")
        if template is None or template.team_id != team_id:
            raise NotFound(f"template {name!r} not found among the team's own templates")
        await templates.remove(session, template)
    await builds.forget(template_id=template.template_id)
    snapshots.forget(template_id=template.template_id)


def image(template: Template) -> TemplateImage:
    """What a node starts a sandbox of ``template`` from (its latest successful build)."""
    return TemplateImage(
        template_id=template.template_id,
        rootfs=Path(template.rootfs),
        default_user=template.default_user,
        default_workdir=template.default_workdir,
        env=dict(template.env),
        start_cmd=template.start_cmd,
        ready_cmd=template.ready_cmd,
        start_user=template.start_user,
        engine=engine_named(template.engine) or "crun",
        checkpoint=None if template.checkpoint is None else Path(template.checkpoint),
    )
