"""Where a sandbox runs and the traffic token it wants, read from the catalog with a short cache; the SDK's
debug id goes to the development sandbox ``hutch up`` publishes (:mod:`.debug`). A paused sandbox created
with ``autoResume`` is woken first (:mod:`.waker`), the request waiting meanwhile. ``is_running`` tells,
without waking anything, whether a sandbox still runs: the proxy asks it while a request is in flight."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from ..catalog import Catalog
from ..catalog.repos import sandboxes
from .debug import DebugSandbox
from .routing import DEBUG_SANDBOX_ID, SandboxRoute

# Short enough that a killed sandbox stops being routed to almost at once.
TTL_S = 0.25


class CatalogResolver:
    """``await resolver(sandbox_id)`` → the sandbox's :class:`SandboxRoute` (its catalog row, which gives
    its address, and its traffic access token), or None. With ``debug``, the SDK's debug id resolves to the
    sandbox published there, which takes public traffic; without, to nothing."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        debug: DebugSandbox | None = None,
        wake: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.catalog = catalog
        self.debug = debug
        self.wake = wake
        self._cache: dict[str, tuple[float, SandboxRoute]] = {}
        self._running: dict[str, tuple[float, bool]] = {}

    def forget(self, sandbox_id: str) -> None:
        """Drop the cached route: the next lookup asks the catalog."""
        self._cache.pop(sandbox_id, None)

    async def is_running(self, sandbox_id: str) -> bool:
        """Whether the catalog has the sandbox running (asked at most every :data:`TTL_S` per sandbox,
        however many requests wait on it); never wakes it."""
        if sandbox_id == DEBUG_SANDBOX_ID:
            return self.debug is not None and self.debug.get() is not None
        now = time.monotonic()
        cached = self._running.get(sandbox_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self.catalog.transaction() as session:
            row = await sandboxes.get(session, sandbox_id)
        running = row is not None and row.state == "running"
        if len(self._running) > 10_000:
            self._running.clear()
        self._running[sandbox_id] = (now + TTL_S, running)
        if not running:
            self._cache.pop(sandbox_id, None)
        return running

    async def __call__(self, sandbox_id: str) -> SandboxRoute | None:
        if sandbox_id == DEBUG_SANDBOX_ID:
            handle = self.debug.get() if self.debug is not None else None
            return SandboxRoute(handle) if handle is not None else None
        now = time.monotonic()
        cached = self._cache.get(sandbox_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self.catalog.transaction() as session:
            row = await sandboxes.get(session, sandbox_id)
        wakes = row is not None and row.state == "paused" and row.auto_resume and self.wake is not None
        if wakes and await self.wake(sandbox_id):  # type: ignore[misc]
            async with self.catalog.transaction() as session:
                row = await sandboxes.get(session, sandbox_id)
        if row is None or row.state != "running":
            self._cache.pop(sandbox_id, None)
            return None
        found = SandboxRoute(
            row, traffic_access_token=row.traffic_access_token, mask_request_host=row.mask_request_host
        )
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[sandbox_id] = (now + TTL_S, found)
        return found
