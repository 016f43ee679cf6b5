"""Bridging a WebSocket to a sandbox port, message by message, with the ``websockets`` client.

ASGI ends the client's WebSocket in the server in front of this app, so the bridge opens a second one to
the sandbox (same path, query, subprotocols and end-to-end headers, ``Host`` kept), accepts the client's
with the subprotocol the sandbox chose, then copies messages both ways until either side closes. A refused
handshake is passed back as the HTTP answer the sandbox gave, where the server supports the ASGI
``websocket.http.response`` extension.
"""

from __future__ import annotations

import asyncio
from typing import Any

from websockets import ConnectionClosed, InvalidStatus, Subprotocol
from websockets.asyncio.client import ClientConnection, connect

from .asgi import Receive, Scope, Send, end_to_end
from .forward import PortClosed, UpstreamFailed

# Headers the WebSocket client writes itself.
_HANDSHAKE_HEADERS = frozenset(
    {
        b"host",
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
        b"sec-websocket-accept",
    }
)
# Close codes that describe a missing close frame; they may not be sent in one (RFC 6455 §7.4.1).
_RESERVED_CLOSE_CODES = frozenset({1005, 1006, 1015})
_BAD_GATEWAY = 1014


async def open_upstream(scope: Scope, address: tuple[str, int]) -> ClientConnection:
    """The WebSocket to the sandbox. Raises :class:`PortClosed`, :class:`UpstreamFailed`, or
    ``InvalidStatus`` when the sandbox answered the handshake with a plain HTTP response."""
    host, port = address
    authority = dict(scope["headers"]).get(b"host", b"").decode("latin-1") or f"{host}:{port}"
    path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string", b"")
    uri = f"ws://{authority}{path.decode('latin-1')}" + (f"?{query.decode('latin-1')}" if query else "")
    forwarded = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in end_to_end(scope["headers"])
        if name not in _HANDSHAKE_HEADERS
    ]
    try:
        return await connect(
            uri,
            # The URI carries the client's Host header; the TCP connection goes to the sandbox.
            host=host,
            port=port,
            proxy=None,
            subprotocols=[Subprotocol(p) for p in scope.get("subprotocols", [])] or None,
            additional_headers=forwarded,
            user_agent_header=None,
            compression=None,
            max_size=None,
            ping_interval=None,
            open_timeout=10,
        )
    except InvalidStatus:
        raise
    except (OSError, TimeoutError) as err:  # refused, unreachable, or no answer in time
        raise PortClosed(str(err)) from err
    except Exception as err:
        raise UpstreamFailed(str(err) or type(err).__name__) from err


async def refuse_with(send: Send, scope: Scope, err: InvalidStatus) -> None:
    """Pass the sandbox's refusal of the handshake back to the client, or close if the server cannot."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    response = err.response
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.raw_items()]
    headers = [(k, v) for k, v in end_to_end(headers) if k != b"content-length"]
    await send({"type": "websocket.http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": response.body or b"", "more_body": False})


async def bridge(upstream: ClientConnection, receive: Receive, send: Send) -> None:
    """Accept the client's WebSocket (its ``websocket.connect`` already received), then copy messages both
    ways until one side closes."""
    await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
    down = asyncio.ensure_future(_client_to_sandbox(upstream, receive))
    up = asyncio.ensure_future(_sandbox_to_client(upstream, send))
    try:
        await asyncio.wait((down, up), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (down, up):
            task.cancel()
        await asyncio.gather(down, up, return_exceptions=True)
        await upstream.close()


async def _client_to_sandbox(upstream: ClientConnection, receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            code = message.get("code", 1000)
            await upstream.close(1000 if code in _RESERVED_CLOSE_CODES else code, message.get("reason") or "")
            return
        data: Any = message.get("bytes")
        if data is None:
            data = message.get("text", "")
        try:
            await upstream.send(data)
        except ConnectionClosed:
            return


async def _sandbox_to_client(upstream: ClientConnection, send: Send) -> None:
    try:
        async for data in upstream:
            key = "text" if isinstance(data, str) else "bytes"
            await send({"type": "websocket.send", key: data})
    except ConnectionClosed:
        pass
    code = upstream.close_code
    if code is None or code in _RESERVED_CLOSE_CODES:
        code = 1000 if code == 1005 else _BAD_GATEWAY
    await send({"type": "websocket.close", "code": code, "reason": upstream.close_reason or ""})
