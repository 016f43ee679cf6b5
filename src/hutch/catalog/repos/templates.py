"""Templates: found by id or by alias (optionally only among those a team may use), counted per team for its
quotas, added and removed."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Text, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..models import Template


async def find(session: AsyncSession, name: str, *, team_id: str | None = None) -> Template | None:
    """The template whose id or one of whose aliases is ``name`` (an id first); with ``team_id``, only one
    that team may use (another team's private template is as unknown as a missing one).

    Aliases are a JSON list, which no SQL matches alike on every dialect: one query reads the row with that
    id and the rows whose stored aliases hold ``name`` as a JSON string (snapshots make templates many);
    every row is read only when none of those is it (aliases the dialect stores as other text)."""
    quoted = json.dumps(name).replace("!", "!!").replace("%", "!%").replace("_", "!_")
    likely = select(Template).where(
        (Template.template_id == name) | cast(Template.aliases, Text).like(f"%{quoted}%", escape="!")
    )
    template = _named(list(await session.scalars(likely)), name)
    if template is None:
        template = _named(list(await session.scalars(select(Template))), name)
    if template is not None and team_id is not None and not template.visible_to(team_id):
        return None
    return template


def _named(candidates: list[Template], name: str) -> Template | None:
    """The candidate whose id is ``name``, else the first with it among its aliases."""
    by_id = next((template for template in candidates if template.template_id == name), None)
    return by_id or next((template for template in candidates if name in template.aliases), None)


async def get(session: AsyncSession, template_id: str) -> Template | None:
    """The template whose id is ``template_id`` (aliases are not looked at)."""
    return await session.get(Template, template_id)


async def engines(session: AsyncSession, template_ids: Iterable[str]) -> dict[str, str]:
    """The engine of each of ``template_ids`` that exists."""
    wanted = list(set(template_ids))
    statement = select(Template.template_id, Template.engine).where(Template.template_id.in_(wanted))
    return {template_id: engine for template_id, engine in (await session.execute(statement)).all()}


async def all_templates(session: AsyncSession) -> list[Template]:
    """Every template, oldest first."""
    return list(await session.scalars(select(Template).order_by(Template.created_at, Template.template_id)))


async def owned(session: AsyncSession, team_id: str) -> list[str]:
    """The ids of the team's own templates, snapshots included."""
    return list(await session.scalars(select(Template.template_id).where(Template.team_id == team_id)))


async def count_owned(session: AsyncSession, team_id: str) -> int:
    """How many templates the team owns, snapshots included."""
    statement = select(func.count()).select_from(Template).where(Template.team_id == team_id)
    return await session.scalar(statement) or 0


async def count_snapshots(session: AsyncSession, team_id: str) -> int:
    """How many snapshots the team keeps."""
    statement = select(func.count()).where(Template.team_id == team_id, Template.snapshot_of.is_not(None))
    return await session.scalar(statement) or 0


async def snapshot_disk_mb(session: AsyncSession, team_id: str) -> int:
    """The disk the team's snapshots may take: each its sandbox's disk, plus its memory when it keeps that."""
    size = Template.disk_mb + case((Template.checkpoint.is_not(None), Template.memory_mb), else_=0)
    statement = select(func.coalesce(func.sum(size), 0)).where(
        Template.team_id == team_id, Template.snapshot_of.is_not(None)
    )
    return await session.scalar(statement) or 0


async def snapshots(session: AsyncSession, team_id: str, *, sandbox_id: str | None = None) -> list[Template]:
    """The team's snapshots (of one sandbox), oldest first."""
    statement = select(Template).where(Template.team_id == team_id, Template.snapshot_of.is_not(None))
    if sandbox_id is not None:
        statement = statement.where(Template.snapshot_of == sandbox_id)
    return list(await session.scalars(statement.order_by(Template.created_at, Template.template_id)))


async def names(session: AsyncSession, *, team_id: str | None = None) -> list[str]:
    """Every id and alias (with ``team_id``, of the templates that team may use), sorted: what an unknown
    template's error lists."""
    known: set[str] = set()
    for template in await session.scalars(select(Template)):
        if team_id is None or template.visible_to(team_id):
            known.add(template.template_id)
            known.update(template.aliases)
    return sorted(known)


async def add(session: AsyncSession, template: Template) -> Template:
    session.add(template)
    await session.flush()
    return template


async def remove(session: AsyncSession, template: Template) -> None:
    """Delete the template; its builds, tags and build logs go with it."""
    await session.delete(template)
    await session.flush()


async def upsert(
    session: AsyncSession, *, template_id: str, aliases: Iterable[str], **fields: Any
) -> Template:
    """Create or update a template. Its aliases are taken away from any other template that had them."""
    wanted = list(dict.fromkeys(aliases))
    for other in await session.scalars(select(Template).where(Template.template_id != template_id)):
        if any(alias in other.aliases for alias in wanted):
            other.aliases = [alias for alias in other.aliases if alias not in wanted]
    template = await session.get(Template, template_id)
    if template is None:
        template = Template(template_id=template_id)
        session.add(template)
    template.aliases = wanted
    for name, value in fields.items():
        setattr(template, name, value)
    await session.flush()
    return template
