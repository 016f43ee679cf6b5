"""``GET /envs``: the sandbox-level environment variables set by ``/init``."""

from __future__ import annotations

from ..server import Request, Response
from .common import send_json


async def envs(request: Request, response: Response, state) -> None:
    await send_json(response, 200, state.env_vars, [("cache-control", "no-store")])
