"""Where a sandbox runs, read from the catalog with a short cache, plus fixed routes (the debug sandbox)."""

from __future__ import annotations

import time

from ..catalog import Catalog
from ..catalog.repos import sandboxes
from ..runtime.types import SandboxHandle

# Short enough that a killed sandbox stops being routed to almost at once.
TTL_S = 0.25


class CatalogResolver:
    """``await resolver(sandbox_id)`` → the sandbox's :class:`SandboxHandle`, or None."""

    def __init__(self, catalog: Catalog, fixed: dict[str, SandboxHandle] | None = None) -> None:
        self.catalog = catalog
        self.fixed = dict(fixed or {})
        self._cache: dict[str, tuple[float, SandboxHandle]] = {}

    async def __call__(self, sandbox_id: str) -> SandboxHandle | None:
        handle = self.fixed.get(sandbox_id)
        if handle is not None:
            return handle
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
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[sandbox_id] = (now + TTL_S, handle)
        return handle
