"""Forwarding one HTTP request to a sandbox port, both bodies streamed chunk by chunk.

The request body goes up as it arrives (chunked in, chunked out: Connect client streams and large
uploads are never buffered); the response comes back with ``aiter_raw``, so ``content-encoding`` stays
valid and every chunk (a Connect message, a line of output) is sent on at once. The pool (:mod:`.upstreams`)
is httpx's transport, used directly: ``AsyncClient`` would add its default headers (``accept-encoding``: a
client that asked for none would get gzip) and keep every sandbox's cookies in one jar.

The sandbox is hostile, so nothing it does holds the proxy for longer than its client stays: from the
moment the request body is sent (or the sandbox answered before taking all of it), the client's connection
is watched, and when the client leaves the exchange is cancelled at once, whatever the sandbox is doing
(announcing a body of a terabyte and trickling it, or never answering at all); the upstream connection is
then closed, not pooled. An upstream read or write that makes no progress for the idle timeout ends the
request too (before the answer: a 502; during it: the client's connection is dropped).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx

from .asgi import Receive, Scope, Send, end_to_end
from .race import cut_short

# Connecting is quick or the port is closed.
CONNECT_TIMEOUT_S = 10.0


class PortClosed(Exception):
    """Nothing accepts connections on the sandbox's port."""


class UpstreamFailed(Exception):
    """The sandbox's port accepted the connection but gave no response."""


class UpstreamBroken(Exception):
    """The sandbox's response broke off in the middle."""


class ClientGone(Exception):
    """The client went away before its answer was complete."""


async def forward(
    transport: httpx.AsyncHTTPTransport,
    scope: Scope,
    receive: Receive,
    send: Send,
    address: tuple[str, int],
    *,
    idle_timeout_s: float,
) -> None:
    """Send the request of ``scope`` to ``address`` and stream the answer back. Raises :class:`PortClosed`
    or :class:`UpstreamFailed` before anything was sent to the client, :class:`ClientGone` when the client
    left first; an upstream failure after the answer started propagates as an exception, so that the
    server drops the connection instead of ending the body cleanly (a truncated stream must not look
    complete)."""
    headers, has_body = _request_headers(scope)
    client = _Client(receive)
    content: bytes | AsyncIterator[bytes] = b""
    if has_body:
        content = await client.body()
    else:
        client.body_sent.set()
    timeouts = {"connect": CONNECT_TIMEOUT_S, "read": idle_timeout_s, "write": idle_timeout_s, "pool": None}
    request = httpx.Request(
        scope["method"],
        _url(scope, address),
        headers=headers,
        content=content,
        extensions={"timeout": timeouts},
    )
    if await cut_short(_exchange(transport, request, client, send), client.until_gone()):
        raise ClientGone()


class _Client:
    """The client's side of one request: its body, read as the upstream takes it, then the wait for its
    disconnect. ``receive`` has one reader at a time: the body until :attr:`body_sent`, the watch after."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.body_sent = asyncio.Event()

    async def body(self) -> bytes | AsyncIterator[bytes]:
        """The request body: the first message whole if it is all, else a stream of the messages."""
        message = await self._receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        first = message.get("body", b"")
        if not message.get("more_body", False):
            self.body_sent.set()
            return first
        return self._rest(first)

    async def _rest(self, first: bytes) -> AsyncIterator[bytes]:
        if first:
            yield first
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                self.body_sent.set()
                return

    async def until_gone(self) -> None:
        """Return when the client has disconnected (messages of a body the upstream left unread are
        skipped)."""
        await self.body_sent.wait()
        while (await self._receive())["type"] != "http.disconnect":
            pass


async def _exchange(
    transport: httpx.AsyncHTTPTransport, request: httpx.Request, client: _Client, send: Send
) -> None:
    try:
        response = await transport.handle_async_request(request)
    except (httpx.ConnectError, httpx.ConnectTimeout) as err:
        raise PortClosed(str(err)) from err
    except httpx.TransportError as err:
        raise UpstreamFailed(str(err) or type(err).__name__) from err
    # The sandbox answered: it takes no more of the body (the rest is skipped), the client is watched now.
    client.body_sent.set()
    response.request = request
    try:
        headers = end_to_end(response.headers.raw)
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        try:
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx.TransportError as err:
            raise UpstreamBroken(str(err) or type(err).__name__) from err
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        await response.aclose()


def _request_headers(scope: Scope) -> tuple[list[tuple[bytes, bytes]], bool]:
    """The headers to send upstream (``Host`` kept, ``X-Forwarded-For`` appended) and whether a body
    follows."""
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
    return headers, has_body(scope)


def has_body(scope: Scope) -> bool:
    """Whether a body follows the request's headers."""
    for name, value in scope["headers"]:
        lowered = name.lower()
        if lowered == b"transfer-encoding" or (lowered == b"content-length" and value.strip() != b"0"):
            return True
    return False


def _url(scope: Scope, address: tuple[str, int]) -> httpx.URL:
    raw_path = scope.get("raw_path") or quote(scope["path"]).encode()
    query = scope.get("query_string", b"")
    host, port = address
    target = raw_path + b"?" + query if query else raw_path
    return httpx.URL(scheme="http", host=host, port=port, raw_path=target)
