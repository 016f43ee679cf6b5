"""Where a sandbox runs and the traffic token it wants, read from the catalog with a short cache; in a
cluster, through the traffic listener of the node that holds it (:class:`NodeDirectory`), and a sandbox
whose node is lost is unavailable rather than gone. The SDK's debug id goes to the development sandbox
``hutch up`` publishes (:mod:`.debug`). A paused sandbox created
with ``autoResume`` is woken first (:mod:`.waker`), the request waiting meanwhile. ``is_running`` tells,
without waking anything, whether a sandbox still runs: the proxy asks it while a request is in flight."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from ..catalog import Catalog
from ..catalog.models import SandboxRow
from ..catalog.repos import nodes, sandboxes
from .debug import DebugSandbox
from .routing import DEBUG_SANDBOX_ID, NodeHop, SandboxRoute

# Short enough that a killed sandbox stops being routed to almost at once.
TTL_S = 0.25
# How long the nodes' addresses are reused.
NODES_TTL_S = 1.0


class NodeDirectory:
    """The traffic listeners of a cluster's nodes, read from the catalog (cached), with the cluster
    secret they want."""

    def __init__(self, catalog: Catalog, key: str) -> None:
        self._catalog = catalog
        self._key = key
        self._hops: dict[str, NodeHop] = {}
        self._until = 0.0

    async def hop(self, node_id: str) -> NodeHop | None:
        if node_id not in self._hops or time.monotonic() >= self._until:
            async with self._catalog.transaction() as session:
                rows = await nodes.all_nodes(session)
            self._hops = {row.node_id: NodeHop(_address(row.traffic_address), self._key) for row in rows}
            self._until = time.monotonic() + NODES_TTL_S
        return self._hops.get(node_id)


def _address(host_port: str) -> tuple[str, int]:
    host, _, port = host_port.rpartition(":")
    return host.strip("[]"), int(port)


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
        nodes: NodeDirectory | None = None,
    ) -> None:
        self.catalog = catalog
        self.nodes = nodes
        self.debug = debug
        self.wake = wake
        self._cache: dict[str, tuple[float, SandboxRoute]] = {}
        self._running: dict[str, tuple[float, bool]] = {}

    def forget(self, sandbox_id: str) -> None:
        """Drop the cached route: the next lookup asks the catalog."""
        self._cache.pop(sandbox_id, None)

    def learn(self, row: SandboxRow, *, until: float) -> None:
        """Cache the route of the running sandbox ``row`` describes until ``until`` (``time.monotonic``), as
        a catalog read of it would (a route hint)."""
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[row.sandbox_id] = (until, _plain_route(row))

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
        if row is None or row.state not in ("running", "lost"):
            self._cache.pop(sandbox_id, None)
            return None
        found = await self._route_of(row)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[sandbox_id] = (now + TTL_S, found)
        return found

    async def _route_of(self, row: SandboxRow) -> SandboxRoute:
        route = _plain_route(row)
        if row.state == "lost":
            return replace(route, unavailable=_lost(row))
        if self.nodes is None:
            return route
        hop = await self.nodes.hop(row.node_id)
        if hop is None:
            return replace(route, unavailable=_lost(row))
        return replace(route, hop=hop)


def _plain_route(row: SandboxRow) -> SandboxRoute:
    """The route of a sandbox its row says runs, straight to it."""
    return SandboxRoute(
        row, traffic_access_token=row.traffic_access_token, mask_request_host=row.mask_request_host
    )


def _lost(row: SandboxRow) -> str:
    return (
        f"The sandbox is unavailable: its node {row.node_id} stopped answering; it runs again if the node "
        f"comes back"
    )
