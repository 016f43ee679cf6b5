"""HTTPS requests rewritten on their way out: the egress proxy terminates the sandbox's TLS connection to a
host that has a header rule (with a certificate of the sandbox's own CA, ``authority``), reads each
HTTP/1.1 request with a bounded parser (``h11``), sets the rule's headers and resolves the secrets it names
(``rules``), and sends the request on over TLS to where the sandbox dialled, verified against the host's
trust store, under the name the sandbox asked for. Bodies stream both ways; the answer comes back as it is.

Bounds: a request's head is at most ``MAX_HEAD`` bytes and must arrive within ``HEAD_TIMEOUT_S``; an idle
keep-alive connection is closed after ``IDLE_TIMEOUT_S``; either side silent for ``READ_TIMEOUT_S`` in a
body ends the connection. A request with both ``Content-Length`` and ``Transfer-Encoding``, an upgrade
(WebSocket), ``CONNECT`` or anything ``h11`` rejects is answered with an error and the connection closed.
Each request is framed again by the proxy, so the server reads exactly what the proxy read.

No secret value appears in a log line or an error: failures are logged by kind only, and no request header
is ever echoed back to the sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable

import h11

from .rules import HostRule
from .tls_stream import CHUNK, TlsServerStream

log = logging.getLogger("hutch.runtime")
Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
MAX_HEAD = 64 * 1024
HEAD_TIMEOUT_S = 30.0
IDLE_TIMEOUT_S = 60.0
READ_TIMEOUT_S = 300.0
HANDSHAKE_TIMEOUT_S = 10.0


class _Refused(Exception):
    """A request the proxy answers itself (status) before closing."""

    def __init__(self, status: int, reason: bytes) -> None:
        self.status = status
        self.reason = reason


def upstream_context(extra_ca_file: str | None = None) -> ssl.SSLContext:
    """How the proxy verifies the servers it forwards to: the host's trust store (and an extra bundle the
    node's settings name), HTTP/1.1 by ALPN."""
    context = ssl.create_default_context()
    if extra_ca_file:
        context.load_verify_locations(cafile=extra_ca_file)
    context.set_alpn_protocols(["http/1.1"])
    return context


async def _event(connection: h11.Connection, read: Callable[[], Awaitable[bytes]], timeout_s: float):
    """The next event of ``connection``, reading more within ``timeout_s`` as it needs."""
    async with asyncio.timeout(timeout_s):
        while True:
            event = connection.next_event()
            if event is not h11.NEED_DATA:
                return event
            connection.receive_data(await read())


