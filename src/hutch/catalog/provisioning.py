"""Writes that entry points make outside any request: the first team and key, and template rows.

``hutch up`` calls :func:`ensure_api_key` and prints the key it returns (the only time its text exists
anywhere); it registers the built-in templates with :func:`register_template`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from .db import Catalog
from .keys import new_key
from .models import Team
from .repos import teams, templates

DEFAULT_TEAM = "default"


async def ensure_api_key(
    catalog: Catalog, *, team_name: str = DEFAULT_TEAM, key: str | None = None
) -> str | None:
    """Make sure the team exists and has an API key.

    With ``key``, store that key for the team (if it is not stored yet) and return it; a key that was
    revoked is not stored again, and gives ``None``. Without, make a key only if the team has none and
    return its text; return ``None`` when the team already had one.
    """
    async with catalog.transaction() as session:
        team = await _team(session, team_name)
        if key is not None:
            stored = await teams.stored_key(session, key)
            if stored is not None and stored.revoked_at is not None:
                return None
        if key is None:
            if await teams.has_keys(session, team.team_id):
                return None
            key = new_key()
        await teams.add_key(session, team_id=team.team_id, key=key)
        return key


async def create_api_key(catalog: Catalog, *, team_name: str = DEFAULT_TEAM) -> str:
    """A new key for the team (created if needed); its text is returned once and stored only hashed."""
    async with catalog.transaction() as session:
        team = await _team(session, team_name)
        key = new_key()
        await teams.add_key(session, team_id=team.team_id, key=key)
        return key


async def register_template(
    catalog: Catalog,
    *,
    template_id: str,
    rootfs: str | os.PathLike[str],
    aliases: Iterable[str] = (),
    default_user: str = "user",
    default_workdir: str | None = None,
    env: dict[str, str] | None = None,
    cpu_count: int = 2,
    memory_mb: int = 512,
    disk_mb: int = 1024,
    start_cmd: str | None = None,
    ready_cmd: str | None = None,
    start_user: str | None = None,
    engine: str = "crun",
    public: bool = True,
    team_name: str | None = None,
) -> None:
    """Create or replace the template ``template_id``; its ``aliases`` move to it from any other template.

    Without ``team_name`` the template is the installation's, usable by every team; with one, it is that
    team's (created if needed), and other teams see it only when it is ``public``."""
    async with catalog.transaction() as session:
        team_id = None if team_name is None else (await _team(session, team_name)).team_id
        await templates.upsert(
            session,
            template_id=template_id,
            aliases=aliases,
            rootfs=os.fspath(rootfs),
            default_user=default_user,
            default_workdir=default_workdir,
            env=dict(env or {}),
            cpu_count=cpu_count,
            memory_mb=memory_mb,
            disk_mb=disk_mb,
            start_cmd=start_cmd,
            ready_cmd=ready_cmd,
            start_user=start_user,
            engine=engine,
            public=public,
            team_id=team_id,
        )


async def _team(session: AsyncSession, name: str) -> Team:
    return await teams.get_by_name(session, name) or await teams.add(session, name=name)
