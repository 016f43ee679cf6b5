"""One lock per sandbox: its pause, resume, snapshots, forks and kill happen one at a time, in this API
process and, on a shared catalog, across every replica (:meth:`~hutch.catalog.Catalog.hold`). The sandbox
and snapshot services share one :class:`SandboxLocks`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ...catalog import Catalog


class SandboxLocks:
    """The locks of the sandboxes this API process acts on: made on first use, dropped when no call holds
    or waits for one (so that calls naming sandboxes that do not exist leave nothing behind); with
    ``catalog``, each is held in the catalog too while this process holds it."""

    def __init__(self, catalog: Catalog | None = None) -> None:
        self._catalog = catalog
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def of(self, sandbox_id: str) -> AsyncIterator[None]:
        """Hold the sandbox's lock for the block (this process's first, so that it waits in the catalog
        once per sandbox)."""
        lock = self._locks.setdefault(sandbox_id, asyncio.Lock())
        self._users[sandbox_id] = self._users.get(sandbox_id, 0) + 1
        try:
            async with lock:
                if self._catalog is None:
                    yield
                    return
                async with self._catalog.hold(f"sandbox:{sandbox_id}"):
                    yield
        finally:
            self._users[sandbox_id] -= 1
            if not self._users[sandbox_id]:
                del self._users[sandbox_id], self._locks[sandbox_id]

    def __len__(self) -> int:
        """How many sandboxes' locks are held or waited for now."""
        return len(self._locks)
