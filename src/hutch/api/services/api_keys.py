"""A team's API keys (``/api-keys``): list, create (the text is returned once), rename, revoke.

Revoking marks the key's row (it stays, so that the key is never accepted or stored again) and clears the
keys :mod:`.auth` keeps in memory, so a revoked key is refused from the next request on. A team's last key
cannot be revoked: with none left, nothing could make a new one over the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ...catalog import Catalog
from ...catalog.keys import new_key
from ...catalog.models import ApiKey
from ...catalog.repos import teams
from ...errors import Conflict
from . import auth, quotas


@dataclass(frozen=True)
class CreatedKey:
    """A new key: its row, and its text, which exists nowhere else."""

    row: ApiKey
    key: str


async def list_keys(*, catalog: Catalog, team_id: str) -> list[ApiKey]:
    async with catalog.transaction() as session:
        return await teams.keys(session, team_id)


async def create(*, catalog: Catalog, team_id: str, name: str) -> CreatedKey:
    """A new key for the team, within its ``api_keys`` quota (revoked keys do not count)."""
    key = new_key()
    async with catalog.transaction() as session:
        # Two creates at once must not both pass the check below.
        await teams.lock(session, team_id)
        allowed = await quotas.limit(session, team_id, "api_keys")
        if await teams.count_keys(session, team_id) >= allowed:
            raise quotas.exceeded("api_keys", allowed)
        row = await teams.add_key(session, team_id=team_id, key=key, name=name)
    return CreatedKey(row=row, key=key)


async def rename(*, catalog: Catalog, team_id: str, key_id: str, name: str) -> ApiKey:
    async with catalog.transaction() as session:
        row = await teams.key_or_raise(session, team_id=team_id, key_id=key_id)
        row.name = name
        return row


async def revoke(*, catalog: Catalog, team_id: str, key_id: str) -> None:
    """Revoke the team's key ``key_id``; the key that made the request may revoke itself, but a team's
    last key stays (``Conflict``)."""
    async with catalog.transaction() as session:
        # Two revokes at once must not both pass the check below.
        await teams.lock(session, team_id)
        row = await teams.key_or_raise(session, team_id=team_id, key_id=key_id)
        if await teams.count_keys(session, team_id) <= 1:
            raise Conflict("this is the team's last API key: create another one before revoking it")
        await teams.revoke_key(session, row.key_hash, at=datetime.now(UTC))
    auth.forget_keys(catalog)
