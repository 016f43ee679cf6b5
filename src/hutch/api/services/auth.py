"""API keys to teams."""

from __future__ import annotations

from ...catalog import Catalog
from ...catalog.models import Team
from ...catalog.repos import teams
from ...errors import Unauthenticated


async def team_for_key(*, catalog: Catalog, api_key: str | None) -> Team:
    """The team that owns ``api_key``; a missing or unknown key is ``Unauthenticated``."""
    if not api_key:
        raise Unauthenticated("missing API key: send it in the X-API-Key header")
    async with catalog.transaction() as session:
        team = await teams.for_key(session, api_key)
    if team is None:
        raise Unauthenticated("invalid API key")
    return team
