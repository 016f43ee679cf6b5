"""API keys to teams, and the operator key to the operator.

Every request looks its key up in the catalog (there is no cache of keys), so a revoked key is refused
from the next request on. A key's ``last_used`` is written at most once a minute, in a unit of work of its
own: a read that turned into a write could collide with another writer on SQLite.
"""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import OperationalError

from ...catalog import Catalog
from ...catalog.models import Team
from ...catalog.repos import teams
from ...errors import Unauthenticated

# How stale a key's ``last_used`` may get: writing it on every request would make every read a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)

log = logging.getLogger(__name__)


async def team_for_key(*, catalog: Catalog, api_key: str | None) -> Team:
    """The team that owns ``api_key``; a missing, unknown or revoked key is ``Unauthenticated``."""
    if not api_key:
        raise Unauthenticated("missing API key: send it in the X-API-Key header")
    async with catalog.transaction() as session:
        found = await teams.key_with_team(session, api_key)
    if found is None:
        raise Unauthenticated("invalid API key")
    stored, team = found
    now = datetime.now(UTC)
    if stored.last_used is None or now - stored.last_used >= LAST_USED_RESOLUTION:
        try:
            async with catalog.transaction() as session:
                await teams.mark_used(session, stored.key_hash, at=now)
        except OperationalError as error:
            # Only bookkeeping: the request goes on, and a later one writes it.
            log.warning("could not record the use of API key %s: %s", stored.id, error)
    return team


def check_operator(*, expected: str, given: str | None) -> None:
    """Let the request through only with the operator key (compared in constant time); a team's API key
    is no operator key."""
    if not given:
        raise Unauthenticated("missing operator key: send it in the X-Hutch-Operator-Key header")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthenticated("invalid operator key")
