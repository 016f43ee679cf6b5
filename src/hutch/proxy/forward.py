"""Forwarding one HTTP request to a sandbox port, both bodies streamed chunk by chunk.

The request body goes up as it arrives (chunked in, chunked out: Connect client streams and large
uploads are never buffered); the response comes back with ``aiter_raw``, so ``content-encoding`` stays
valid and every chunk (a Connect message, a line of output) is sent on at once. The pool is httpx's
transport, used directly: ``AsyncClient`` would add its default headers (``accept-encoding``: a client that
asked for none would get gzip) and keep every sandbox's cookies in one jar.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx

from .asgi import Receive, Scope, Send, end_to_end

# No read timeout: a stream may be quiet for long (the SDK asks for a keepalive event every 50 s, a user
# app need not). Connecting is quick or the port is closed.
_EXTENSIONS = {"timeout": {"connect": 10.0, "read": None, "write": None, "pool": None}}


class PortClosed(Exception):
    """Nothing accepts connections on the sandbox's port."""


class UpstreamFailed(Exception):
    """The sandbox's port accepted the connection but gave no response."""


class UpstreamBroken(Exception):
    """The sandbox's response broke off in the middle."""


class ClientGone(Exception):
    """The client went away while its request body was being forwarded."""


def create_transport() -> httpx.AsyncHTTPTransport:
    """One keep-alive pool for all sandboxes (connections are per address), unbounded in size: every open
    stream holds a connection, and a bound would make new requests wait behind long commands."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=512, keepalive_expiry=60)
    return httpx.AsyncHTTPTransport(limits=limits, trust_env=False)


async def forward(
    transport: httpx.AsyncHTTPTransport, scope: Scope, receive: Receive, send: Send, address: tuple[str, int]
) -> None:
    """Send the request of ``scope`` to ``address`` and stream the answer back. Raises :class:`PortClosed`
    or :class:`UpstreamFailed` before anything was sent to the client; an upstream failure after that
    propagates as an exception, so that the server drops the connection instead of ending the body
    cleanly (a truncated stream must not look complete)."""
    headers, has_body = _request_headers(scope)
    content: bytes | AsyncIterator[bytes] = b""
    if has_body:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        first = message.get("body", b"")
        content = _request_body(receive, first) if message.get("more_body", False) else first
    url = _url(scope, address)
    request = httpx.Request(scope["method"], url, headers=headers, content=content, extensions=_EXTENSIONS)
    try:
        response = await transport.handle_async_request(request)
    except (httpx.ConnectError, httpx.ConnectTimeout) as err:
        raise PortClosed(str(err)) from err
    except httpx.TransportError as err:
        raise UpstreamFailed(str(err) or type(err).__name__) from err
    response.request = request
    try:
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": end_to_end(response.headers.raw),
            }
        )
        if "content-length" in response.headers or scope["method"] == "HEAD":
            # It ends on its own; sending to a client that left is a no-op.
            await _pump(response, send)
        else:
            # A stream may last for ever: stop it when the client leaves.
            await _pump_until_disconnect(response, receive, send)
    finally:
        await response.aclose()


def _request_headers(scope: Scope) -> tuple[list[tuple[bytes, bytes]], bool]:
    """The headers to send upstream (``Host`` kept, ``X-Forwarded-For`` appended) and whether a body
    follows."""
    has_body = False
    for name, value in scope["headers"]:
        lowered = name.lower()
        if lowered == b"transfer-encoding" or (lowered == b"content-length" and value.strip() != b"0"):
            has_body = True
    headers: list[tuple[bytes, bytes]] = []
    forwarded_for = b""
    has_proto = False
    for name, value in end_to_end(scope["headers"]):
        if name == b"x-forwarded-for":
            forwarded_for = value
        elif name != b"expect":  # the server in front of this app has answered any 100-continue already
            has_proto = has_proto or name == b"x-forwarded-proto"
            headers.append((name, value))
    client = scope.get("client")
    if client:
        peer = client[0].encode()
        headers.append((b"x-forwarded-for", forwarded_for + b", " + peer if forwarded_for else peer))
    if not has_proto:
        headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
    return headers, has_body


def _url(scope: Scope, address: tuple[str, int]) -> httpx.URL:
    raw_path = scope.get("raw_path") or quote(scope["path"]).encode()
    query = scope.get("query_string", b"")
    host, port = address
    target = raw_path + b"?" + query if query else raw_path
    return httpx.URL(scheme="http", host=host, port=port, raw_path=target)


async def _request_body(receive: Receive, first: bytes) -> AsyncIterator[bytes]:
    if first:
        yield first
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def _pump(response: httpx.Response, send: Send) -> None:
    try:
        async for chunk in response.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except httpx.TransportError as err:
        raise UpstreamBroken(str(err) or type(err).__name__) from err
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _pump_until_disconnect(response: httpx.Response, receive: Receive, send: Send) -> None:
    pump = asyncio.ensure_future(_pump(response, send))
    watch = asyncio.ensure_future(_until_disconnect(receive))
    try:
        await asyncio.wait((pump, watch), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (pump, watch):
            task.cancel()
        await asyncio.gather(pump, watch, return_exceptions=True)
    if not pump.cancelled():
        pump.result()


async def _until_disconnect(receive: Receive) -> None:
    # The request body is fully read by now, so the next message can only be the disconnect (a body the
    # upstream left unread is skipped).
    while (await receive())["type"] != "http.disconnect":
        pass
