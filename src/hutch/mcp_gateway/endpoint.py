"""The gateway's HTTP face: streamable HTTP at ``/mcp`` (and ``/mcp/``) for requests bearing the token,
401 for any other request, 404 for other paths."""

from __future__ import annotations

import hmac
import json
from typing import Any

from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

PATHS = ("/mcp", "/mcp/")


def asgi_app(manager: StreamableHTTPSessionManager, token: str) -> Any:
    """An ASGI application handing authorized ``/mcp`` requests to ``manager``."""
    expected = f"Bearer {token}".encode()

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = dict(scope["headers"])
        if not hmac.compare_digest(headers.get(b"authorization", b""), expected):
            challenge = [(b"www-authenticate", b'Bearer realm="mcp-gateway"')]
            await _answer(send, 401, "a valid Authorization: Bearer <token> header is required", challenge)
        elif scope["path"] not in PATHS:
            await _answer(send, 404, "the MCP endpoint is /mcp", [])
        else:
            await manager.handle_request(scope, receive, send)

    return app


async def _answer(send: Any, status: int, message: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), *headers]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
