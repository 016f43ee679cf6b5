"""What the dashboard lists of a team's sandboxes: each with its engine, its node and its latest sample,
in one call."""

from __future__ import annotations

from dataclasses import dataclass

from ...catalog import Catalog
from ...catalog.models import SandboxRow
from ...catalog.repos import templates
from ...runtime.node_client import MetricSample
from .metrics import MetricsService
from .sandboxes import ENGINE_KEY, SandboxService

# The most sandboxes one listing holds; the dashboard says when there are more.
MAX_LISTED = 2000


@dataclass(frozen=True)
class ListedSandbox:
    row: SandboxRow
    engine: str | None  # None: its template is gone
    latest: MetricSample | None


@dataclass(frozen=True)
class Overview:
    sandboxes: list[ListedSandbox]
    truncated: bool


async def overview(
    *,
    catalog: Catalog,
    sandboxes: SandboxService,
    metrics: MetricsService,
    team_id: str,
    states: frozenset[str] | None,
    metadata: dict[str, str] | None,
) -> Overview:
    """The team's sandboxes (newest first, at most :data:`MAX_LISTED`) in ``states`` whose metadata has
    ``metadata``."""
    page = await sandboxes.page(team_id=team_id, metadata=metadata, states=states, limit=MAX_LISTED)
    async with catalog.transaction() as session:
        engine_of = await templates.engines(session, (row.template_id for row in page.items))
    usage = await metrics.node_usage()
    latest = {sandbox.sandbox_id: sandbox.latest for sandbox in usage.sandboxes}
    listed = [
        ListedSandbox(
            row=row,
            engine=row.metadata_.get(ENGINE_KEY) or engine_of.get(row.template_id),
            latest=latest.get(row.sandbox_id),
        )
        for row in page.items
    ]
    return Overview(listed, truncated=page.next_token is not None)
