"""What routes receive: the services and settings on ``app.state``, and the caller: a team, or the
operator. Every dependency is a coroutine: FastAPI runs a plain function in a worker thread, a hop per
dependency of every request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from ..catalog import Catalog
from ..catalog.models import Team
from ..config import Settings
from ..secret_files import OPERATOR_KEY_HEADER, operator_key
from .services import auth
from .services.metrics import MetricsService
from .services.sandboxes import SandboxService
from .services.snapshots import SnapshotService
from .services.template_builds import TemplateBuildService
from .services.volumes import VolumeService

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="A Hutch (E2B) API key")
_operator_key = APIKeyHeader(
    name=OPERATOR_KEY_HEADER,
    auto_error=False,
    description="The operator key (<data_dir>/secrets/operator.key)",
)


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _catalog(request: Request) -> Catalog:
    return request.app.state.catalog


async def _sandboxes(request: Request) -> SandboxService:
    return request.app.state.sandboxes


async def _metrics(request: Request) -> MetricsService:
    return request.app.state.metrics


async def _snapshots(request: Request) -> SnapshotService:
    return request.app.state.snapshots


async def _template_builds(request: Request) -> TemplateBuildService:
    return request.app.state.template_builds


async def _volumes(request: Request) -> VolumeService:
    return request.app.state.volumes


SettingsDep = Annotated[Settings, Depends(_settings)]
CatalogDep = Annotated[Catalog, Depends(_catalog)]
SandboxServiceDep = Annotated[SandboxService, Depends(_sandboxes)]
MetricsServiceDep = Annotated[MetricsService, Depends(_metrics)]
SnapshotServiceDep = Annotated[SnapshotService, Depends(_snapshots)]
TemplateBuildServiceDep = Annotated[TemplateBuildService, Depends(_template_builds)]
VolumeServiceDep = Annotated[VolumeService, Depends(_volumes)]


# Where the request's state keeps the key and team its body's guard admitted (``body_limit``).
ADMITTED = "admitted_team"


async def require_team(
    request: Request, catalog: CatalogDep, api_key: Annotated[str | None, Security(_api_key)]
) -> Team:
    """The team whose ``X-API-Key`` came with the request (401 without a valid one), within its rate."""
    admitted = getattr(request.state, ADMITTED, None)
    if admitted is not None and admitted[0] == api_key:
        team = admitted[1]  # the body's guard looked this key up for the request already
    else:
        team = await auth.team_for_key(catalog=catalog, api_key=api_key)
    request.app.state.request_limiter.take(team.team_id)
    return team


TeamDep = Annotated[Team, Depends(require_team)]


async def require_operator(
    settings: SettingsDep, key: Annotated[str | None, Security(_operator_key)]
) -> None:
    """Only the operator key passes (401 otherwise, a team's API key too)."""
    auth.check_operator(expected=operator_key(settings.data_dir, settings.api.operator_key_file), given=key)
