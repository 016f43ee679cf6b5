"""Errors at the HTTP edge: one table from ``HutchError`` classes to statuses, and the handlers that write
E2B's body ``{"code": <status>, "message": ...}`` for them, for request validation and for routing."""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import (
    BackendUnavailable,
    Conflict,
    DeadlineExceeded,
    Forbidden,
    HutchError,
    InvalidRequest,
    NodeUnavailable,
    NotFound,
    NotSupported,
    OutOfSpace,
    QuotaExceeded,
    Unauthenticated,
)
from .schemas.common import ErrorBody

log = logging.getLogger(__name__)

STATUS: dict[type[HutchError], int] = {
    InvalidRequest: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    QuotaExceeded: 429,
    OutOfSpace: 507,
    BackendUnavailable: 500,
    NotSupported: 501,
    NodeUnavailable: 503,
    DeadlineExceeded: 504,
}

# Declared once on the app so that the OpenAPI document shows the error body for every route.
ERROR_RESPONSES: dict[int | str, dict] = {
    status: {"model": ErrorBody} for status in (400, 401, 404, 409, 429, 500)
}


def status_of(error: HutchError) -> int:
    """The status of the nearest class in ``error``'s MRO that the table names; 500 for the others."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorBody(code=status, message=message).model_dump(), status, headers=headers)


async def _hutch_error(_request: Request, error: HutchError) -> JSONResponse:
    status = status_of(error)
    if status >= 500:
        log.error("request failed: %s", error.message)
    retry_after = getattr(error, "retry_after_s", None)
    headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after is not None else None
    return error_response(status, error.message, headers)


async def _http_error(_request: Request, error: HTTPException) -> JSONResponse:
    return error_response(error.status_code, str(error.detail), dict(error.headers or {}))


async def _invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
    return error_response(400, _describe(error))


async def _unexpected(_request: Request, error: Exception) -> JSONResponse:
    """A 500 that says the connection closes: Starlette raises the error again once this is sent, and the
    server then closes the connection, which a client must not reuse for its next request."""
    log.exception("unexpected error", exc_info=error)
    return error_response(500, f"internal error: {type(error).__name__}", {"Connection": "close"})


def _describe(error: RequestValidationError) -> str:
    """``body.timeout: Input should be a valid integer; …``, for people reading the SDK's exception."""
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item.get("loc", ()))
        parts.append(f"{where}: {item.get('msg', 'invalid')}" if where else str(item.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``. Starlette picks the handler of the nearest class in the MRO."""
    app.add_exception_handler(HutchError, _hutch_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _unexpected)
