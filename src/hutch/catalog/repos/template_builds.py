"""Template builds, their tags (``name:tag`` names one build) and their log entries."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ...errors import NotFound
from ..models import Template, TemplateBuild, TemplateBuildLog, TemplateTag


async def get(session: AsyncSession, build_id: str) -> TemplateBuild | None:
    return await session.get(TemplateBuild, build_id)


async def get_or_raise(session: AsyncSession, *, template_id: str, build_id: str) -> TemplateBuild:
    """The build ``build_id`` of the template ``template_id``; one of another template is as unknown as a
    missing one."""
    build = await session.get(TemplateBuild, build_id)
    if build is None or build.template_id != template_id:
        raise NotFound(f"build {build_id} of template {template_id} not found")
    return build


async def add(session: AsyncSession, build: TemplateBuild) -> TemplateBuild:
    session.add(build)
    await session.flush()
    return build


async def of_template(session: AsyncSession, template_id: str) -> list[TemplateBuild]:
    """The template's builds, newest first."""
    statement = (
        select(TemplateBuild)
        .where(TemplateBuild.template_id == template_id)
        .order_by(TemplateBuild.created_at.desc())
    )
    return list(await session.scalars(statement))


async def building(session: AsyncSession) -> list[TemplateBuild]:
    """Every build that is running (of any team)."""
    return list(await session.scalars(select(TemplateBuild).where(TemplateBuild.status == "building")))


async def count_building(session: AsyncSession, team_id: str) -> int:
    """How many of the team's builds are running."""
    statement = (
        select(func.count())
        .select_from(TemplateBuild)
        .join(Template, Template.template_id == TemplateBuild.template_id)
        .where(Template.team_id == team_id, TemplateBuild.status == "building")
    )
    return await session.scalar(statement) or 0


async def rootfs_in_use(session: AsyncSession) -> list[str]:
    """The images templates and builds start from (each a ``:``-joined list of layers)."""
    templates = await session.scalars(select(Template.rootfs))
    builds = await session.scalars(select(TemplateBuild.rootfs).where(TemplateBuild.rootfs.is_not(None)))
    return [*templates, *builds]


# -- tags ----------------------------------------------------------------------------------------------


async def tag(session: AsyncSession, template_id: str, name: str) -> TemplateTag | None:
    return await session.get(TemplateTag, (template_id, name))


async def tags(session: AsyncSession, template_id: str) -> list[TemplateTag]:
    """The template's tags, by name."""
    statement = select(TemplateTag).where(TemplateTag.template_id == template_id).order_by(TemplateTag.tag)
    return list(await session.scalars(statement))


async def set_tag(session: AsyncSession, *, template_id: str, name: str, build_id: str) -> TemplateTag:
    """Point the template's tag ``name`` at ``build_id``, creating it or moving it (which dates it anew)."""
    row = await session.get(TemplateTag, (template_id, name))
    if row is None:
        row = TemplateTag(template_id=template_id, tag=name, build_id=build_id)
        session.add(row)
    else:
        row.build_id, row.created_at = build_id, datetime.now(UTC)
    await session.flush()
    return row


async def remove_tags(session: AsyncSession, template_id: str, names: Collection[str]) -> None:
    """Delete the template's tags ``names``; unknown ones are ignored."""
    await session.execute(
        delete(TemplateTag).where(TemplateTag.template_id == template_id, TemplateTag.tag.in_(names))
    )


# -- log entries ---------------------------------------------------------------------------------------


async def add_log_entries(session: AsyncSession, build_id: str, entries: list[TemplateBuildLog]) -> None:
    """Append ``entries`` (numbered on from the build's ``log_count``) to the build's log."""
    session.add_all(entries)
    build = await session.get(TemplateBuild, build_id)
    if build is not None and entries:
        build.log_count = entries[-1].seq + 1
    await session.flush()


async def log_entries(
    session: AsyncSession, build_id: str, *, offset: int, limit: int, levels: Collection[str] | None = None
) -> list[TemplateBuildLog]:
    """Up to ``limit`` of the build's log entries (at one of ``levels``), after the first ``offset``."""
    statement = select(TemplateBuildLog).where(TemplateBuildLog.build_id == build_id)
    if levels is not None:
        statement = statement.where(TemplateBuildLog.level.in_(levels))
    statement = statement.order_by(TemplateBuildLog.seq).offset(offset).limit(limit)
    return list(await session.scalars(statement))
