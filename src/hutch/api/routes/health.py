"""``GET /health``: the API process answers (no authentication)."""

from __future__ import annotations

from fastapi import APIRouter, Response

router = APIRouter(tags=["health"])


@router.get("/health", status_code=204, response_class=Response)
async def health() -> Response:
    return Response(status_code=204)
