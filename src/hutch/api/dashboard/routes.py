"""``/dashboard``: the page and its files, logging in and out, the session a page reads, the sandbox list
with what the REST list lacks (engine, node, latest sample), and usage per day.

The page and its files hold no data and are served to anyone (the login form is among them); everything
else needs a session or an API key. The page forbids framing and loads code only from the API's origin,
connecting to sandboxes only on the sandbox domain."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from ...catalog import Catalog
from ...catalog.keys import hash_key
from ...catalog.models import Team
from ...errors import Unauthenticated
from ...secret_files import operator_key
from ..deps import (
    CatalogDep,
    MetricsServiceDep,
    SandboxServiceDep,
    SettingsDep,
    TeamDep,
    session_cookie,
    through_edge,
)
from ..schemas.dashboard import DashboardSession, Login, OperatorLogin, OverviewQuery, SandboxOverview, Usage
from ..services import auth, overview, sessions, usage
from ..services.sessions import Session

STATIC = Path(__file__).parent / "static"
# Where the page carries the session (``page``).
SESSION_META = '<meta name="hutch-session" content="">'
PREFIX = "/dashboard"

router = APIRouter(prefix=PREFIX, tags=["dashboard"], include_in_schema=False)


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="dashboard-static")


@router.get("")
@router.get("/")
async def page(request: Request, settings: SettingsDep, catalog: CatalogDep) -> HTMLResponse:
    """The dashboard's one page; it draws every view itself. With a valid session it carries the session
    (team, CSRF token) in a ``<meta>``, so that its first view needs no call to learn it."""
    sandboxes = f"https://*.{settings.sandbox_domain}"  # through the TLS edge, whatever served this page
    policy = "; ".join(
        [
            "default-src 'self'",
            f"connect-src 'self' {sandboxes}",
            f"frame-src {sandboxes}",
            "img-src 'self' data: blob:",
            # xterm.js writes its colours into a <style> element of its own.
            "style-src 'self' 'unsafe-inline'",
            "script-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )
    headers = {
        "Content-Security-Policy": policy,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",  # it may hold the session's CSRF token
    }
    current = await _current(request, catalog)
    described = current.model_dump_json(by_alias=True) if current else ""
    shell = (STATIC / "index.html").read_text()
    body = shell.replace(
        SESSION_META, SESSION_META.replace('content=""', f'content="{html.escape(described)}"')
    )
    return HTMLResponse(body, headers=headers)


@router.post("/login")
async def login(body: Login, request: Request, response: Response, catalog: CatalogDep) -> DashboardSession:
    """Open a session with an API key: the cookie is set, and the answer carries its CSRF token."""
    team = await auth.team_for_key(catalog=catalog, api_key=body.api_key)
    cookie, session = sessions.issue(
        request.app.state.server_keys, key_hash=hash_key(body.api_key), team_id=team.team_id
    )
    _set_cookie(request, response, cookie)
    return _described(request, session, team)


@router.post("/operator")
async def give_operator_key(
    body: OperatorLogin, team: TeamDep, request: Request, response: Response, settings: SettingsDep
) -> DashboardSession:
    """Give the session the operator key too (the cluster's pages need it): a new cookie and CSRF token."""
    auth.check_operator(
        expected=operator_key(settings.data_dir, settings.api.operator_key_file), given=body.operator_key
    )
    current = sessions.read(
        request.app.state.server_keys, request.cookies.get(session_cookie(request.headers), "")
    )
    if current is None:  # ``team`` came from an API key: the operator key is given to a session only
        raise Unauthenticated("log in to the dashboard first: the operator key is given to its session")
    cookie, session = sessions.issue(
        request.app.state.server_keys,
        key_hash=current.key_hash,
        team_id=team.team_id,
        operator=hash_key(body.operator_key),
    )
    _set_cookie(request, response, cookie)
    return _described(request, session, team)


@router.get("/session")
async def current_session(request: Request, catalog: CatalogDep) -> DashboardSession:
    """The session the browser holds (401 without one). Only the API's own pages can read the answer."""
    current = await _current(request, catalog)
    if current is None:
        raise Unauthenticated("not logged in, or the session has expired or its key was revoked")
    return current


async def _current(request: Request, catalog: Catalog) -> DashboardSession | None:
    cookie = request.cookies.get(session_cookie(request.headers))
    found = await auth.session_and_team(catalog=catalog, keys=request.app.state.server_keys, cookie=cookie)
    return None if found is None else _described(request, *found)


@router.post("/logout", status_code=204, response_class=Response)
async def logout(request: Request) -> Response:
    response = Response(status_code=204)
    response.delete_cookie(
        session_cookie(request.headers),
        path="/",
        secure=through_edge(request.headers),
        httponly=True,
        samesite="strict",
    )
    return response


@router.get("/api/sandboxes", response_model=SandboxOverview)
async def list_sandboxes(
    team: TeamDep,
    catalog: CatalogDep,
    service: SandboxServiceDep,
    metrics: MetricsServiceDep,
    query: Annotated[OverviewQuery, Query()],
) -> Response:
    """The team's sandboxes with their engine, node and latest sample; ``state`` and ``metadata`` filter
    as in ``GET /v2/sandboxes``."""
    found = await overview.overview(
        catalog=catalog,
        sandboxes=service,
        metrics=metrics,
        team_id=team.team_id,
        states=query.states(),
        metadata=query.metadata_filter(),
    )
    # Serialized here: FastAPI would validate the hundreds of items again on the way out.
    return Response(SandboxOverview.of(found).model_dump_json(by_alias=True), media_type="application/json")


@router.get("/api/usage")
async def daily_usage(
    team: TeamDep, catalog: CatalogDep, days: Annotated[int, Query(ge=1, le=usage.MAX_DAYS)] = 30
) -> Usage:
    """The team's sandbox-hours and most sandboxes running at once, per UTC day, for the last ``days``."""
    return Usage.of(await usage.daily(catalog=catalog, team_id=team.team_id, days=days))


def _described(request: Request, session: Session, team: Team) -> DashboardSession:
    state = request.app.state
    return DashboardSession(
        team_id=session.team_id,
        team_name=team.name,
        csrf=session.csrf,
        csrf_header=sessions.CSRF_HEADER,
        domain=state.settings.sandbox_domain,
        expires_at=datetime.fromtimestamp(session.expires, UTC),
        operator=session.operator is not None,
        cluster=state.runtime is None,
    )


def _set_cookie(request: Request, response: Response, cookie: str) -> None:
    response.set_cookie(
        session_cookie(request.headers),
        cookie,
        max_age=sessions.LIFETIME_S,
        path="/",
        secure=through_edge(request.headers),
        httponly=True,
        samesite="strict",
    )
