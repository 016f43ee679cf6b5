"""What routes receive: the services and settings on ``app.state``, and the caller: a team, or the
operator. Every dependency is a coroutine: FastAPI runs a plain function in a worker thread, a hop per
dependency of every request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from ..catalog import Catalog
from ..catalog.models import Team
from ..config import Settings
from ..secret_files import OPERATOR_KEY_HEADER, operator_key
from .services import auth, sessions
from .services.metrics import MetricsService
from .services.sandboxes import SandboxService
from .services.server_keys import ServerKeys
from .services.snapshots import SnapshotService
from .services.template_builds import TemplateBuildService
from .services.volumes import VolumeService

# Set by the TLS edge on every request it forwards (``proxy.haproxy.EDGE_HEADER``).
EDGE_HEADER = "x-hutch-edge"
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


# Where the request's state keeps the credentials and team its body's guard admitted (``body_limit``).
ADMITTED = "admitted_team"


@dataclass(frozen=True)
class Credentials:
    """What a request may prove its team with: an API key, else a dashboard session and its CSRF token."""

    api_key: str | None
    session: str | None
    csrf: str | None

    @classmethod
    def of(cls, headers: Mapping[str, str], cookies: Mapping[str, str]) -> Credentials:
        return cls(
            api_key=headers.get("x-api-key"),
            session=cookies.get(session_cookie(headers)),
            csrf=headers.get(sessions.CSRF_HEADER.lower()),
        )

    async def team(self, catalog: Catalog, keys: ServerKeys) -> Team:
        if self.api_key or not self.session:
            return await auth.team_for_key(catalog=catalog, api_key=self.api_key)
        _, team = await auth.team_for_session(catalog=catalog, keys=keys, cookie=self.session, csrf=self.csrf)
        return team


def through_edge(headers: Mapping[str, str]) -> bool:
    """Whether the request came through the TLS edge (so over HTTPS)."""
    return bool(headers.get(EDGE_HEADER))


def session_cookie(headers: Mapping[str, str]) -> str:
    """The session cookie's name for a request: the ``__Host-`` one when it came through the TLS edge."""
    return sessions.COOKIE if through_edge(headers) else sessions.PLAIN_COOKIE


async def require_team(
    request: Request, catalog: CatalogDep, api_key: Annotated[str | None, Security(_api_key)]
) -> Team:
    """The team whose ``X-API-Key`` came with the request, or whose dashboard session did (with its CSRF
    token); 401 without either. Within the team's rate."""
    credentials = Credentials.of(request.headers, request.cookies)
    admitted = getattr(request.state, ADMITTED, None)
    if admitted is not None and admitted[0] == credentials:
        team = admitted[1]  # the body's guard looked these credentials up for the request already
    else:
        team = await credentials.team(catalog, request.app.state.server_keys)
    request.app.state.request_limiter.take(team.team_id)
    return team


TeamDep = Annotated[Team, Depends(require_team)]


async def require_operator(
    request: Request,
    settings: SettingsDep,
    catalog: CatalogDep,
    key: Annotated[str | None, Security(_operator_key)],
) -> None:
    """Only the operator key passes, or a dashboard session that was given it (401 otherwise, a team's API
    key too)."""
    expected = operator_key(settings.data_dir, settings.api.operator_key_file)
    cookie = request.cookies.get(session_cookie(request.headers))
    if key or not cookie:
        auth.check_operator(expected=expected, given=key)
        return
    csrf = request.headers.get(sessions.CSRF_HEADER)
    await auth.check_operator_session(
        catalog=catalog, keys=request.app.state.server_keys, expected=expected, cookie=cookie, csrf=csrf
    )
