"""The envd application: routes requests to Connect services and HTTP endpoints, and guards them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable
from typing import Callable

from . import cors, http
from .auth import UNAUTHORIZED, token_ok
from .errors import HttpError, RpcError
from .server import ClientGone, Request, Response
from .services import filesystem, process
from .services.filesystem.watch import Watchers
from .services.process.manager import ProcessManager
from .state import EnvdState

log = logging.getLogger("hutch.envd")
DISCARD_LIMIT = 16 * 1024 * 1024
DISCARD_S = 3.0

Endpoint = Callable[[Request, Response, EnvdState], Awaitable[None]]
RPC_ROUTES: dict[str, Endpoint] = {**process.ROUTES, **filesystem.ROUTES}
HTTP_ROUTES: dict[tuple[str, str], Endpoint] = http.ROUTES


def _json(status: int, message: str) -> bytes:
    return json.dumps({"code": status, "message": message}).encode("utf-8")


class Envd:
    """The request handler for :func:`hutch.envd.server.serve`, holding envd's state."""

    def __init__(self, state: EnvdState) -> None:
        self.state = state
        state.processes = ProcessManager()
        state.watchers = Watchers()

    async def __call__(self, request: Request, response: Response) -> None:
        if cors.is_preflight(request):
            await response.send(204, headers=cors.preflight_headers(request))
            return
        response.added_headers = cors.response_headers(request)
        try:
            await self._dispatch(request, response)
        except (ClientGone, ConnectionError):
            raise
        except HttpError as err:
            await self._error(request, response, err.status, err.message)
        except RpcError as err:
            await self._error(request, response, 400 if err.code == "invalid_argument" else 500, err.message)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            await self._error(request, response, 500, "internal error")

    async def _dispatch(self, request: Request, response: Response) -> None:
        path = request.path
        rpc = RPC_ROUTES.get(path)
        if rpc is not None:
            if request.method != "POST":
                raise HttpError(405, f"method {request.method} not allowed")
            if not token_ok(self.state, request.headers.get("x-access-token")):
                raise HttpError(401, UNAUTHORIZED)
            await rpc(request, response, self.state)
            return
        endpoint = HTTP_ROUTES.get((request.method, path))
        if endpoint is None:
            known = any(p == path for _, p in HTTP_ROUTES)
            raise HttpError(405 if known else 404, "method not allowed" if known else f"no route for {path}")
        if path not in http.PUBLIC and not token_ok(self.state, request.headers.get("x-access-token")):
            raise HttpError(401, UNAUTHORIZED)
        await endpoint(request, response, self.state)

    @staticmethod
    async def _error(request: Request, response: Response, status: int, message: str) -> None:
        if response.started:
            return  # too late for a status; the connection is closed by the server
        await _discard_body(request)
        await response.send(status, _json(status, message), [("content-type", "application/json")])


async def _discard_body(request: Request) -> None:
    """Read and drop what is left of a body the error cut short, within bounds, before answering.

    An answer that comes while the client is still sending makes HTTP clients give up on the exchange
    (hyper fails it now and then); past the bounds the answer goes out anyway and the server closes.
    """
    if not request.body_pending:
        return
    with contextlib.suppress(asyncio.TimeoutError, ValueError):
        await asyncio.wait_for(request.body(limit=DISCARD_LIMIT), DISCARD_S)
