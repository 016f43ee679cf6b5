"""Sandbox metrics: a team's sandbox's samples in a time range, the latest sample of several of its
sandboxes, and what the node holds (every sandbox's latest sample, its warm pools) for the operator.

The node samples each running sandbox every few seconds for as long as it lives; a killed sandbox's samples
go with it, so asking about it afterwards is a ``NotFound`` like any call on a killed sandbox.
"""

from __future__ import annotations

from datetime import datetime

from ...catalog import Catalog
from ...catalog.repos import sandboxes
from ...errors import InvalidRequest
from ...runtime.node_client import MetricSample, Nodes, NodeUsage

# The most sandboxes one request for the latest samples may name (as E2B).
MAX_SANDBOXES = 100


class MetricsService:
    """The metrics of a team's sandboxes, from the nodes that sample them."""

    def __init__(self, *, catalog: Catalog, nodes: Nodes) -> None:
        self._catalog = catalog
        self._nodes = nodes

    async def series(
        self, *, team_id: str, sandbox_id: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[MetricSample]:
        """The sandbox's samples whose whole second lies in [``start``, ``end``] (either open), oldest
        first; ``InvalidRequest`` when ``start`` is after ``end``."""
        if start is not None and end is not None and start > end:
            raise InvalidRequest("start time cannot be after end time")
        async with self._catalog.transaction() as session:
            row = await sandboxes.get_or_raise(session, team_id=team_id, sandbox_id=sandbox_id)
        node = await self._nodes.holding(row.node_id)
        return await node.metrics(sandbox_id, start=start, end=end)

    async def latest(self, *, team_id: str, sandbox_ids: list[str]) -> dict[str, MetricSample]:
        """The latest sample of each of ``sandbox_ids`` that is the team's and has one; others are left
        out."""
        if len(sandbox_ids) > MAX_SANDBOXES:
            raise InvalidRequest(f"Too many sandboxes requested, maximum is {MAX_SANDBOXES}")
        async with self._catalog.transaction() as session:
            owned = {row.sandbox_id for row in await sandboxes.of_team(session, team_id)}
        asked = owned.intersection(sandbox_ids)
        usage = await self._nodes.usage()
        return {
            sandbox.sandbox_id: sandbox.latest
            for sandbox in usage.sandboxes
            if sandbox.sandbox_id in asked and sandbox.latest is not None
        }

    async def node_usage(self) -> NodeUsage:
        """Every sandbox the nodes hold with its latest sample, and their warm pools."""
        return await self._nodes.usage()
