"""One lock per sandbox: its pause, resume, snapshots, forks and kill happen one at a time, in this API
process and, on a shared catalog, across every replica (:meth:`~hutch.catalog.Catalog.hold`). The sandbox
and snapshot services share one :class:`SandboxLocks`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ...catalog import Catalog


class SandboxLocks:
    """The locks of the sandboxes this API process acts on, made on first use; with ``catalog``, each is
    held in the catalog too while this process holds it."""

    def __init__(self, catalog: Catalog | None = None) -> None:
        self._catalog = catalog
        self._locks: dict[str, asyncio.Lock] = {}

    @asynccontextmanager
    async def of(self, sandbox_id: str) -> AsyncIterator[None]:
        """Hold the sandbox's lock for the block (this process's first, so that it waits in the catalog
        once per sandbox)."""
        async with self._locks.setdefault(sandbox_id, asyncio.Lock()):
            if self._catalog is None:
                yield
                return
            async with self._catalog.hold(f"sandbox:{sandbox_id}"):
                yield

    def forget(self, sandbox_id: str) -> None:
        """Drop the lock of a sandbox that is gone."""
        self._locks.pop(sandbox_id, None)
