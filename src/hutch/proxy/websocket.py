"""Bridging a WebSocket to a sandbox port, message by message, with the ``websockets`` client.

ASGI ends the client's WebSocket in the server in front of this app, so the bridge opens a second one to
the sandbox (same path, query, subprotocols and end-to-end headers, ``Host`` kept), accepts the client's
with the subprotocol the sandbox chose, then copies messages both ways until either side closes. A refused
handshake is passed back as the HTTP answer the sandbox gave, where the server supports the ASGI
``websocket.http.response`` extension.

Memory is bounded: a message larger than the cap, from either side, closes both connections with 1009
(the sandbox's is refused from its frame header on, never read whole; the client's is uvicorn's
``ws_max_size``), and at most :data:`MAX_QUEUED_FRAMES` of the sandbox's frames wait while the client is slow
(then the proxy stops reading from the sandbox).
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
MESSAGE_TOO_BIG = 1009
# Frames read from the sandbox before it waits for the client to take them.
MAX_QUEUED_FRAMES = 2
# How long a sandbox may take to answer a close (ours, or the one after its message over the cap) before
# its connection is dropped; meanwhile what it sends is read and discarded.
CLOSE_TIMEOUT_S = 2


class _SandboxConnection(ClientConnection):
    """websockets' client connection, dropped when the sandbox has not closed it within the close timeout
    of a close frame sent to it: websockets itself waits for that only in ``close()``, so a sandbox whose
    message went over the cap could keep the connection open for ever, its data read and discarded."""

    _dropping = False

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.close_deadline is not None and not self._dropping:
            self._dropping = True
            self.loop.call_at(self.close_deadline, self.transport.abort)


async def open_upstream(
    scope: Scope, address: tuple[str, int], *, max_message_bytes: int
) -> ClientConnection:
    """The WebSocket to the sandbox, taking messages up to ``max_message_bytes``. Raises
    :class:`PortClosed`, :class:`UpstreamFailed`, or ``InvalidStatus`` when the sandbox answered the
    handshake with a plain HTTP response."""
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
            max_size=max_message_bytes,
            max_queue=MAX_QUEUED_FRAMES,
            close_timeout=CLOSE_TIMEOUT_S,
            create_connection=_SandboxConnection,
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
    code, reason = upstream.close_code, upstream.close_reason or ""
    sent = upstream.protocol.close_sent
    if sent is not None and sent.code == MESSAGE_TOO_BIG:  # the sandbox's message was over the cap
        code, reason = MESSAGE_TOO_BIG, sent.reason
    elif code is None or code in _RESERVED_CLOSE_CODES:
        code = 1000 if code == 1005 else _BAD_GATEWAY
    await send({"type": "websocket.close", "code": code, "reason": reason})
