"""Request bodies bounded at the API's edge: a pure ASGI middleware that guards the reading of each body.

FastAPI reads a route's whole body before it resolves the route's dependencies, the API key among them, so
without this a client with no key could make the API hold any body in memory. When the route that serves
the request (routing has happened by then) asks for the first part of its body:

* on a route that takes a team's key (it depends on :func:`~.deps.require_team`), the ``X-API-Key`` (or
  the dashboard session) is checked first: without a valid one the answer is 401 and no byte of the body
  is read;
* a ``Content-Length`` over the route's cap is answered 413 before any byte is read;
* every part is counted as it arrives (uvicorn reads no further ahead than 64 KiB), and reading fails with
  413 at the first byte over the cap.

The cap is ``api.max_body_kb`` for every route but those given their own (template uploads stream up to
theirs). Errors have E2B's shape, ``{"code": <status>, "message": ...}``: they are raised as HTTP errors
into the route, whose handlers write them (Starlette's own limiter answers with plain text).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import HutchError
from .deps import ADMITTED, Credentials, require_team
from .errors import status_of


class BodyLimit:
    """The middleware: ``max_bytes`` for every route, ``caps`` (endpoint function → bytes) for others."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, caps: Mapping[Callable[..., Any], int]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.caps = caps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, _GuardedBody(scope, receive, self.max_bytes, self.caps).receive, send)


class _GuardedBody:
    """The ``receive`` of one request, as the route reads its body."""

    def __init__(
        self, scope: Scope, receive: Receive, max_bytes: int, caps: Mapping[Callable[..., Any], int]
    ) -> None:
        self._scope = scope
        self._receive = receive
        self._max_bytes = max_bytes
        self._caps = caps
        self._cap: int | None = None
        self._received = 0

    async def receive(self) -> Message:
        if self._cap is None:
            self._cap = await self._admit()
        message = await self._receive()
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._received > self._cap:
                raise HTTPException(413, _too_large(self._cap))
        return message

    async def _admit(self) -> int:
        """The route's cap, once the request may send its body there at all."""
        scope = self._scope
        cap = self._caps.get(scope.get("endpoint"), self._max_bytes)  # type: ignore[arg-type]
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > cap:
            raise HTTPException(413, _too_large(cap))
        route = scope.get("route")
        if isinstance(route, APIRoute) and _takes_team_key(route):
            request = Request(scope)
            credentials = Credentials.of(request.headers, request.cookies)
            state = scope["app"].state
            try:
                team = await credentials.team(state.catalog, state.server_keys)
            except HutchError as error:
                raise HTTPException(status_of(error), error.message) from error
            # ``require_team`` need not look these credentials up again.
            scope.setdefault("state", {})[ADMITTED] = (credentials, team)
        return cap


def _takes_team_key(route: APIRoute) -> bool:
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        if dependency.call is require_team:
            return True
        pending.extend(dependency.dependencies)
    return False


def _too_large(cap: int) -> str:
    return f"request body too large: the limit is {cap} bytes"