class Interception:
    """One intercepted connection: the sandbox's side (TLS terminated here) and, once a request came, the
    server's (TLS from here)."""

    def __init__(
        self,
        sandbox: TlsServerStream,
        rule: HostRule,
        name: str,
        dial: Callable[[], Awaitable[Streams]],
        context: ssl.SSLContext,
    ) -> None:
        self.sandbox = sandbox
        self.rule = rule
        self.name = name
        self.dial = dial
        self.context = context
        self.server = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.client: h11.Connection | None = None
        self.upstream: Streams | None = None
        self.requests = 0

    async def run(self) -> bool:
        """Serve requests until either side closes; True if it ended cleanly."""
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                await self.sandbox.handshake()
            while True:
                if not await self._one():
                    return True
        except _Refused as refusal:
            await self._refuse(refusal.status, refusal.reason)
            return False
        except h11.RemoteProtocolError:
            await self._refuse(400, b"Bad Request")
            return False
        except (ssl.SSLError, OSError, TimeoutError, EOFError, h11.LocalProtocolError) as err:
            # The kind only: an h11 message could quote a header value.
            log.info("egress interception of %s ended: %s", self.name, type(err).__name__)
            return False
        finally:
            if self.upstream is not None:
                self.upstream[1].transport.abort()

    async def _one(self) -> bool:
        """One request and its answer; False when the connection is over."""
        timeout_s = IDLE_TIMEOUT_S if self.requests else HEAD_TIMEOUT_S
        event = await _event(self.server, self.sandbox.read, timeout_s)
        if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return False
        if not isinstance(event, h11.Request):
            raise h11.RemoteProtocolError("expected a request")
        self.requests += 1
        names = [name for name, _ in event.headers]
        if b"content-length" in names and b"transfer-encoding" in names:
            raise _Refused(400, b"Bad Request")
        connection = b",".join(value.lower() for name, value in event.headers if name == b"connection")
        if event.method == b"CONNECT" or b"upgrade" in names or b"upgrade" in connection:
            raise _Refused(501, b"Not Implemented")
        await self._connect()
        client = self.client
        assert client is not None and self.upstream is not None
        headers = self.rule.rewrite(event.headers)
        self._send_up(client.send(h11.Request(method=event.method, target=event.target, headers=headers)))
        body = asyncio.ensure_future(self._request_body(client))
        try:
            await self._response(client)
            if not body.done():
                return False  # answered before the request's body ended: close both
            await body
        finally:
            body.cancel()
        return self._next_cycle(client)

    async def _connect(self) -> None:
        if self.client is not None and self.client.our_state is h11.IDLE:
            return
        if self.upstream is not None:
            self.upstream[1].transport.abort()
            self.upstream = None
        try:
            reader, writer = await self.dial()
        except (OSError, TimeoutError, ValueError) as err:
            log.info("egress interception of %s: upstream unreachable: %s", self.name, type(err).__name__)
            raise _Refused(502, b"Bad Gateway") from None
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                await writer.start_tls(self.context, server_hostname=self.name)
        except (ssl.SSLError, OSError, TimeoutError) as err:
            writer.transport.abort()
            log.info("egress interception of %s: upstream TLS failed: %s", self.name, err)
            raise _Refused(502, b"Bad Gateway") from None
        self.upstream = reader, writer
        self.client = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)

    def _send_up(self, data: bytes | None) -> None:
        if data and self.upstream is not None:
            self.upstream[1].write(data)

    async def _read_up(self) -> bytes:
        assert self.upstream is not None
        return await self.upstream[0].read(CHUNK)

    async def _request_body(self, client: h11.Connection) -> None:
        assert self.upstream is not None
        while True:
            event = await _event(self.server, self.sandbox.read, READ_TIMEOUT_S)
            if isinstance(event, h11.Data):
                self._send_up(client.send(h11.Data(data=event.data)))
                await self.upstream[1].drain()
            elif isinstance(event, h11.EndOfMessage):
                self._send_up(client.send(h11.EndOfMessage(headers=event.headers)))
                await self.upstream[1].drain()
                return
            else:
                raise h11.RemoteProtocolError("the request's body ended early")

    async def _response(self, client: h11.Connection) -> None:
        while True:
            try:
                event = await _event(client, self._read_up, READ_TIMEOUT_S)
            except h11.RemoteProtocolError:
                raise _Refused(502, b"Bad Gateway") from None  # the server's fault, not the sandbox's
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    raise _Refused(502, b"Bad Gateway")
                await self.sandbox.write(self.server.send(event) or b"")
            elif isinstance(event, h11.Response | h11.Data):
                await self.sandbox.write(self.server.send(event) or b"")
            elif isinstance(event, h11.EndOfMessage):
                await self.sandbox.write(self.server.send(event) or b"")
                return
            else:
                raise ConnectionError("the server closed before its answer ended")

    def _next_cycle(self, client: h11.Connection) -> bool:
        if client.our_state is h11.DONE and client.their_state is h11.DONE:
            client.start_next_cycle()
        else:
            self.client = None
        if self.server.our_state is h11.DONE and self.server.their_state is h11.DONE:
            self.server.start_next_cycle()
            return True
        return False

    async def _refuse(self, status: int, reason: bytes) -> None:
        """Answer the sandbox with ``status`` (no body, nothing of its request) when no answer has begun."""
        if self.server.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        answer = b"HTTP/1.1 %d %s\r\ncontent-length: 0\r\nconnection: close\r\n\r\n" % (status, reason)
        with contextlib.suppress(ssl.SSLError, OSError, RuntimeError):
            await self.sandbox.write(answer)
