"""API keys to teams, and the operator key to the operator.

A key is looked up in the catalog. On a catalog this process alone writes (SQLite), the teams of the keys
it let in are kept in memory (:class:`KnownKeys`) until a key is revoked or a team is changed or removed
here, which clears them once committed: a revoked key is refused from the next request on either way. On a
shared catalog (PostgreSQL, where another API replica may revoke a key) every request asks the catalog.
A key's ``last_used`` is written at most once a minute, in a unit of work of its own: a read that turned
into a write could collide with another writer on SQLite.
"""

from __future__ import annotations

import hmac
import logging
import weakref
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import OperationalError

from ...catalog import Catalog
from ...catalog.keys import hash_key
from ...catalog.models import ApiKey, Team
from ...catalog.repos import teams
from ...errors import Unauthenticated
from . import sessions
from .server_keys import ServerKeys
from .sessions import Session

# How stale a key's ``last_used`` may get: writing it on every request would make every read a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)

log = logging.getLogger(__name__)


# The most keys kept; past it the memory starts again empty.
MAX_KNOWN_KEYS = 10_000


class KnownKeys:
    """The stored keys (by hash) and teams that let requests in, for one catalog this process alone writes.
    ``generation`` counts the clearings: a lookup that began before one keeps nothing it found."""

    def __init__(self) -> None:
        self.found: dict[str, tuple[ApiKey, Team]] = {}
        self.generation = 0

    def clear(self) -> None:
        self.found.clear()
        self.generation += 1


_known: weakref.WeakKeyDictionary[Catalog, KnownKeys] = weakref.WeakKeyDictionary()


def _known_keys(catalog: Catalog) -> KnownKeys | None:
    if catalog.shared:
        return None
    return _known.setdefault(catalog, KnownKeys())


def forget_keys(catalog: Catalog) -> None:
    """A key was revoked or a team changed or removed, and that is committed: look every key up again."""
    known = _known.get(catalog)
    if known is not None:
        known.clear()


async def team_for_key(*, catalog: Catalog, api_key: str | None) -> Team:
    """The team that owns ``api_key``; a missing, unknown or revoked key is ``Unauthenticated``."""
    if not api_key:
        raise Unauthenticated("missing API key: send it in the X-API-Key header")
    return await team_for_hash(catalog=catalog, key_hash=hash_key(api_key))


async def team_for_session(
    *, catalog: Catalog, keys: ServerKeys, cookie: str, csrf: str | None
) -> tuple[Session, Team]:
    """The dashboard session in ``cookie`` and its team. The session must be valid and unexpired, ``csrf``
    its token, and the key it was opened with not revoked; otherwise ``Unauthenticated``."""
    session = _checked_session(keys, cookie, csrf)
    return session, await team_for_hash(catalog=catalog, key_hash=session.key_hash)


def _checked_session(keys: ServerKeys, cookie: str, csrf: str | None) -> Session:
    """The valid, unexpired session in ``cookie`` whose CSRF token ``csrf`` is; else ``Unauthenticated``."""
    session = sessions.read(keys, cookie)
    if session is None:
        raise Unauthenticated("the dashboard session is not valid or has expired: log in again")
    if not csrf or not hmac.compare_digest(csrf.encode(), session.csrf.encode()):
        raise Unauthenticated(f"a dashboard session needs its token in the {sessions.CSRF_HEADER} header")
    return session


async def session_and_team(
    *, catalog: Catalog, keys: ServerKeys, cookie: str | None
) -> tuple[Session, Team] | None:
    """The dashboard session in ``cookie`` and its team; None without one, or when it is not valid, has
    expired or its key was revoked."""
    session = sessions.read(keys, cookie) if cookie else None
    if session is None:
        return None
    try:
        return session, await team_for_hash(catalog=catalog, key_hash=session.key_hash)
    except Unauthenticated:
        return None


async def team_for_hash(*, catalog: Catalog, key_hash: str) -> Team:
    """The team whose key is stored as ``key_hash``; an unknown or revoked one is ``Unauthenticated``."""
    known = _known_keys(catalog)
    found = known.found.get(key_hash) if known is not None else None
    if found is None:
        generation = known.generation if known is not None else 0
        async with catalog.transaction() as session:
            found = await teams.hashed_key_with_team(session, key_hash)
        if found is None:
            raise Unauthenticated("invalid API key")
        if known is not None and known.generation == generation:
            if len(known.found) >= MAX_KNOWN_KEYS:
                known.found.clear()
            known.found[key_hash] = found
    stored, team = found
    now = datetime.now(UTC)
    if stored.last_used is None or now - stored.last_used >= LAST_USED_RESOLUTION:
        try:
            async with catalog.transaction() as session:
                await teams.mark_used(session, stored.key_hash, at=now)
            stored.last_used = now
        except OperationalError as error:
            # Only bookkeeping: the request goes on, and a later one writes it.
            log.warning("could not record the use of API key %s: %s", stored.id, error)
    return team


async def check_operator_session(
    *, catalog: Catalog, keys: ServerKeys, expected: str, cookie: str, csrf: str | None
) -> None:
    """Let the request through only with a valid dashboard session (and its CSRF token) that was given the
    operator key ``expected``, and whose API key is not revoked."""
    session, _ = await team_for_session(catalog=catalog, keys=keys, cookie=cookie, csrf=csrf)
    if session.operator is None or not hmac.compare_digest(session.operator, hash_key(expected)):
        raise Unauthenticated("this dashboard session was not given the operator key")


def check_operator(*, expected: str, given: str | None) -> None:
    """Let the request through only with the operator key (compared in constant time); a team's API key
    is no operator key."""
    if not given:
        raise Unauthenticated("missing operator key: send it in the X-Hutch-Operator-Key header")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthenticated("invalid operator key")
