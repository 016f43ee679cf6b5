"""A team's secrets (E2B's ``/secrets``): values write-only, sealed with the server key in the catalog, never
in an answer, a log line or an error; names lower-cased and unique in the team; metadata within E2B's
bounds; listed in keyset pages. Egress header rules name secrets as ``${e2b.secrets.NAME}``: their values
are read when a sandbox starts (``egress.resolve``), and a secret changed or deleted later reaches the
team's sandboxes whose rules name it, running or paused (a deleted one is no longer sent)."""

from __future__ import annotations

import base64
import binascii
import logging
import re
import secrets as random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ...catalog import Catalog
from ...catalog.models import Secret
from ...catalog.repos import sandboxes, secrets
from ...errors import Conflict, HutchError, InvalidRequest, NotFound
from ...runtime.node_client import NodeClient
from . import egress, quotas
from .pagination import Page
from .server_keys import ServerKeys

log = logging.getLogger(__name__)
MAX_NAME = 128
MAX_VALUE_BYTES = 64 * 1024
MAX_METADATA_ENTRIES = 32
MAX_METADATA_KEY_BYTES = 128
MAX_METADATA_VALUE_BYTES = 1024
MAX_METADATA_BYTES = 8192
ID_PREFIX = "sec_"

# As the SDK's ``_validate_secret_name``: a name goes into ``${e2b.secrets.NAME}``.
_INVALID_NAME = re.compile(r"[{}\x00-\x1f\x7f-\x9f]")


def check_name(name: str) -> str:
    """The name lower-cased; ``InvalidRequest`` for one that cannot be a placeholder's, is too long, or
    has the reserved ``sec_`` prefix."""
    if not name or _INVALID_NAME.search(name) or len(name) > MAX_NAME:
        raise InvalidRequest(
            f"a secret name must be 1 to {MAX_NAME} characters, without '{{', '}}' or control characters"
        )
    lowered = name.lower()
    if lowered.startswith(ID_PREFIX):
        raise InvalidRequest(f"a secret name may not start with {ID_PREFIX!r} (secret ids do)")
    return lowered


def check_value(value: str) -> str:
    if len(value.encode()) > MAX_VALUE_BYTES:
        raise InvalidRequest(f"a secret's value may be at most {MAX_VALUE_BYTES} bytes")
    return value


def check_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """E2B's bounds: at most 32 entries, keys of at most 128 bytes, values of at most 1024, 8192 in all."""
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise InvalidRequest(f"a secret's metadata may have at most {MAX_METADATA_ENTRIES} entries")
    total = 0
    for key, value in metadata.items():
        key_bytes, value_bytes = len(key.encode()), len(value.encode())
        if not key or key_bytes > MAX_METADATA_KEY_BYTES:
            raise InvalidRequest(f"a metadata key must be 1 to {MAX_METADATA_KEY_BYTES} bytes")
        if value_bytes > MAX_METADATA_VALUE_BYTES:
            raise InvalidRequest(f"metadata {key!r}: a value may be at most {MAX_METADATA_VALUE_BYTES} bytes")
        total += key_bytes + value_bytes
    if total > MAX_METADATA_BYTES:
        raise InvalidRequest(f"a secret's metadata may be at most {MAX_METADATA_BYTES} bytes in all")
    return dict(metadata)


def _encode_cursor(secret: Secret) -> str:
    text = f"{secret.created_at.isoformat()}|{secret.secret_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_cursor(token: str) -> tuple[datetime, str]:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        created_at, secret_id = text.split("|", 1)
        moment = datetime.fromisoformat(created_at)
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise InvalidRequest("invalid nextToken") from error
    if moment.tzinfo is None:
        raise InvalidRequest("invalid nextToken")
    return moment, secret_id


class SecretService:
    """The operations behind ``/secrets``, for one team at a time."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        keys: ServerKeys,
        holding: Callable[[str], Awaitable[NodeClient]] | None = None,
    ) -> None:
        self._catalog = catalog
        self._keys = keys
        self._holding = holding
        self._count = quotas.Holds("secrets")

    async def create(self, *, team_id: str, name: str, value: str, metadata: dict[str, str] | None) -> Secret:
        """A new secret at version 1; ``Conflict`` if the team has one of that name."""
        row = Secret(
            secret_id=ID_PREFIX + random.token_hex(12),
            team_id=team_id,
            name=check_name(name),
            sealed_value=self._keys.seal(check_value(value)),
            version=1,
            metadata_=check_metadata(metadata or {}),
        )
        async with self._count.hold(self._catalog, team_id, 1, secrets.count):
            try:
                async with self._catalog.transaction() as session:
                    if await secrets.find(session, team_id=team_id, key=row.name) is not None:
                        raise Conflict(f"a secret named {row.name!r} exists already")
                    return await secrets.add(session, row)
            except IntegrityError as error:  # made at once by another call
                raise Conflict(f"a secret named {row.name!r} exists already") from error

    async def update(self, *, team_id: str, key: str, value: str, metadata: dict[str, str] | None) -> Secret:
        """Store ``value`` as the secret's next version (and replace its metadata when given)."""
        sealed = self._keys.seal(check_value(value))
        checked = None if metadata is None else check_metadata(metadata)
        async with self._catalog.transaction() as session:
            secret = await self._find(session, team_id, key)
            secret.sealed_value = sealed
            secret.version += 1
            if checked is not None:
                secret.metadata_ = checked
            secret.updated_at = datetime.now(UTC)
        await self._refresh(team_id, secret.name)
        return secret

    async def get(self, *, team_id: str, key: str) -> Secret:
        async with self._catalog.transaction() as session:
            return await self._find(session, team_id, key)

    async def delete(self, *, team_id: str, key: str) -> None:
        async with self._catalog.transaction() as session:
            secret = await self._find(session, team_id, key)
            await secrets.remove(session, secret.secret_id)
        await self._refresh(team_id, secret.name)

    async def page(self, *, team_id: str, limit: int, next_token: str | None) -> Page[Secret]:
        after = _decode_cursor(next_token) if next_token else None
        async with self._catalog.transaction() as session:
            rows = await secrets.page(session, team_id=team_id, after=after, limit=limit + 1)
        if len(rows) <= limit:
            return Page(rows, None)
        return Page(rows[:limit], _encode_cursor(rows[limit - 1]))

    async def _refresh(self, team_id: str, name: str) -> None:
        """Give the team's sandboxes whose rules name ``name`` the current values of their secrets; one
        whose node cannot take them is logged and keeps the former ones."""
        if self._holding is None:
            return
        async with self._catalog.transaction() as session:
            naming = [
                sandbox
                for sandbox in await sandboxes.of_team(session, team_id)
                if name in egress.secret_names(sandbox.egress)
            ]
            values = {
                sandbox.sandbox_id: await egress.current_values(
                    session, team_id=team_id, egress=sandbox.egress, keys=self._keys
                )
                for sandbox in naming
            }
        for sandbox in naming:
            try:
                node = await self._holding(sandbox.node_id)
                await node.update_secrets(sandbox.sandbox_id, values[sandbox.sandbox_id])
            except HutchError as error:
                log.warning(
                    "sandbox %s keeps the former values of its secrets: %s", sandbox.sandbox_id, error.message
                )

    async def _find(self, session: AsyncSession, team_id: str, key: str) -> Secret:
        secret = await secrets.find(session, team_id=team_id, key=key)
        if secret is None:
            raise NotFound(f"secret {key[:200]!r} not found")
        return secret
