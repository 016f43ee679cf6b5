"""The HTTP surface of spec §4: ``/execute`` (NDJSON), ``/contexts``, ``/health``.

``/execute`` runs code only for the sandbox's envd access token (``X-Access-Token``, which the official SDK
sends there), checked by envd itself (:mod:`.envs`): a missing or wrong one is a 401 in E2B's shape. The
SDK sends no token to the context routes, so they are open to whoever reaches the port: they start,
list, restart and remove kernels, and run no code of the caller's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from . import outputs
from .contexts import Context, ContextNotFound, Contexts, ContextStartError
from .envs import DEFAULT_ENVD_URL, AccessDenied, EnvdUnavailable, SandboxEnv

log = logging.getLogger(__name__)

UNAUTHORIZED = "unauthorized access, please provide a valid access token"


class BadRequest(Exception):
    pass


def create_app(*, default_cwd: str = "/home/user", envd_url: str = DEFAULT_ENVD_URL) -> Starlette:
    contexts = Contexts(default_cwd=default_cwd)
    sandbox_env = SandboxEnv(envd_url)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await contexts.start()
        try:
            yield
        finally:
            await contexts.close()
            await sandbox_env.close()

    async def health(request: Request) -> Response:
        return JSONResponse("OK")

    async def execute(request: Request) -> Response:
        token = request.headers.get("x-access-token")
        # First, before the body is even read: nothing is told to a caller without the token.
        sandbox_vars = await sandbox_env.fetch(None if token is None else token.encode("latin-1"))
        body = await _json_object(request)
        code = _field(body, "code", str, required=True)
        context_id = _field(body, "context_id", str)
        language = _field(body, "language", str)
        env_vars = _field(body, "env_vars", dict) or {}
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items()):
            raise BadRequest("env_vars must map strings to strings")
        if context_id and language:
            raise BadRequest("Only one of context_id or language can be provided")
        if context_id:
            context = contexts.get(context_id)
        else:
            context = await contexts.default(language)
        return StreamingResponse(
            _ndjson(context, code, env_vars, sandbox_vars), media_type="application/x-ndjson"
        )

    async def create_context(request: Request) -> Response:
        body = await _json_object(request)
        context = await contexts.create(_field(body, "language", str), _field(body, "cwd", str))
        return JSONResponse(context.describe())

    async def list_contexts(request: Request) -> Response:
        return JSONResponse([context.describe() for context in contexts.list()])

    async def restart_context(request: Request) -> Response:
        await contexts.get(request.path_params["context_id"]).restart()
        return JSONResponse(None)

    async def remove_context(request: Request) -> Response:
        await contexts.remove(request.path_params["context_id"])
        return JSONResponse(None)

    async def not_found(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(str(exc), status_code=404)

    async def bad_request(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(str(exc), status_code=400)

    async def start_failed(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(str(exc), status_code=500)

    async def access_denied(request: Request, exc: Exception) -> Response:
        return JSONResponse({"code": 401, "message": UNAUTHORIZED}, status_code=401)

    async def envd_unavailable(request: Request, exc: Exception) -> Response:
        log.warning("the access token could not be checked: %s", exc)
        message = f"the access token could not be checked: {exc}"
        return JSONResponse({"code": 503, "message": message}, status_code=503)

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/execute", execute, methods=["POST"]),
            Route("/contexts", create_context, methods=["POST"]),
            Route("/contexts", list_contexts, methods=["GET"]),
            Route("/contexts/{context_id}/restart", restart_context, methods=["POST"]),
            Route("/contexts/{context_id}", remove_context, methods=["DELETE"]),
        ],
        middleware=[
            Middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])
        ],
        exception_handlers={
            ContextNotFound: not_found,
            BadRequest: bad_request,
            ContextStartError: start_failed,
            AccessDenied: access_denied,
            EnvdUnavailable: envd_unavailable,
        },
        lifespan=lifespan,
    )


async def _ndjson(
    context: Context, code: str, env_vars: dict[str, str], sandbox_vars: dict[str, str]
) -> AsyncIterator[str]:
    """One JSON object per line, never a blank line; ``end_of_execution`` last."""
    try:
        async for line in context.execute(code, env_vars, sandbox_vars):
            yield json.dumps(line) + "\n"
    except Exception as exc:
        log.exception("execution failed")
        yield json.dumps(outputs.error("UnexpectedEndOfExecution", f"The execution failed: {exc}")) + "\n"
    yield json.dumps(outputs.END_OF_EXECUTION) + "\n"


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise BadRequest("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _field(body: dict[str, Any], name: str, kind: type, *, required: bool = False) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f"'{name}' is required")
        return None
    if not isinstance(value, kind):
        raise BadRequest(f"'{name}' must be a {kind.__name__}")
    return value
