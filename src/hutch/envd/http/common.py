"""Helpers for envd's HTTP endpoints: JSON answers."""

from __future__ import annotations

import json

from ..server import Response


async def send_json(response: Response, status: int, value, headers=()) -> None:
    body = json.dumps(value, separators=(",", ":")).encode("utf-8")
    await response.send(status, body, [("content-type", "application/json"), *headers])
