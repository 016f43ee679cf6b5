"""What the API tells the edge of a sandbox's state: that it runs (and where), and that it is about to
stop. An edge that routes running sandboxes itself must never send traffic to a paused or killed one, so
``close`` is awaited before a pause or kill begins, and ``open`` once a sandbox runs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from ...catalog.models import SandboxRow


class SandboxRoutes(Protocol):
    async def open(self, sandbox: SandboxRow) -> None:
        """``sandbox`` runs now."""

    async def close(self, sandbox_id: str) -> None:
        """``sandbox_id`` is about to stop running (pause or kill); return once it is no longer routed."""

    async def reset(self, sandboxes: Iterable[SandboxRow]) -> None:
        """Exactly ``sandboxes`` run (the node's, after a start)."""


class EveryRoutes:
    """Tells each of several ``SandboxRoutes`` in turn (the TLS edge's table and the proxy's hints)."""

    def __init__(self, *tables: SandboxRoutes) -> None:
        self.tables = tables

    async def open(self, sandbox: SandboxRow) -> None:
        for table in self.tables:
            await table.open(sandbox)

    async def close(self, sandbox_id: str) -> None:
        for table in self.tables:
            await table.close(sandbox_id)

    async def reset(self, sandboxes: Iterable[SandboxRow]) -> None:
        listed = list(sandboxes)
        for table in self.tables:
            await table.reset(listed)


class NoRoutes:
    """No edge routes sandboxes itself (every request goes through the Python proxy)."""

    async def open(self, sandbox: SandboxRow) -> None:
        return None

    async def close(self, sandbox_id: str) -> None:
        return None

    async def reset(self, sandboxes: Iterable[SandboxRow]) -> None:
        return None
