"""``GET /sandboxes/{sandboxID}/metrics`` (spec §1.3: one sandbox's samples, ``?start=&end=`` in unix
seconds) and ``GET /sandboxes/metrics?sandbox_ids=a,b`` (§1.5: the latest sample of each). Registered before
the ``/sandboxes`` routes, whose ``/sandboxes/{sandboxID}`` would take ``metrics`` for an id."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from ..deps import MetricsServiceDep, TeamDep, require_team
from ..schemas.metrics import SandboxesWithMetrics, SandboxMetric
from .sandboxes import MAX_UNIX_SECONDS

router = APIRouter(tags=["sandboxes"], dependencies=[Depends(require_team)])

UnixSeconds = Annotated[int | None, Query(ge=0, le=MAX_UNIX_SECONDS)]


@router.get("/sandboxes/metrics")
async def get_sandboxes_metrics(
    team: TeamDep,
    service: MetricsServiceDep,
    sandbox_ids: Annotated[str, Query(min_length=1, max_length=10_000)],
) -> SandboxesWithMetrics:
    """The latest sample of each named sandbox of the team (comma-separated ids; others are left out)."""
    wanted = [sandbox_id for sandbox_id in sandbox_ids.split(",") if sandbox_id]
    latest = await service.latest(team_id=team.team_id, sandbox_ids=wanted)
    return SandboxesWithMetrics(
        sandboxes={sandbox_id: SandboxMetric.of(sample) for sandbox_id, sample in latest.items()}
    )


@router.get("/sandboxes/{sandbox_id}/metrics")
async def get_metrics(
    sandbox_id: str,
    team: TeamDep,
    service: MetricsServiceDep,
    start: UnixSeconds = None,
    end: UnixSeconds = None,
) -> list[SandboxMetric]:
    """The sandbox's samples from ``start`` to ``end`` (both included, either open), oldest first."""
    samples = await service.series(
        team_id=team.team_id, sandbox_id=sandbox_id, start=_moment(start), end=_moment(end)
    )
    return [SandboxMetric.of(sample) for sample in samples]


def _moment(unix_s: int | None) -> datetime | None:
    return None if unix_s is None else datetime.fromtimestamp(unix_s, UTC)
