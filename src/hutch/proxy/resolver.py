"""Where a sandbox runs and the traffic token it wants, read from the catalog with a short cache, plus fixed
routes (the debug sandbox)."""

from __future__ import annotations

import time

from ..catalog import Catalog
from ..catalog.repos import sandboxes
from ..runtime.types import SandboxHandle
from .routing import SandboxRoute

# Short enough that a killed sandbox stops being routed to almost at once.
TTL_S = 0.25


class CatalogResolver:
    """``await resolver(sandbox_id)`` → the sandbox's :class:`SandboxRoute` (its handle and traffic access
    token), or None. ``fixed`` routes (``hutch up``'s debug sandbox) take public traffic."""

    def __init__(self, catalog: Catalog, fixed: dict[str, SandboxHandle] | None = None) -> None:
        self.catalog = catalog
        self.fixed = dict(fixed or {})
        self._cache: dict[str, tuple[float, SandboxRoute]] = {}

    async def __call__(self, sandbox_id: str) -> SandboxRoute | None:
        handle = self.fixed.get(sandbox_id)
        if handle is not None:
            return SandboxRoute(handle)
        now = time.monotonic()
        cached = self._cache.get(sandbox_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self.catalog.transaction() as session:
            row = await sandboxes.get(session, sandbox_id)
        if row is None or row.state != "running":
            self._cache.pop(sandbox_id, None)
            return None
        handle = SandboxHandle(
            sandbox_id=row.sandbox_id,
            template_id=row.template_id,
            host=row.host,
            node_id=row.node_id,
            started_at=row.started_at,
            port_overrides={int(k): int(v) for k, v in (row.port_overrides or {}).items()},
        )
        found = SandboxRoute(handle, traffic_access_token=row.traffic_access_token)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[sandbox_id] = (now + TTL_S, found)
        return found
