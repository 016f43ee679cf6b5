"""``GET /health``: 204 while envd is up; no auth."""

from __future__ import annotations

from ..server import Request, Response


async def health(request: Request, response: Response, state) -> None:
    await response.send(204)
